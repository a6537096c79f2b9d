//! `resilienced`'s settings: defaults, command-line flags, config file.
//!
//! The config file uses redis.conf's shape: one `name value` per line, `#`
//! starts a comment. Flags given on the command line win over the file,
//! wherever `--config` appears among them.

use std::net::IpAddr;
use std::time::Duration;

use crate::resp::Limits;

/// The port `resilienced` listens on by default: Redis's 6379 plus 11, so the
/// two can run side by side.
pub const DEFAULT_PORT: u16 = 6390;

/// Everything `resilienced` can be told.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (default 127.0.0.1: loopback only).
    pub bind: IpAddr,
    /// TCP port (default [`DEFAULT_PORT`]; 0 picks a free one).
    pub port: u16,
    /// Shards (threads), default one per CPU.
    pub shards: usize,
    /// Pin shard threads to CPUs (default true).
    pub pin: bool,
    /// Memory budget for cached values, in bytes (default 1 GiB), split
    /// evenly between shards; the cache evicts to stay under it.
    pub maxmemory: u64,
    /// Most client connections at once (default 10000).
    pub maxclients: usize,
    /// Logical databases for `SELECT` (default 16, as Redis; at most 256).
    /// They share the memory budget; keys of databases other than 0 carry
    /// two extra bytes.
    pub databases: usize,
    /// Request parser limits.
    pub limits: Limits,
    /// Most requests of one client parsed and run as one batch before its
    /// replies are written (pipeline depth; default 1024).
    pub max_pipeline: usize,
    /// Bound on one client's pending output, in bytes, give or take one
    /// reply (default 1 MiB). While a client's replies are being written it
    /// is not read.
    pub max_output: usize,
    /// Most bytes buffered for one incomplete request (default 64 MiB).
    pub max_query: usize,
    /// Largest array reply one request may build (`MGET`), in bytes
    /// (default 512 MiB); a larger one is refused with an error instead of
    /// being built in memory.
    pub max_reply: usize,
    /// Idempotency: byte budget for records, split between shards (default
    /// 64 MiB, or 4 MiB per shard when that is more: each shard must hold
    /// one record of the largest size, about 1 MiB).
    pub idem_max_bytes: Option<usize>,
    /// Idempotency: how long completed records are replayed (default 24 h).
    pub idem_retention: Duration,
    /// Most circuit breakers per shard (default 65536).
    pub max_breakers: usize,
    /// Most rate-limiter keys per shard and quota (default 1 million).
    pub max_throttle_keys: usize,
    /// How long an idle shard polls before sleeping, in microseconds
    /// (default 0: sleep at once; 20-50 trims wake-up latency on dedicated
    /// cores, and costs the clients CPU on a shared machine).
    pub spin_us: u64,
    /// How long shutdown waits for connections to finish (default 5 s).
    pub shutdown_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: DEFAULT_PORT,
            shards: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            pin: true,
            maxmemory: 1 << 30,
            maxclients: 10_000,
            databases: 16,
            limits: Limits::default(),
            max_pipeline: 1024,
            max_output: 1 << 20,
            max_query: 64 << 20,
            max_reply: 512 << 20,
            idem_max_bytes: None,
            idem_retention: Duration::from_secs(24 * 3600),
            max_breakers: 65_536,
            max_throttle_keys: 1 << 20,
            spin_us: 0,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// `resilienced --help`.
pub const USAGE: &str = "\
resilienced: libresilience served over RESP (every Redis client is a client)

Usage: resilienced [--config FILE] [--bind ADDR] [--port N] [--shards N]
                   [--maxmemory BYTES] [--maxclients N] [--databases N]
                   [--no-pin] [--spin-us N] [--idem-max-bytes BYTES]
                   [--idem-retention SECONDS] [--proto-max-bulk-len BYTES]
                   [--max-reply BYTES]

  --bind ADDR        listen address (default 127.0.0.1)
  --port N           TCP port (default 6390, beside Redis's 6379; 0 = any free port)
  --shards N         threads, one per CPU by default
  --maxmemory BYTES  cache memory budget, e.g. 512mb, 2gb (default 1gb)
  --maxclients N     most connections at once (default 10000)
  --databases N      databases for SELECT, 1-256 (default 16)
  --no-pin           do not pin shard threads to CPUs
  --spin-us N        an idle shard polls N microseconds before sleeping (default 0)
  --idem-max-bytes BYTES   IDEM.* record budget (default 64mb, at least 4mb per shard)
  --idem-retention SECONDS how long completed IDEM.* answers replay (default 86400)
  --proto-max-bulk-len BYTES  largest bulk string of a request (default 16mb)
  --max-reply BYTES  largest array reply (MGET) one request may build; larger
                     ones are refused with an error (default 512mb)
  --config FILE      read `name value` lines: the same names without --, any
                     case, values optionally quoted; `no-pin` or `pin no`
  --help, --version
";

/// Parses a byte size the way redis.conf does: `1k` = 1000, `1kb` = 1024,
/// likewise `m`/`mb`, `g`/`gb`; a bare number is bytes.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1 << 10,
        "m" => 1000 * 1000,
        "mb" => 1 << 20,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mul)
}

