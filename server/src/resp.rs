//! RESP request parser and reply encoder.
//!
//! Requests arrive either as RESP arrays of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`,
//! what every client library sends, in RESP2 and RESP3 alike) or as inline
//! commands (`GET k\r\n`, what a person types into telnet). The parser is
//! zero-copy: it returns the arguments as [`Span`]s into the caller's input
//! buffer, so a pipelined batch is parsed without copying a byte.
//!
//! It is strict and bounded: every length is checked against [`Limits`]
//! before anything is trusted, a frame that cannot become valid is a
//! [`ProtocolError`] (the server answers it and closes the connection), and a
//! frame that is merely incomplete tells the caller how many bytes it needs
//! at least, so a large value arriving in pieces is not re-parsed on every
//! read. It never panics and allocates only the argument list, which grows by
//! one [`Span`] per argument actually present in the input.
//!
//! Replies are written by [`Encoder`] functions into a `Vec<u8>`; the few
//! shapes that differ between RESP2 and RESP3 (null, map, double, boolean)
//! take the connection's [`Proto`].

use std::fmt;

use crate::command::parse_i64;

/// A byte range `start..end` of the input buffer holding one argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// The bytes of this span in `buf` (the buffer it was parsed from).
    ///
    /// Returns an empty slice if the span does not fit `buf`, so a caller
    /// mixing up buffers gets wrong data, never a panic.
    #[inline]
    pub fn of<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.start..self.end).unwrap_or(&[])
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// True when the argument is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// Bounds on what one request may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string, in bytes (Redis: `proto-max-bulk-len`).
    pub max_bulk: usize,
    /// Most arguments in one request (array elements).
    pub max_args: usize,
    /// Longest inline command line, in bytes.
    pub max_inline: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_bulk: 16 * 1024 * 1024, max_args: 64 * 1024, max_inline: 64 * 1024 }
    }
}

/// Longest count line (`*123\r\n`, `$123\r\n`) the parser waits for before it
/// calls the input garbage. A 64-bit count has at most 20 digits.
const MAX_COUNT_LINE: usize = 32;

/// Why a request could not be parsed. The connection is closed after the
/// error reply; the message is Redis's wording, so clients recognise it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// `*` count not a number, or below -1, or above [`Limits::max_args`].
    InvalidMultibulkLength,
    /// `$` length not a number, negative, or above [`Limits::max_bulk`].
    InvalidBulkLength,
    /// An array element that is not a bulk string (`$`); carries the byte found.
    ExpectedBulk(u8),
    /// A count line without its `\r\n` after 32 bytes.
    TooBigCountLine,
    /// A bulk string not followed by `\r\n`.
    MissingBulkTerminator,
    /// An inline line longer than [`Limits::max_inline`].
    TooBigInline,
    /// An inline line with an unclosed quote.
    UnbalancedQuotes,
    /// An inline line with more than [`Limits::max_args`] words.
    TooManyInlineArgs,
}

impl ProtocolError {
    /// The error line sent to the client, without the leading `-` and `\r\n`.
    pub fn message(&self) -> &'static str {
        match self {
            Self::InvalidMultibulkLength => "ERR Protocol error: invalid multibulk length",
            Self::InvalidBulkLength => "ERR Protocol error: invalid bulk length",
            Self::ExpectedBulk(_) => "ERR Protocol error: expected '$'",
            Self::TooBigCountLine => "ERR Protocol error: too big count string",
            Self::MissingBulkTerminator => "ERR Protocol error: bulk string not terminated by CRLF",
            Self::TooBigInline => "ERR Protocol error: too big inline request",
            Self::UnbalancedQuotes => "ERR Protocol error: unbalanced quotes in request",
            Self::TooManyInlineArgs => "ERR Protocol error: too many arguments in inline request",
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ExpectedBulk(b) => write!(f, "{}, got '{}'", self.message(), b.escape_ascii()),
            _ => f.write_str(self.message()),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// The outcome of [`parse`] on a buffer that did not hold a malformed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// One request: its arguments are in the `args` vector (never empty),
    /// and it occupied the first `consumed` bytes of the buffer.
    Command {
        /// Bytes used by this request.
        consumed: usize,
    },
    /// A request with no arguments (`*0`, `*-1`, a blank inline line), which
    /// Redis skips without a reply; it occupied `consumed` bytes.
    Empty {
        /// Bytes used.
        consumed: usize,
    },
    /// The buffer holds the beginning of a request; it needs at least `need`
    /// bytes in total (always more than it has) before parsing can progress.
    Incomplete {
        /// Minimum total buffer length worth parsing again.
        need: usize,
    },
}

/// Parses the first request in `buf`.
///
/// On [`Parsed::Command`], `args` holds one [`Span`] per argument, relative to
/// `buf`. `args` is cleared first; its contents are meaningless otherwise.
pub fn parse(buf: &[u8], limits: &Limits, args: &mut Vec<Span>) -> Result<Parsed, ProtocolError> {
    args.clear();
    match buf.first() {
        None => Ok(Parsed::Incomplete { need: 1 }),
        Some(b'*') => parse_multibulk(buf, limits, args),
        Some(_) => parse_inline(buf, limits, args),
    }
}

/// Finds `\r\n` at or after `from`, returning the index of `\r`.
#[inline]
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 1 < buf.len() {
        match buf[i + 1..].iter().position(|&b| b == b'\n') {
            None => return None,
            Some(off) => {
                let nl = i + 1 + off;
                if buf[nl - 1] == b'\r' {
                    return Some(nl - 1);
                }
                i = nl;
            }
        }
    }
    None
}

