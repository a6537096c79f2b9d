//! The command table: names, arity, and where each command runs.

/// The Redis version whose commands `resilienced` answers (`INFO`'s
/// `redis_version`, `HELLO`'s `version`).
pub const REDIS_VERSION: &str = "7.0.0";

/// Every command `resilienced` knows. Keyed ones run on the shard that owns
/// their key; the others run on the connection's shard or on every shard.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    // Connection and server.
    Ping,
    Echo,
    Auth,
    Time,
    Keys,
    Scan,
    Quit,
    Reset,
    Select,
    Hello,
    Client,
    Command,
    Config,
    Info,
    Dbsize,
    Flushall,
    Flushdb,
    // Transactions.
    Multi,
    Exec,
    Discard,
    Watch,
    Unwatch,
    // Cache.
    Get,
    Set,
    Del,
    Setex,
    Psetex,
    Setnx,
    Getdel,
    Persist,
    Type,
    Unlink,
    Strlen,
    Append,
    Getrange,
    Setrange,
    Incrbyfloat,
    Rename,
    Renamenx,
    Copy,
    Move,
    Msetnx,
    Substr,
    Getset,
    Getex,
    Expiretime,
    Pexpiretime,
    Exists,
    Touch,
    Expire,
    Pexpire,
    Expireat,
    Pexpireat,
    Ttl,
    Pttl,
    Mget,
    Mset,
    Incr,
    Incrby,
    Decr,
    Decrby,
    // Rate limiting.
    Throttle,
    // Circuit breakers.
    BreakerAcquire,
    BreakerRecord,
    BreakerState,
    BreakerConfig,
    // Idempotency.
    IdemBegin,
    IdemComplete,
    IdemAbandon,
}

/// Where a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// On the connection's shard, touching no keyed state.
    Conn,
    /// On the owner of `args[1]`.
    Key,
    /// Once per key (`args[1..]` stepping by `step`), each on its owner.
    Keys {
        /// 1 for `MGET`/`DEL`/`EXISTS`, 2 for `MSET`'s key-value pairs.
        step: usize,
    },
    /// Once on every shard.
    All,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Lower-case name, as Redis prints it in errors and `COMMAND`.
    pub name: &'static str,
    /// Redis arity: `n` exactly n arguments (name included), `-n` at least n.
    pub arity: i32,
    /// Which command.
    pub op: Op,
    /// Where it runs.
    pub route: Route,
    /// Redis `COMMAND` flags.
    pub flags: &'static [&'static str],
}

const R: &[&str] = &["readonly", "fast"];
const W: &[&str] = &["write", "fast"];
const WD: &[&str] = &["write", "denyoom"];
const A: &[&str] = &["fast"];

