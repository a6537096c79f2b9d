//! Fuzzes the RESP request parser against a naive, allocating model.
//!
//! For any input the parser must: not panic; agree with the model on whether
//! the first request is complete, empty, incomplete or malformed, on its
//! arguments and on how many bytes it used; report `Incomplete` for every
//! strict prefix of a complete request, with a `need` that never overshoots;
//! and parse back what the encoder writes.
//!
//! Then every complete request in the input is run, as the server would,
//! against one shard's state (cache, limiters, breakers, idempotency,
//! watches): any arguments must give a reply, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resilience_server::command::{lookup, Op, Route};
use resilience_server::resp::{parse, Encoder, Limits, Parsed, Proto};
use resilience_server::state::ShardState;
use resilience_server::Config;

thread_local! {
    static STATE: ShardState = ShardState::new(0, 1, &Config { maxmemory: 1 << 20, ..Config::default() })
        .expect("a valid configuration");
}

/// Runs every request in `data` on the shard state; replies must be RESP.
fn run_all(data: &[u8], limits: &Limits) {
    let mut args = Vec::new();
    let mut pos = 0;
    let mut out = Vec::new();
    while let Ok(Parsed::Command { consumed } | Parsed::Empty { consumed }) = parse(&data[pos..], limits, &mut args) {
        let buf = &data[pos..];
        pos += consumed;
        // Databases 0-2, picked by the request's length, so that keys of
        // several databases (and database-0 keys that look marked) mix.
        let db = (consumed % 3) as u8;
        let Some(spec) = args.first().and_then(|a| lookup(a.of(buf))) else { continue };
        // Key- and all-shard commands run on a shard's state as they are;
        // SCAN runs there too (the connection only picks the shard).
        // So do the shard-side forms of WATCH / UNWATCH / EXEC (`WATCH id
        // key`, `UNWATCH id key...`, `EXEC id count key...`) and CLIENT
        // (`LIST filters`, `KILL caller filters`).
        let on_shard = matches!(spec.route, Route::Key | Route::All)
            || matches!(spec.op, Op::Scan | Op::Watch | Op::Unwatch | Op::Exec | Op::Client);
        if !spec.arity_ok(args.len()) || !on_shard {
            continue;
        }
        out.clear();
        STATE.with(|s| s.exec(spec.op, db, buf, &args[1..], Proto::Resp3, &mut out));
        assert!(matches!(out.first(), Some(b'+' | b'-' | b':' | b'$' | b'*' | b'_' | b'%')), "{:?}", out);
        assert!(out.ends_with(b"\r\n"));
    }
}

#[derive(Debug, PartialEq)]
enum Model {
    Command(Vec<Vec<u8>>, usize),
    Empty(usize),
    Incomplete,
    Error,
}

fn model_line(buf: &[u8], at: usize) -> Option<Option<(i64, usize)>> {
    // Returns None for malformed, Some(None) for incomplete.
    let rest = &buf[at + 1..];
    let mut i = 0;
    loop {
        if i + 1 >= rest.len() {
            return if rest.len() + 1 >= 32 { None } else { Some(None) };
        }
        if rest[i] == b'\r' && rest[i + 1] == b'\n' {
            if i + 1 + 2 > 32 {
                return None;
            }
            // Redis's string2ll: "0", or an optional '-' and digits that
            // start with 1-9; at most 20 bytes; within i64.
            let s = std::str::from_utf8(&rest[..i]).ok()?;
            let digits = s.strip_prefix('-').unwrap_or(s);
            let canonical = s == "0" || digits.starts_with(|c: char| ('1'..='9').contains(&c));
            if !canonical || s.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let v: i64 = s.parse().ok()?;
            return Some(Some((v, at + 1 + i + 2)));
        }
        i += 1;
    }
}