/// Reads a count line `<prefix><digits>\r\n` at `at`. Returns the count and
/// the index after the line, or `Ok(None)` if the line is not complete yet.
/// The digits parse as Redis's `string2ll` parses them (`parse_i64`): so
/// `*-9223372036854775808` is a count, and `*01` or `*-0` are errors, as in
/// redis-server.
fn count_line(buf: &[u8], at: usize, too_big: ProtocolError) -> Result<Option<(i64, usize)>, ProtocolError> {
    let window_end = buf.len().min(at + MAX_COUNT_LINE);
    match find_crlf(&buf[..window_end], at + 1) {
        Some(cr) => match parse_i64(&buf[at + 1..cr]) {
            Some(n) => Ok(Some((n, cr + 2))),
            None => Err(too_big),
        },
        None if window_end - at >= MAX_COUNT_LINE => Err(ProtocolError::TooBigCountLine),
        None => Ok(None),
    }
}

fn parse_multibulk(buf: &[u8], limits: &Limits, args: &mut Vec<Span>) -> Result<Parsed, ProtocolError> {
    let Some((count, mut pos)) = count_line(buf, 0, ProtocolError::InvalidMultibulkLength)? else {
        return Ok(Parsed::Incomplete { need: buf.len() + 1 });
    };
    if count <= 0 {
        // Redis skips any count of zero or less (`*-5` as `*-1`).
        return Ok(Parsed::Empty { consumed: pos });
    }
    if count as u64 > limits.max_args as u64 {
        return Err(ProtocolError::InvalidMultibulkLength);
    }
    for _ in 0..count {
        match buf.get(pos) {
            None => return Ok(Parsed::Incomplete { need: pos + 1 }),
            Some(b'$') => {}
            Some(&other) => return Err(ProtocolError::ExpectedBulk(other)),
        }
        let Some((len, start)) = count_line(buf, pos, ProtocolError::InvalidBulkLength)? else {
            return Ok(Parsed::Incomplete { need: buf.len() + 1 });
        };
        if len < 0 || len as u64 > limits.max_bulk as u64 {
            return Err(ProtocolError::InvalidBulkLength);
        }
        let end = start + len as usize;
        // `end + 2` cannot overflow: `start` indexes into `buf` and `len` is
        // bounded by `max_bulk`, both far below `usize::MAX / 2`.
        if buf.len() < end + 2 {
            return Ok(Parsed::Incomplete { need: end + 2 });
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(ProtocolError::MissingBulkTerminator);
        }
        args.push(Span { start, end });
        pos = end + 2;
    }
    Ok(Parsed::Command { consumed: pos })
}

fn parse_inline(buf: &[u8], limits: &Limits, args: &mut Vec<Span>) -> Result<Parsed, ProtocolError> {
    let window = &buf[..buf.len().min(limits.max_inline.saturating_add(1))];
    let Some(nl) = window.iter().position(|&b| b == b'\n') else {
        if buf.len() > limits.max_inline {
            return Err(ProtocolError::TooBigInline);
        }
        return Ok(Parsed::Incomplete { need: buf.len() + 1 });
    };
    let consumed = nl + 1;
    let line_end = if nl > 0 && buf[nl - 1] == b'\r' { nl - 1 } else { nl };
    split_inline(buf, line_end, limits, args)?;
    if args.is_empty() {
        Ok(Parsed::Empty { consumed })
    } else {
        Ok(Parsed::Command { consumed })
    }
}