/// Every command, in `COMMAND` order.
pub const TABLE: &[Spec] = &[
    Spec { name: "ping", arity: -1, op: Op::Ping, route: Route::Conn, flags: A },
    Spec { name: "echo", arity: 2, op: Op::Echo, route: Route::Conn, flags: A },
    Spec { name: "quit", arity: -1, op: Op::Quit, route: Route::Conn, flags: A },
    Spec { name: "select", arity: 2, op: Op::Select, route: Route::Conn, flags: A },
    Spec { name: "hello", arity: -1, op: Op::Hello, route: Route::Conn, flags: A },
    Spec { name: "client", arity: -2, op: Op::Client, route: Route::Conn, flags: &[] },
    Spec { name: "command", arity: -1, op: Op::Command, route: Route::Conn, flags: &[] },
    Spec { name: "config", arity: -2, op: Op::Config, route: Route::Conn, flags: &[] },
    Spec { name: "info", arity: -1, op: Op::Info, route: Route::All, flags: &[] },
    Spec { name: "dbsize", arity: 1, op: Op::Dbsize, route: Route::All, flags: R },
    Spec { name: "flushall", arity: -1, op: Op::Flushall, route: Route::All, flags: &["write"] },
    Spec { name: "get", arity: 2, op: Op::Get, route: Route::Key, flags: R },
    Spec { name: "set", arity: -3, op: Op::Set, route: Route::Key, flags: WD },
    Spec { name: "del", arity: -2, op: Op::Del, route: Route::Keys { step: 1 }, flags: &["write"] },
    Spec { name: "exists", arity: -2, op: Op::Exists, route: Route::Keys { step: 1 }, flags: R },
    Spec { name: "expire", arity: -3, op: Op::Expire, route: Route::Key, flags: W },
    Spec { name: "pexpire", arity: -3, op: Op::Pexpire, route: Route::Key, flags: W },
    Spec { name: "ttl", arity: 2, op: Op::Ttl, route: Route::Key, flags: R },
    Spec { name: "pttl", arity: 2, op: Op::Pttl, route: Route::Key, flags: R },
    Spec { name: "mget", arity: -2, op: Op::Mget, route: Route::Keys { step: 1 }, flags: R },
    Spec { name: "mset", arity: -3, op: Op::Mset, route: Route::Keys { step: 2 }, flags: WD },
    Spec { name: "incr", arity: 2, op: Op::Incr, route: Route::Key, flags: WD },
    Spec { name: "incrby", arity: 3, op: Op::Incrby, route: Route::Key, flags: WD },
    Spec { name: "decr", arity: 2, op: Op::Decr, route: Route::Key, flags: WD },
    Spec { name: "decrby", arity: 3, op: Op::Decrby, route: Route::Key, flags: WD },
    Spec { name: "cl.throttle", arity: -5, op: Op::Throttle, route: Route::Key, flags: W },
    Spec { name: "breaker.acquire", arity: 2, op: Op::BreakerAcquire, route: Route::Key, flags: W },
    Spec { name: "breaker.record", arity: -4, op: Op::BreakerRecord, route: Route::Key, flags: W },
    Spec { name: "breaker.state", arity: 2, op: Op::BreakerState, route: Route::Key, flags: R },
    Spec { name: "breaker.config", arity: -2, op: Op::BreakerConfig, route: Route::Key, flags: W },
    Spec { name: "idem.begin", arity: 4, op: Op::IdemBegin, route: Route::Key, flags: WD },
    Spec { name: "idem.complete", arity: 4, op: Op::IdemComplete, route: Route::Key, flags: WD },
    Spec { name: "idem.abandon", arity: 3, op: Op::IdemAbandon, route: Route::Key, flags: W },
    // Older forms client libraries still send.
    Spec { name: "setex", arity: 4, op: Op::Setex, route: Route::Key, flags: WD },
    Spec { name: "psetex", arity: 4, op: Op::Psetex, route: Route::Key, flags: WD },
    Spec { name: "setnx", arity: 3, op: Op::Setnx, route: Route::Key, flags: WD },
    Spec { name: "getdel", arity: 2, op: Op::Getdel, route: Route::Key, flags: W },
    Spec { name: "persist", arity: 2, op: Op::Persist, route: Route::Key, flags: W },
    Spec { name: "type", arity: 2, op: Op::Type, route: Route::Key, flags: R },
    Spec { name: "unlink", arity: -2, op: Op::Unlink, route: Route::Keys { step: 1 }, flags: W },
    Spec { name: "getset", arity: 3, op: Op::Getset, route: Route::Key, flags: WD },
    Spec { name: "strlen", arity: 2, op: Op::Strlen, route: Route::Key, flags: R },
    Spec { name: "append", arity: 3, op: Op::Append, route: Route::Key, flags: WD },
    Spec { name: "getex", arity: -2, op: Op::Getex, route: Route::Key, flags: W },
    Spec { name: "expiretime", arity: 2, op: Op::Expiretime, route: Route::Key, flags: R },
    Spec { name: "pexpiretime", arity: 2, op: Op::Pexpiretime, route: Route::Key, flags: R },
    Spec { name: "auth", arity: -2, op: Op::Auth, route: Route::Conn, flags: A },
    Spec { name: "time", arity: 1, op: Op::Time, route: Route::Conn, flags: A },
    Spec { name: "keys", arity: 2, op: Op::Keys, route: Route::All, flags: &["readonly"] },
    Spec { name: "scan", arity: -2, op: Op::Scan, route: Route::Conn, flags: &["readonly"] },
    Spec { name: "touch", arity: -2, op: Op::Touch, route: Route::Keys { step: 1 }, flags: R },
    Spec { name: "expireat", arity: -3, op: Op::Expireat, route: Route::Key, flags: W },
    Spec { name: "pexpireat", arity: -3, op: Op::Pexpireat, route: Route::Key, flags: W },
    Spec { name: "multi", arity: 1, op: Op::Multi, route: Route::Conn, flags: A },
    Spec { name: "exec", arity: 1, op: Op::Exec, route: Route::Conn, flags: &[] },
    Spec { name: "discard", arity: 1, op: Op::Discard, route: Route::Conn, flags: A },
    Spec { name: "watch", arity: -2, op: Op::Watch, route: Route::Conn, flags: A },
    Spec { name: "unwatch", arity: 1, op: Op::Unwatch, route: Route::Conn, flags: A },
    Spec { name: "flushdb", arity: -1, op: Op::Flushdb, route: Route::All, flags: &["write"] },
    Spec { name: "getrange", arity: 4, op: Op::Getrange, route: Route::Key, flags: R },
    Spec { name: "setrange", arity: 4, op: Op::Setrange, route: Route::Key, flags: WD },
    Spec { name: "incrbyfloat", arity: 3, op: Op::Incrbyfloat, route: Route::Key, flags: WD },
    // Two keys, run on the first one's shard: both must live there.
    Spec { name: "rename", arity: 3, op: Op::Rename, route: Route::Key, flags: &["write"] },
    Spec { name: "renamenx", arity: 3, op: Op::Renamenx, route: Route::Key, flags: W },
    Spec { name: "copy", arity: -3, op: Op::Copy, route: Route::Key, flags: &["write"] },
    Spec { name: "move", arity: 3, op: Op::Move, route: Route::Key, flags: W },
    Spec { name: "msetnx", arity: -3, op: Op::Msetnx, route: Route::Key, flags: WD },
    Spec { name: "substr", arity: 4, op: Op::Substr, route: Route::Key, flags: R },
    Spec { name: "reset", arity: 1, op: Op::Reset, route: Route::Conn, flags: A },
];