impl Config {
    /// The idempotency byte budget in effect (see `idem_max_bytes`).
    pub fn idem_budget(&self) -> usize {
        self.idem_max_bytes.unwrap_or((64usize << 20).max(self.shards.saturating_mul(4 << 20)))
    }

    /// Applies one setting (`name` without dashes, any case).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let bad = || format!("invalid value for {name}: {value:?}");
        let yes_no = |v: &str| match v.to_ascii_lowercase().as_str() {
            "yes" | "true" => Ok(true),
            "no" | "false" => Ok(false),
            _ => Err(bad()),
        };
        match name.to_ascii_lowercase().as_str() {
            "bind" => self.bind = value.parse().map_err(|_| bad())?,
            "port" => self.port = value.parse().map_err(|_| bad())?,
            "shards" => {
                self.shards = value.parse().map_err(|_| bad())?;
                if self.shards == 0 || self.shards > 1024 {
                    return Err(bad());
                }
            }
            "maxmemory" => {
                self.maxmemory = parse_bytes(value).ok_or_else(bad)?;
                if self.maxmemory == 0 {
                    return Err(bad());
                }
            }
            "databases" => {
                self.databases = value.parse().map_err(|_| bad())?;
                if !(1..=256).contains(&self.databases) {
                    return Err(bad());
                }
            }
            "maxclients" => {
                self.maxclients = value.parse().map_err(|_| bad())?;
                if self.maxclients == 0 {
                    return Err(bad());
                }
            }
            "pin" => self.pin = yes_no(value)?,
            // `--no-pin` as a file line: `no-pin` alone or `no-pin yes`.
            "no-pin" => self.pin = !(value.is_empty() || yes_no(value)?),
            "idem-max-bytes" => {
                self.idem_max_bytes = Some(parse_bytes(value).filter(|&b| b > 0).ok_or_else(bad)? as usize)
            }
            "idem-retention" => {
                let secs: u64 =
                    value.parse().ok().filter(|s| (1..=365 * 24 * 3600).contains(s)).ok_or_else(bad)?;
                self.idem_retention = Duration::from_secs(secs);
            }
            "spin-us" => self.spin_us = value.parse().ok().filter(|v| *v <= 1_000_000).ok_or_else(bad)?,
            "proto-max-bulk-len" => {
                // 1mb..512mb (Redis's default is 512mb; it allows more, this
                // server does not); one request must be able to
                // carry such a string, so the query buffer grows with it.
                let n =
                    parse_bytes(value).filter(|n| ((1 << 20)..=(512 << 20)).contains(n)).ok_or_else(bad)?;
                self.limits.max_bulk = n as usize;
                self.max_query = self.max_query.max(self.limits.max_bulk + (1 << 20));
            }
            "max-reply" => {
                self.max_reply = parse_bytes(value).filter(|&n| n >= 1 << 20).ok_or_else(bad)? as usize;
            }
            _ => return Err(format!("unknown setting {name:?}")),
        }
        Ok(())
    }

    /// Applies a config file's text.
    pub fn apply_file(&mut self, text: &str) -> Result<(), String> {
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (name, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            // redis.conf style: a value may be quoted.
            let value = value.trim();
            let value =
                ['"', '\''].iter().find_map(|&q| value.strip_prefix(q)?.strip_suffix(q)).unwrap_or(value);
            self.set(name, value).map_err(|e| format!("line {}: {e}", n + 1))?;
        }
        Ok(())
    }

    /// Parses command-line arguments (without the program name). `Ok(None)`
    /// when `--help` or `--version` asked to print something and exit.
    pub fn from_args<I: IntoIterator<Item = String>>(args: I) -> Result<Option<Config>, String> {
        let args: Vec<String> = args.into_iter().collect();
        let mut cfg = Config::default();
        // The file first, so that flags override it.
        let mut i = 0;
        while i < args.len() {
            if args[i].eq_ignore_ascii_case("--config") {
                let path = args.get(i + 1).ok_or("--config needs a file")?;
                let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
                cfg.apply_file(&text).map_err(|e| format!("{path}: {e}"))?;
                i += 1;
            }
            i += 1;
        }
        let mut i = 0;
        while i < args.len() {
            let a = args[i].as_str();
            match a.to_ascii_lowercase().as_str() {
                "--help" | "-h" => {
                    print!("{USAGE}");
                    return Ok(None);
                }
                "--version" | "-v" => {
                    println!("resilienced {}", env!("CARGO_PKG_VERSION"));
                    return Ok(None);
                }
                "--no-pin" => cfg.pin = false,
                "--config" => i += 1,
                _ => {
                    let Some(name) = a.strip_prefix("--") else {
                        return Err(format!("unexpected argument {a:?}"));
                    };
                    let (name, value) = match name.split_once('=') {
                        Some((n, v)) => (n, v.to_string()),
                        None => {
                            i += 1;
                            (name, args.get(i).cloned().ok_or(format!("--{name} needs a value"))?)
                        }
                    };
                    cfg.set(name, &value)?;
                }
            }
            i += 1;
        }
        Ok(Some(cfg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn defaults_are_loopback_and_not_redis_port() {
        let c = Config::default();
        assert_eq!(c.bind.to_string(), "127.0.0.1");
        assert_eq!(c.port, 6390);
        assert!(c.shards >= 1);
    }

    #[test]
    fn flags_parse_and_override_the_file() {
        let dir = std::env::temp_dir().join(format!("resilienced-test-{}", std::process::id()));
        std::fs::write(&dir, "# comment\nport 7000\nmaxmemory 2mb  # inline\nshards 3\n").unwrap();
        let c = Config::from_args(args(&format!("--port 7001 --config {} --maxclients=5", dir.display())))
            .unwrap()
            .unwrap();
        std::fs::remove_file(&dir).ok();
        assert_eq!((c.port, c.maxmemory, c.shards, c.maxclients), (7001, 2 << 20, 3, 5));
    }

    #[test]
    fn the_file_reads_like_redis_conf() {
        let mut c = Config::default();
        c.apply_file("MAXMEMORY \"512mb\"\nno-pin\nIdem-Retention '60'\nidem-max-bytes 8mb\n").unwrap();
        assert_eq!((c.maxmemory, c.pin, c.idem_retention.as_secs()), (512 << 20, false, 60));
        assert_eq!(c.idem_budget(), 8 << 20);
        c.apply_file("pin yes\nno-pin no\n").unwrap();
        assert!(c.pin);
        // A larger bulk limit carries the query buffer with it.
        c.apply_file("proto-max-bulk-len 128mb").unwrap();
        assert!(c.max_query > 128 << 20);
        assert!(c.apply_file("proto-max-bulk-len 1gb").is_err(), "at most 512mb here");
        assert!(c.apply_file("idem-retention 0").is_err());
        c.apply_file("max-reply 2gb").unwrap();
        assert_eq!(c.max_reply, 2 << 30);
        assert!(c.apply_file("max-reply 1000").is_err(), "at least 1mb");
        // Flag names ignore case too; `--NO-PIN` takes no value.
        let c = Config::from_args(args("--NO-PIN --Port 7005")).unwrap().unwrap();
        assert_eq!((c.pin, c.port), (false, 7005));
    }

    #[test]
    fn the_idempotency_budget_grows_with_the_shards() {
        let mut c = Config { shards: 2, ..Config::default() };
        assert_eq!(c.idem_budget(), 64 << 20);
        c.shards = 64;
        assert_eq!(c.idem_budget(), 256 << 20);
        // Every shard can hold the largest record, so 64 shards start.
        for shard in [0, 63] {
            crate::state::ShardState::new(shard, 64, &c).unwrap();
        }
        c.idem_max_bytes = Some(1 << 20);
        let e = crate::state::ShardState::new(0, 64, &c).err().unwrap();
        assert!(e.contains("idem-max-bytes 1048576 is too small for 64 shards"), "{e}");
    }

    #[test]
    fn bad_values_are_errors_not_panics() {
        for bad in
            ["--port 99999", "--shards 0", "--maxmemory 12xb", "--bind nowhere", "--wat 1", "--port", "x"]
        {
            assert!(Config::from_args(args(bad)).is_err(), "{bad}");
        }
        assert_eq!(parse_bytes("1k"), Some(1000));
        assert_eq!(parse_bytes("1KB"), Some(1024));
        assert_eq!(parse_bytes("99999999999999gb"), None);
    }
}