/// Splits `buf[..end]` into words separated by spaces and tabs. A word may be
/// wrapped in double or single quotes to contain spaces; escapes inside
/// quotes are not interpreted (the parser is zero-copy), and a closing quote
/// must be followed by a separator or the end of the line.
fn split_inline(buf: &[u8], end: usize, limits: &Limits, args: &mut Vec<Span>) -> Result<(), ProtocolError> {
    let is_sep = |b: u8| b == b' ' || b == b'\t' || b == b'\r';
    let mut i = 0;
    while i < end {
        if is_sep(buf[i]) {
            i += 1;
            continue;
        }
        if args.len() >= limits.max_args {
            return Err(ProtocolError::TooManyInlineArgs);
        }
        let q = buf[i];
        if q == b'"' || q == b'\'' {
            let start = i + 1;
            let close = buf[start..end].iter().position(|&b| b == q).map(|o| start + o);
            match close {
                Some(c) if c + 1 == end || is_sep(buf[c + 1]) => {
                    args.push(Span { start, end: c });
                    i = c + 1;
                }
                _ => return Err(ProtocolError::UnbalancedQuotes),
            }
        } else {
            let start = i;
            while i < end && !is_sep(buf[i]) {
                i += 1;
            }
            args.push(Span { start, end: i });
        }
    }
    Ok(())
}

/// The reply protocol a connection speaks: RESP2 until `HELLO 3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Proto {
    /// RESP2 (the default).
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

/// Writes RESP replies into a byte vector.
pub struct Encoder;