/// Finds a command by name, ignoring ASCII case.
#[inline]
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    if name.len() > 16 {
        return None;
    }
    let mut lower = [0u8; 16];
    for (d, s) in lower.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    // The hot commands first, without a scan.
    let i = match &lower[..name.len()] {
        b"get" => HOT_GET,
        b"set" => HOT_SET,
        b"cl.throttle" => HOT_THROTTLE,
        b"mget" => HOT_MGET,
        b"incr" => HOT_INCR,
        other => return TABLE.iter().find(|s| s.name.as_bytes() == other),
    };
    Some(&TABLE[i])
}

// The rows `lookup` jumps to, checked when compiling: moving a row breaks
// the build, not the server.
const HOT_GET: usize = 11;
const HOT_SET: usize = 12;
const HOT_MGET: usize = 19;
const HOT_INCR: usize = 21;
const HOT_THROTTLE: usize = 25;
const _: () = assert!(
    matches!(TABLE[HOT_GET].op, Op::Get)
        && matches!(TABLE[HOT_SET].op, Op::Set)
        && matches!(TABLE[HOT_MGET].op, Op::Mget)
        && matches!(TABLE[HOT_INCR].op, Op::Incr)
        && matches!(TABLE[HOT_THROTTLE].op, Op::Throttle)
);

/// The spec of `op`.
pub fn spec(op: Op) -> &'static Spec {
    // Every `Op` has exactly one row; the table test checks it.
    TABLE.iter().find(|s| s.op == op).unwrap_or(&TABLE[0])
}

impl Op {
    /// True when argument `i` (0: the first after the name) is a key, for
    /// the commands that run on one shard: the first argument, and for the
    /// commands of several keys, which must all live on that shard, the
    /// others too.
    pub fn key_at(self, i: usize) -> bool {
        match self {
            Op::Rename | Op::Renamenx | Op::Copy => i < 2,
            Op::Msetnx => i.is_multiple_of(2),
            _ => i == 0,
        }
    }