fn model(buf: &[u8], limits: &Limits) -> Model {
    if buf.is_empty() {
        return Model::Incomplete;
    }
    if buf[0] != b'*' {
        let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
            return if buf.len() > limits.max_inline { Model::Error } else { Model::Incomplete };
        };
        if nl > limits.max_inline {
            return Model::Error;
        }
        let mut line = &buf[..nl];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        let mut words = Vec::new();
        let mut i = 0;
        while i < line.len() {
            let c = line[i];
            if c == b' ' || c == b'\t' || c == b'\r' {
                i += 1;
                continue;
            }
            if words.len() >= limits.max_args {
                return Model::Error;
            }
            if c == b'"' || c == b'\'' {
                let mut j = i + 1;
                while j < line.len() && line[j] != c {
                    j += 1;
                }
                if j >= line.len() {
                    return Model::Error;
                }
                if j + 1 < line.len() && !matches!(line[j + 1], b' ' | b'\t' | b'\r') {
                    return Model::Error;
                }
                words.push(line[i + 1..j].to_vec());
                i = j + 1;
            } else {
                let mut j = i;
                while j < line.len() && !matches!(line[j], b' ' | b'\t' | b'\r') {
                    j += 1;
                }
                words.push(line[i..j].to_vec());
                i = j;
            }
        }
        return if words.is_empty() { Model::Empty(nl + 1) } else { Model::Command(words, nl + 1) };
    }
    let (n, mut pos) = match model_line(buf, 0) {
        None => return Model::Error,
        Some(None) => return Model::Incomplete,
        Some(Some(x)) => x,
    };
    if n <= 0 {
        return Model::Empty(pos); // Redis skips any count of zero or less
    }
    if n as u64 > limits.max_args as u64 {
        return Model::Error;
    }
    let mut args = Vec::new();
    for _ in 0..n {
        if pos >= buf.len() {
            return Model::Incomplete;
        }
        if buf[pos] != b'$' {
            return Model::Error;
        }
        let (len, start) = match model_line(buf, pos) {
            None => return Model::Error,
            Some(None) => return Model::Incomplete,
            Some(Some(x)) => x,
        };
        if len < 0 || len as u64 > limits.max_bulk as u64 {
            return Model::Error;
        }
        let end = start + len as usize;
        if buf.len() < end + 2 {
            return Model::Incomplete;
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Model::Error;
        }
        args.push(buf[start..end].to_vec());
        pos = end + 2;
    }
    Model::Command(args, pos)
}

fuzz_target!(|data: &[u8]| {
    // Small limits so the fuzzer reaches every bound.
    let limits = Limits { max_bulk: 64, max_args: 8, max_inline: 48 };
    let mut args = Vec::new();
    let got = match parse(data, &limits, &mut args) {
        Ok(Parsed::Command { consumed }) => {
            assert!(consumed <= data.len());
            Model::Command(args.iter().map(|s| s.of(data).to_vec()).collect(), consumed)
        }
        Ok(Parsed::Empty { consumed }) => {
            assert!(consumed <= data.len());
            Model::Empty(consumed)
        }
        Ok(Parsed::Incomplete { need }) => {
            assert!(need > data.len());
            Model::Incomplete
        }
        Err(e) => {
            assert!(!e.message().contains('\n'));
            Model::Error
        }
    };
    assert_eq!(got, model(data, &limits));

    // Every strict prefix of a complete request is incomplete, and the
    // `need` it reports never goes past the request's end.
    if let Model::Command(_, consumed) | Model::Empty(consumed) = got {
        for cut in 0..consumed {
            match parse(&data[..cut], &limits, &mut args) {
                Ok(Parsed::Incomplete { need }) => assert!(need > cut && need <= consumed),
                other => panic!("prefix {cut} of {consumed}: {other:?}"),
            }
        }
    }

    run_all(data, &limits);

    // The encoder's output parses back to the same arguments.
    if let Model::Command(words, _) = got {
        let refs: Vec<&[u8]> = words.iter().map(|w| w.as_slice()).collect();
        let mut out = Vec::new();
        Encoder::command(&mut out, &refs);
        match parse(&out, &limits, &mut args) {
            Ok(Parsed::Command { consumed }) => {
                assert_eq!(consumed, out.len());
                let back: Vec<&[u8]> = args.iter().map(|s| s.of(&out)).collect();
                assert_eq!(back, refs);
            }
            other => panic!("encoded command did not parse back: {other:?}"),
        }
    }
});