impl Encoder {
    /// `+s\r\n`. `s` must not contain `\r` or `\n`.
    #[inline]
    pub fn simple(out: &mut Vec<u8>, s: &str) {
        out.push(b'+');
        out.extend_from_slice(s.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    /// `+OK\r\n`.
    #[inline]
    pub fn ok(out: &mut Vec<u8>) {
        out.extend_from_slice(b"+OK\r\n");
    }

    /// `-msg\r\n`; line breaks in `msg` are replaced by spaces so the reply
    /// stays one line.
    pub fn error(out: &mut Vec<u8>, msg: &str) {
        Self::error_bytes(out, msg.as_bytes())
    }

    /// [`error`](Self::error) of a message that may hold any bytes (a
    /// client's, quoted).
    pub fn error_bytes(out: &mut Vec<u8>, msg: &[u8]) {
        out.push(b'-');
        out.extend(msg.iter().map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
        out.extend_from_slice(b"\r\n");
    }

    /// `:n\r\n`.
    #[inline]
    pub fn int(out: &mut Vec<u8>, n: i64) {
        out.push(b':');
        write_i64(out, n);
        out.extend_from_slice(b"\r\n");
    }

    /// `$len\r\nbytes\r\n`.
    #[inline]
    pub fn bulk(out: &mut Vec<u8>, bytes: &[u8]) {
        out.push(b'$');
        write_i64(out, bytes.len() as i64);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }

    /// The null bulk string: `$-1\r\n` (RESP2) or `_\r\n` (RESP3).
    #[inline]
    pub fn null(out: &mut Vec<u8>, proto: Proto) {
        out.extend_from_slice(match proto {
            Proto::Resp2 => b"$-1\r\n",
            Proto::Resp3 => b"_\r\n",
        });
    }

    /// The null array: `*-1\r\n` (RESP2) or `_\r\n` (RESP3).
    #[inline]
    pub fn null_array(out: &mut Vec<u8>, proto: Proto) {
        out.extend_from_slice(match proto {
            Proto::Resp2 => b"*-1\r\n",
            Proto::Resp3 => b"_\r\n",
        });
    }

    /// `*n\r\n`, followed by `n` elements written by the caller.
    #[inline]
    pub fn array(out: &mut Vec<u8>, n: usize) {
        out.push(b'*');
        write_i64(out, n as i64);
        out.extend_from_slice(b"\r\n");
    }

    /// A map of `n` pairs: `%n\r\n` (RESP3) or a flat array of `2n` elements
    /// (RESP2). The caller writes key, value, key, value...
    #[inline]
    pub fn map(out: &mut Vec<u8>, n: usize, proto: Proto) {
        match proto {
            Proto::Resp2 => Self::array(out, 2 * n),
            Proto::Resp3 => {
                out.push(b'%');
                write_i64(out, n as i64);
                out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// A verbatim text (INFO's reply): `=len\r\ntxt:...` in RESP3, a bulk
    /// string in RESP2.
    pub fn verbatim(out: &mut Vec<u8>, text: &[u8], proto: Proto) {
        match proto {
            Proto::Resp2 => Self::bulk(out, text),
            Proto::Resp3 => {
                out.push(b'=');
                write_i64(out, text.len() as i64 + 4);
                out.extend_from_slice(b"\r\ntxt:");
                out.extend_from_slice(text);
                out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// Encodes `args` as a request (array of bulk strings), as a client would.
    pub fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
        Self::array(out, args.len());
        for a in args {
            Self::bulk(out, a);
        }
    }
}

/// Appends the decimal form of `n`.
#[inline]
pub fn write_i64(out: &mut Vec<u8>, n: i64) {
    if (0..10).contains(&n) {
        out.push(b'0' + n as u8);
        return;
    }
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    let neg = n < 0;
    let mut v = n.unsigned_abs();
    while v > 0 {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    if neg {
        out.push(b'-');
    }
    out.extend_from_slice(&tmp[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    type Commands = Vec<Vec<Vec<u8>>>;

    fn parse_all(input: &[u8]) -> Result<(Commands, usize), ProtocolError> {
        let limits = Limits::default();
        let mut args = Vec::new();
        let mut pos = 0;
        let mut cmds = Vec::new();
        loop {
            match parse(&input[pos..], &limits, &mut args)? {
                Parsed::Command { consumed } => {
                    cmds.push(args.iter().map(|s| s.of(&input[pos..]).to_vec()).collect());
                    pos += consumed;
                }
                Parsed::Empty { consumed } => pos += consumed,
                Parsed::Incomplete { .. } => return Ok((cmds, pos)),
            }
        }
    }

    fn words(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn parses_pipelined_multibulk_requests() {
        let input = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n*1\r\n$4\r\nPI";
        let (cmds, pos) = parse_all(input).unwrap();
        assert_eq!(cmds, vec![words(&["GET", "k"]), words(&["SET", "k", ""])]);
        assert_eq!(&input[pos..], b"*1\r\n$4\r\nPI");
    }

    #[test]
    fn binary_values_are_taken_verbatim() {
        let input = b"*2\r\n$4\r\nECHO\r\n$6\r\na\r\n\0\xffb\r\n";
        let (cmds, _) = parse_all(input).unwrap();
        assert_eq!(cmds[0][1], b"a\r\n\0\xffb");
    }

    #[test]
    fn incomplete_reports_what_it_needs() {
        let limits = Limits::default();
        let mut args = Vec::new();
        let full = b"*2\r\n$3\r\nGET\r\n$10\r\n0123456789\r\n";
        for cut in 0..full.len() {
            match parse(&full[..cut], &limits, &mut args).unwrap() {
                Parsed::Incomplete { need } => assert!(need > cut && need <= full.len(), "cut {cut}"),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
        assert_eq!(parse(full, &limits, &mut args).unwrap(), Parsed::Command { consumed: full.len() });
        // A big value announces its full size at once.
        let head = b"*2\r\n$3\r\nSET\r\n$1000\r\nab";
        let need = 4 + 9 + 7 + 1000 + 2;
        assert_eq!(parse(head, &limits, &mut args).unwrap(), Parsed::Incomplete { need });
    }

    #[test]
    fn empty_requests_are_skipped() {
        let limits = Limits::default();
        let mut args = Vec::new();
        assert_eq!(parse(b"*0\r\n", &limits, &mut args).unwrap(), Parsed::Empty { consumed: 4 });
        assert_eq!(parse(b"*-1\r\n", &limits, &mut args).unwrap(), Parsed::Empty { consumed: 5 });
        // Any count below zero, as Redis.
        assert_eq!(parse(b"*-5\r\n", &limits, &mut args).unwrap(), Parsed::Empty { consumed: 5 });
        // i64::MIN is a count too (found by the resp_parser fuzz target:
        // the count was parsed positive first, which overflowed).
        let min = b"*-9223372036854775808\r\n";
        assert_eq!(parse(min, &limits, &mut args).unwrap(), Parsed::Empty { consumed: min.len() });
        assert_eq!(parse(b"\r\n", &limits, &mut args).unwrap(), Parsed::Empty { consumed: 2 });
        assert_eq!(parse(b"   \n", &limits, &mut args).unwrap(), Parsed::Empty { consumed: 4 });
    }

    #[test]
    fn inline_commands_split_on_blanks_and_quotes() {
        let (cmds, _) = parse_all(b"SET k  \"hello world\"\r\nGET 'k'\nPING\r\n").unwrap();
        assert_eq!(cmds, vec![words(&["SET", "k", "hello world"]), words(&["GET", "k"]), words(&["PING"])]);
        assert_eq!(parse_all(b"SET k \"x\r\n"), Err(ProtocolError::UnbalancedQuotes));
        assert_eq!(parse_all(b"SET k \"x\"y\r\n"), Err(ProtocolError::UnbalancedQuotes));
    }

    #[test]
    fn malformed_frames_are_errors() {
        use ProtocolError::*;
        let cases: &[(&[u8], ProtocolError)] = &[
            (b"*x\r\n", InvalidMultibulkLength),
            (b"*+1\r\n", InvalidMultibulkLength),
            (b"*\r\n", InvalidMultibulkLength),
            (b"*99999999999999999999\r\n", InvalidMultibulkLength),
            // Leading zeros and `-0` are refused, as Redis's string2ll does.
            (b"*01\r\n$4\r\nPING\r\n", InvalidMultibulkLength),
            (b"*-0\r\n", InvalidMultibulkLength),
            (b"*1\r\n$04\r\nPING\r\n", InvalidBulkLength),
            (b"*1\r\n$-0\r\n", InvalidBulkLength),
            (b"*-9223372036854775809\r\n", InvalidMultibulkLength),
            (b"*1\r\n$-1\r\n", InvalidBulkLength),
            (b"*1\r\n$abc\r\n", InvalidBulkLength),
            (b"*1\r\n$9999999999\r\n", InvalidBulkLength),
            (b"*1\r\n:1\r\n", ExpectedBulk(b':')),
            (b"*1\r\n$1\r\nab\r\n", MissingBulkTerminator),
            (b"*100000000\r\n", InvalidMultibulkLength),
            (b"*1111111111111111111111111111111111111", TooBigCountLine),
            (b"*1\r\n$1111111111111111111111111111111111111", TooBigCountLine),
        ];
        for (input, want) in cases {
            assert_eq!(parse_all(input).err(), Some(*want), "{}", input.escape_ascii());
        }
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits { max_bulk: 4, max_args: 2, max_inline: 8 };
        let mut args = Vec::new();
        assert!(parse(b"*2\r\n$4\r\nabcd\r\n$0\r\n\r\n", &limits, &mut args).is_ok());
        assert_eq!(parse(b"*3\r\n", &limits, &mut args), Err(ProtocolError::InvalidMultibulkLength));
        assert_eq!(parse(b"*1\r\n$5\r\n", &limits, &mut args), Err(ProtocolError::InvalidBulkLength));
        assert_eq!(parse(b"123456789", &limits, &mut args), Err(ProtocolError::TooBigInline));
        assert_eq!(parse(b"12345678", &limits, &mut args), Ok(Parsed::Incomplete { need: 9 }));
        assert_eq!(parse(b"a b c\n", &limits, &mut args), Err(ProtocolError::TooManyInlineArgs));
    }

    #[test]
    fn encoder_writes_both_protocols() {
        let mut o = Vec::new();
        Encoder::ok(&mut o);
        Encoder::int(&mut o, -42);
        Encoder::int(&mut o, i64::MIN);
        Encoder::bulk(&mut o, b"hi");
        Encoder::null(&mut o, Proto::Resp2);
        Encoder::null(&mut o, Proto::Resp3);
        Encoder::map(&mut o, 1, Proto::Resp2);
        Encoder::map(&mut o, 1, Proto::Resp3);
        Encoder::error(&mut o, "ERR bad\r\nthing");
        Encoder::verbatim(&mut o, b"a", Proto::Resp3);
        assert_eq!(
            o,
            b"+OK\r\n:-42\r\n:-9223372036854775808\r\n$2\r\nhi\r\n$-1\r\n_\r\n*2\r\n%1\r\n-ERR bad  thing\r\n=5\r\ntxt:a\r\n"
        );
    }

    #[test]
    fn encoded_commands_parse_back() {
        let args: [&[u8]; 4] = [b"MSET", b"", b"\r\n", &[0u8; 300]];
        let mut o = Vec::new();
        Encoder::command(&mut o, &args);
        let (cmds, pos) = parse_all(&o).unwrap();
        assert_eq!(pos, o.len());
        assert_eq!(cmds, vec![args.iter().map(|a| a.to_vec()).collect::<Vec<_>>()]);
    }

    #[test]
    fn write_i64_matches_std() {
        for n in [0i64, 1, 9, 10, 99, 100, -1, -10, 1234567890, i64::MAX, i64::MIN] {
            let mut o = Vec::new();
            write_i64(&mut o, n);
            assert_eq!(o, n.to_string().as_bytes());
        }
    }
}