    /// True when the command has keys beyond its first argument.
    pub fn more_keys(self) -> bool {
        matches!(self, Op::Rename | Op::Renamenx | Op::Copy | Op::Msetnx)
    }

    /// True when the command's first argument is a key of the selected
    /// database (the cache commands); false for the resilience commands,
    /// whose state belongs to no database, and for the commands that take
    /// no key.
    pub fn in_database(self) -> bool {
        !matches!(
            self,
            Op::Info
                | Op::Dbsize
                | Op::Flushall
                | Op::Flushdb
                | Op::Keys
                | Op::Scan
                | Op::Watch
                | Op::Unwatch
                | Op::Exec
                | Op::Client
                | Op::Throttle
                | Op::BreakerAcquire
                | Op::BreakerRecord
                | Op::BreakerState
                | Op::BreakerConfig
                | Op::IdemBegin
                | Op::IdemComplete
                | Op::IdemAbandon
        )
    }

    /// True when the command may change the key it is run on (or, for
    /// `FLUSHALL` / `FLUSHDB`, every key): what invalidates a `WATCH`.
    pub fn writes(self) -> bool {
        !matches!(
            self,
            Op::Get
                | Op::Exists
                | Op::Touch
                | Op::Getrange
                | Op::Substr
                | Op::Strlen
                | Op::Type
                | Op::Ttl
                | Op::Pttl
                | Op::Expiretime
                | Op::Pexpiretime
                | Op::Keys
                | Op::Scan
                | Op::Dbsize
                | Op::Info
                | Op::BreakerState
                | Op::Mget
                // Connection commands and transactions touch no key.
                | Op::Ping
                | Op::Echo
                | Op::Auth
                | Op::Time
                | Op::Quit
                | Op::Reset
                | Op::Select
                | Op::Hello
                | Op::Client
                | Op::Command
                | Op::Config
                | Op::Multi
                | Op::Exec
                | Op::Discard
                | Op::Watch
                | Op::Unwatch
        )
    }
}

/// The part of `key` that picks its shard: the bytes between the first `{`
/// and the next `}` when there are any (Redis Cluster's hash tag), else the
/// whole key. Keys with one tag, like `{user:42}:cart` and
/// `{user:42}:orders`, live on one shard.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        let rest = &key[open + 1..];
        if let Some(close) = rest.iter().position(|&b| b == b'}') {
            if close > 0 {
                return &rest[..close];
            }
        }
    }
    key
}

impl Spec {
    /// True when `argc` arguments (name included) satisfy the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let ok = if self.arity >= 0 {
            argc == self.arity as usize
        } else {
            argc >= self.arity.unsigned_abs() as usize
        };
        match self.op {
            Op::Throttle => argc == 5 || argc == 6,
            _ => ok,
        }
    }
}

/// Parses a signed decimal integer exactly as Redis's `string2ll` does: an
/// optional `-`, then `0` alone or digits without a leading zero; no spaces,
/// no `+`, no `-0`, at most 20 bytes, within `i64`.
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    if b == b"0" {
        return Some(0);
    }
    let (neg, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    if b.len() > 20 || !matches!(digits.first(), Some(b'1'..=b'9')) {
        return None;
    }
    // Accumulate negatively so that i64::MIN parses too.
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_sub((d - b'0') as i64)?;
    }
    if neg {
        Some(v)
    } else {
        v.checked_neg()
    }
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]` options, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanArgs<'a> {
    /// The cursor: the shard in `cursor % shards`, the bucket to resume at
    /// in `cursor / shards`.
    pub cursor: u64,
    /// Keys must match this glob (`*` when not given).
    pub pattern: &'a [u8],
    /// Buckets' worth of entries to look at (default 10, as Redis).
    pub count: usize,
    /// False when `TYPE` names a type other than `string`: nothing matches.
    pub strings: bool,
}

/// A `SCAN` cursor (an unsigned 64-bit number), or Redis's error.
pub fn scan_cursor(arg: &[u8]) -> Result<u64, &'static str> {
    std::str::from_utf8(arg).ok().and_then(|c| c.parse().ok()).ok_or("ERR invalid cursor")
}

impl<'a> ScanArgs<'a> {
    /// Parses `args` (after the command name), or gives Redis's error.
    pub fn parse(args: &[&'a [u8]]) -> Result<Self, &'static str> {
        let mut a = ScanArgs { cursor: scan_cursor(args[0])?, pattern: b"*", count: 10, strings: true };
        let mut i = 1;
        while i < args.len() {
            let (opt, val) = (args[i], args.get(i + 1).ok_or("ERR syntax error")?);
            if opt.eq_ignore_ascii_case(b"MATCH") {
                a.pattern = val;
            } else if opt.eq_ignore_ascii_case(b"COUNT") {
                match parse_i64(val) {
                    Some(n) if n >= 1 => a.count = n.min(1 << 20) as usize,
                    Some(_) => return Err("ERR syntax error"),
                    None => return Err("ERR value is not an integer or out of range"),
                }
            } else if opt.eq_ignore_ascii_case(b"TYPE") {
                a.strings = val.eq_ignore_ascii_case(b"string");
            } else {
                return Err("ERR syntax error");
            }
            i += 2;
        }
        Ok(a)
    }
}

/// One token of a glob pattern at `pat[p..]` tested against byte `c`:
/// whether it matches, and where the next token starts. `?` matches any
/// byte, `[...]` a class (`^` negates, `a-z` ranges either way round, `\`
/// escapes), `\x` the byte `x`, anything else itself.
fn glob_token(pat: &[u8], mut p: usize, c: u8) -> (bool, usize) {
    match pat[p] {
        b'?' => (true, p + 1),
        b'\\' if p + 1 < pat.len() => (pat[p + 1] == c, p + 2),
        b'[' => {
            p += 1;
            let negate = pat.get(p) == Some(&b'^');
            if negate {
                p += 1;
            }
            let mut hit = false;
            // As Redis: the class runs to `]` or to the end of the pattern.
            while p < pat.len() && pat[p] != b']' {
                if pat[p] == b'\\' && p + 1 < pat.len() {
                    hit |= pat[p + 1] == c;
                    p += 2;
                } else if p + 2 < pat.len() && pat[p + 1] == b'-' {
                    // As Redis: `[b-]` is the range `]`..`b` (the `]` is
                    // taken as the range's end, not as the class's).
                    let (a, b) = (pat[p].min(pat[p + 2]), pat[p].max(pat[p + 2]));
                    hit |= (a..=b).contains(&c);
                    p += 3;
                } else {
                    hit |= pat[p] == c;
                    p += 1;
                }
            }
            (hit != negate, (p + 1).min(pat.len()))
        }
        other => (other == c, p + 1),
    }
}

/// A Redis glob (`KEYS`, `SCAN MATCH`, `CONFIG GET`): `*`, `?`, `[...]`
/// classes and `\` escapes, matched greedily with one backtrack point (every
/// other token takes exactly one byte), so O(pattern x text) even for
/// patterns full of stars.
pub fn glob(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if pat.get(p) == Some(&b'*') {
            star = Some((p, i));
            p += 1;
            continue;
        }
        let step = (p < pat.len()).then(|| glob_token(pat, p, s[i]));
        match step {
            Some((true, next)) => {
                p = next;
                i += 1;
            }
            _ => match star {
                Some((sp, si)) => {
                    p = sp + 1;
                    i = si + 1;
                    star = Some((sp, si + 1));
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_ignores_case_and_every_op_has_one_row() {
        for s in TABLE {
            assert_eq!(lookup(s.name.as_bytes()).map(|f| f.name), Some(s.name));
            assert_eq!(lookup(s.name.to_ascii_uppercase().as_bytes()).map(|f| f.name), Some(s.name));
        }
        assert_eq!(lookup(b"GET").map(|s| s.op), Some(Op::Get));
        assert_eq!(lookup(b"cL.ThRoTtLe").map(|s| s.op), Some(Op::Throttle));
        assert!(lookup(b"nosuchcommand").is_none());
        assert!(lookup(b"averyveryverylongname").is_none());
        for s in TABLE {
            assert_eq!(TABLE.iter().filter(|t| t.op == s.op).count(), 1, "{}", s.name);
            assert_eq!(spec(s.op).name, s.name);
            assert!(s.name.len() <= 16);
        }
    }

    #[test]
    fn hash_tags_follow_redis_cluster() {
        assert_eq!(hash_tag(b"{user:42}:cart"), b"user:42");
        assert_eq!(hash_tag(b"x{a}y{b}"), b"a");
        assert_eq!(hash_tag(b"{}a"), b"{}a");
        assert_eq!(hash_tag(b"a{b"), b"a{b");
        assert_eq!(hash_tag(b"a}b{c}"), b"c");
        assert_eq!(hash_tag(b"plain"), b"plain");
    }

    #[test]
    fn writes_are_what_invalidate_a_watch() {
        assert!(Op::Set.writes() && Op::Del.writes() && Op::Flushall.writes() && Op::Throttle.writes());
        assert!(!Op::Get.writes() && !Op::Ttl.writes() && !Op::Exec.writes() && !Op::Ping.writes());
        for s in TABLE {
            if s.route == Route::Conn {
                assert!(!s.op.writes(), "{}", s.name);
            }
        }
    }

    #[test]
    fn arity_follows_redis_conventions() {
        let get = lookup(b"get").unwrap();
        assert!(get.arity_ok(2) && !get.arity_ok(1) && !get.arity_ok(3));
        let set = lookup(b"set").unwrap();
        assert!(set.arity_ok(3) && set.arity_ok(7) && !set.arity_ok(2));
        let mset = lookup(b"mset").unwrap();
        // An even MSET passes arity (-3) and is refused when it runs, so
        // that MULTI queues it as Redis does.
        assert!(mset.arity_ok(3) && mset.arity_ok(4) && !mset.arity_ok(2));
        let t = lookup(b"cl.throttle").unwrap();
        assert!(t.arity_ok(5) && t.arity_ok(6) && !t.arity_ok(7) && !t.arity_ok(4));
    }

    #[test]
    fn globs_match_like_redis() {
        assert!(glob(b"*", b"maxmemory"));
        assert!(glob(b"max*", b"maxclients"));
        assert!(glob(b"p?rt", b"port"));
        assert!(!glob(b"save", b"saves"));
        assert!(glob(b"*o*o*", b"maxmemory-policy"));
        assert!(!glob(b"*z*", b"maxmemory"));
        assert!(glob(b"**", b""));
        let stars = "*a".repeat(30);
        assert!(!glob(stars.as_bytes(), &[b'a'; 29]));
        assert!(glob(b"user:[0-9]*", b"user:7abc"));
        assert!(!glob(b"user:[0-9]*", b"user:x"));
        assert!(glob(b"h[^e]llo", b"hallo") && !glob(b"h[^e]llo", b"hello"));
        assert!(glob(b"h[a-b]llo", b"hbllo") && glob(b"h[b-a]llo", b"hallo"));
        assert!(glob(b"a\\*b", b"a*b") && !glob(b"a\\*b", b"axb"));
        assert!(glob(b"[\\]]", b"]") && glob(b"[abc", b"b"));
        assert!(glob(b"*[xy]", b"aaay") && !glob(b"*[xy]", b"aaaz"));
        // A `-` right before `]` makes a range ending at `]`, as Redis's
        // stringmatchlen reads it (checked against redis-server 7.0).
        assert!(glob(b"[b-]", b"]") && glob(b"[b-]", b"a") && glob(b"[b-]", b"^") && !glob(b"[b-]", b"-"));
    }

    #[test]
    fn integers_parse_as_redis_string2ll_does() {
        for (s, v) in [
            ("0", 0),
            ("7", 7),
            ("-7", -7),
            ("10", 10),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
        ] {
            assert_eq!(parse_i64(s.as_bytes()), Some(v), "{s}");
        }
        for s in [
            "",
            "-",
            "-0",
            "00",
            "010",
            "+1",
            " 1",
            "1 ",
            "1e3",
            "0x10",
            "1.0",
            "9223372036854775808",
            "-9223372036854775809",
            "99999999999999999999",
            "--1",
            "1-",
        ] {
            assert_eq!(parse_i64(s.as_bytes()), None, "{s:?}");
        }
    }
}
