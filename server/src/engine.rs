//! Starting and stopping the engine: listeners, shards, accept loops.

use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use resilience::runtime::{self, net::TcpListener, Runtime};
use resilience::sync::{Arc, AtomicU64, AtomicUsize, Mutex, Ordering};

use crate::command::REDIS_VERSION;
use crate::config::Config;
use crate::conn;
use crate::resp::Encoder;
use crate::state::ShardState;

/// What every shard shares: the settings and a few process-wide counters.
#[derive(Debug)]
pub struct Server {
    /// The settings it was started with.
    pub config: Config,
    /// Connections open now.
    pub clients: AtomicUsize,
    /// Connections refused because of `maxclients`.
    pub rejected_clients: AtomicU64,
    /// Connections accepted so far (also the next client id).
    pub accepted: AtomicU64,
    /// Seed of the key -> shard hash (the same on every shard).
    pub route_seed: u64,
    /// The address actually bound.
    pub addr: SocketAddr,
    started: Instant,
}

impl Server {
    /// The `INFO` reply: the `sections` asked for (see [`info_sections`]),
    /// totals summed over the shards' own sections `shard_texts` (`name:value`
    /// lines), then the shards' sections themselves.
    pub(crate) fn info_text(&self, sections: u8, shards: usize, shard_texts: &[&[u8]]) -> Vec<u8> {
        use std::fmt::Write as _;
        let total = |field: &str| -> u64 {
            shard_texts
                .iter()
                .flat_map(|t| t.split(|&b| b == b'\n'))
                .filter_map(|line| {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    let v = line.strip_prefix(field.as_bytes())?.strip_prefix(b":")?;
                    std::str::from_utf8(v).ok()?.parse::<u64>().ok()
                })
                .sum()
        };
        let c = &self.config;
        let mut t = String::new();
        // Sections are separated by a blank line, as Redis prints them (none
        // after the last).
        let mut section = |bit: u8, body: &mut dyn FnMut(&mut String)| {
            if sections & bit != 0 {
                if !t.is_empty() {
                    t.push_str("\r\n");
                }
                body(&mut t);
            }
        };
        let up = self.started.elapsed().as_secs();
        section(info::SERVER, &mut |t| {
            let _ = write!(
                t,
                "# Server\r\nresilienced_version:{v}\r\nredis_version:{REDIS_VERSION}\r\nredis_mode:standalone\r\n\
                 os:{os}\r\narch_bits:{bits}\r\nmultiplexing_api:io_uring\r\nprocess_id:{pid}\r\n\
                 tcp_port:{port}\r\nuptime_in_seconds:{up}\r\nuptime_in_days:{days}\r\nshards:{shards}\r\n",
                v = env!("CARGO_PKG_VERSION"),
                os = std::env::consts::OS,
                bits = usize::BITS,
                pid = std::process::id(),
                port = self.addr.port(),
                days = up / 86_400,
            );
        });
        section(info::CLIENTS, &mut |t| {
            let _ = write!(
                t,
                "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:0\r\n",
                self.clients.load(Ordering::Relaxed),
                c.maxclients,
            );
        });
        section(info::MEMORY, &mut |t| {
            let (used, rss, max) = (total("used_memory"), rss_bytes(), c.maxmemory);
            let _ = write!(
                t,
                "# Memory\r\nused_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\n\
                 used_memory_rss_human:{}\r\nmaxmemory:{max}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:s3fifo\r\n",
                human_bytes(used),
                human_bytes(rss),
                human_bytes(max),
            );
        });
        section(info::STATS, &mut |t| {
            let _ = write!(
                t,
                "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
                 rejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\nkeyspace_hits:{}\r\n\
                 keyspace_misses:{}\r\n",
                self.accepted.load(Ordering::Relaxed),
                total("ops"),
                self.rejected_clients.load(Ordering::Relaxed),
                total("expired_keys"),
                total("evictions"),
                total("keyspace_hits"),
                total("keyspace_misses"),
            );
        });
        section(info::REPLICATION, &mut |t| {
            t.push_str("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n")
        });
        section(info::KEYSPACE, &mut |t| {
            t.push_str("# Keyspace\r\n");
            for db in 0..self.config.databases {
                let keys = total(&format!("keys_db{db}"));
                if keys > 0 {
                    let _ = write!(
                        t,
                        "db{db}:keys={keys},expires={},avg_ttl=0\r\n",
                        total(&format!("expires_db{db}"))
                    );
                }
            }
        });
        let mut out = t.into_bytes();
        if sections & info::SHARDS != 0 {
            debug_assert_eq!(shard_texts.len(), shards);
            for (i, text) in shard_texts.iter().enumerate() {
                let prefix = format!("shard{i}_");
                // Fields get a `shardN_` prefix: the totals above keep their
                // names unique, so clients that read INFO into one map
                // (redis-py's `info()`) see the totals.
                for line in text.split(|&b| b == b'\n') {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if line.is_empty() {
                        continue;
                    }
                    if line.starts_with(b"# ") {
                        if !out.is_empty() {
                            out.extend_from_slice(b"\r\n");
                        }
                    } else {
                        out.extend_from_slice(prefix.as_bytes());
                    }
                    out.extend_from_slice(line);
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
        out
    }

    /// `CONFIG GET`'s parameters.
    pub(crate) fn config_params(&self) -> Vec<(String, String)> {
        let c = &self.config;
        [
            ("bind", c.bind.to_string()),
            ("port", self.addr.port().to_string()),
            ("maxmemory", c.maxmemory.to_string()),
            ("maxmemory-policy", "s3fifo".into()),
            ("maxclients", c.maxclients.to_string()),
            ("databases", c.databases.to_string()),
            ("save", String::new()),
            ("appendonly", "no".into()),
            ("proto-max-bulk-len", c.limits.max_bulk.to_string()),
            ("shards", c.shards.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// `INFO` sections, as bits.
pub(crate) mod info {
    pub const SERVER: u8 = 1;
    pub const CLIENTS: u8 = 2;
    pub const MEMORY: u8 = 4;
    pub const STATS: u8 = 8;
    pub const REPLICATION: u8 = 16;
    pub const KEYSPACE: u8 = 32;
    /// The `# Shard N` sections (per-shard counters).
    pub const SHARDS: u8 = 64;
    pub const ALL: u8 = 127;
}

/// The sections `INFO [section ...]` asks for: none named, `default`, `all`
/// or `everything` give every one; unknown names add nothing (Redis answers
/// an empty text for them); `shard` / `shards` are this server's per-shard
/// sections.
pub(crate) fn info_sections<'a>(names: impl Iterator<Item = &'a [u8]>) -> u8 {
    let mut bits = 0;
    let mut any = false;
    for n in names {
        any = true;
        bits |= match n.to_ascii_lowercase().as_slice() {
            b"default" | b"all" | b"everything" => info::ALL,
            b"server" => info::SERVER,
            b"clients" => info::CLIENTS,
            b"memory" => info::MEMORY,
            b"stats" => info::STATS,
            b"replication" => info::REPLICATION,
            b"keyspace" => info::KEYSPACE,
            b"shard" | b"shards" => info::SHARDS,
            _ => 0,
        };
    }
    if any {
        bits
    } else {
        info::ALL
    }
}

/// Bytes as Redis's `bytesToHuman` prints them: `512B`, `1.50K`, `9.39M`,
/// `1.00G`, and so on.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut d = n as f64 / 1024.0;
    let mut u = 0;
    while d >= 1024.0 && u + 1 < UNITS.len() {
        d /= 1024.0;
        u += 1;
    }
    format!("{d:.2}{}", UNITS[u])
}

/// The process's resident memory, from `/proc/self/statm` (0 if unknown).
fn rss_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .unwrap_or(0);
    // SAFETY: sysconf takes no pointers.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(0) as u64
}

/// Why the engine did not start.
#[derive(Debug)]
pub enum StartError {
    /// io_uring is refused; the message says how to enable it.
    Runtime(runtime::Error),
    /// The listen address could not be bound.
    Bind(SocketAddr, std::io::Error),
    /// A bad setting.
    Config(String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Runtime(e) => write!(f, "{e}"),
            Self::Bind(a, e) => write!(f, "cannot listen on {a}: {e}"),
            Self::Config(e) => write!(f, "bad configuration: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A running `resilienced`.
pub struct Engine {
    rt: Runtime,
    srv: Arc<Server>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine").field("addr", &self.srv.addr).finish()
    }
}

impl Engine {
    /// Binds the listeners (one per shard, `SO_REUSEPORT`) and starts the
    /// shards. Fails with one clear line when io_uring is unavailable.
    pub fn start(config: Config) -> Result<Engine, StartError> {
        runtime::probe().map_err(StartError::Runtime)?;
        let shards = config.shards.max(1);
        let addr = SocketAddr::new(config.bind, config.port);
        let group = TcpListener::bind_group(addr, shards, 1024).map_err(|e| StartError::Bind(addr, e))?;
        let addr = group[0].local_addr().map_err(|e| StartError::Bind(addr, e))?;
        let listeners: Vec<Option<TcpListener>> = group.into_iter().map(Some).collect();
        let srv = Arc::new(Server {
            config: config.clone(),
            clients: AtomicUsize::new(0),
            rejected_clients: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            route_seed: resilience::hash::SeededState::new().seed(),
            addr,
            started: Instant::now(),
        });
        // Each shard's state is checked here first, so a bad setting is an
        // error rather than a failed shard.
        ShardState::new(0, shards, &config).map_err(StartError::Config)?;
        let listeners = Arc::new(Mutex::new(listeners));
        let rt_config = runtime::Config {
            shards,
            pin: config.pin,
            stop_grace: config.shutdown_grace,
            spin: Duration::from_micros(config.spin_us),
            ..runtime::Config::default()
        };
        let init_cfg = config.clone();
        let main_srv = srv.clone();
        let rt = Runtime::start(
            rt_config,
            move |shard| {
                // Checked above; the same settings cannot fail here.
                ShardState::new(shard, shards, &init_cfg).unwrap_or_else(|_| unreachable!())
            },
            move |shard| {
                let listener = listeners.lock().ok().and_then(|mut l| l[shard].take());
                shard_main(listener, main_srv.clone())
            },
        )
        .map_err(StartError::Runtime)?;
        Ok(Engine { rt, srv })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.srv.addr
    }

    /// The shared server state (settings and counters).
    pub fn server(&self) -> &Server {
        &self.srv
    }

    /// Stops accepting, lets connections finish what they are doing, and
    /// asks every shard to exit. Returns at once; [`Engine::join`] waits.
    pub fn stop(&self) {
        self.rt.stop();
    }

    /// Waits until every shard has exited.
    pub fn join(self) {
        self.rt.join();
    }

    /// The runtime's per-shard counters.
    pub fn runtime_stats(&self) -> runtime::Stats {
        self.rt.stats()
    }
}

async fn shard_main(listener: Option<TcpListener>, srv: Arc<Server>) {
    let state: Rc<ShardState> = runtime::state();
    runtime::spawn(async move {
        while !runtime::stopping() {
            runtime::sleep(Duration::from_millis(100)).await;
            state.tick();
        }
    });
    let Some(listener) = listener else { return };
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let id = srv.accepted.fetch_add(1, Ordering::Relaxed) + 1;
                if srv.clients.fetch_add(1, Ordering::Relaxed) >= srv.config.maxclients {
                    srv.clients.fetch_sub(1, Ordering::Relaxed);
                    srv.rejected_clients.fetch_add(1, Ordering::Relaxed);
                    runtime::spawn(async move {
                        let mut o = Vec::new();
                        Encoder::error(&mut o, "ERR max number of clients reached");
                        let _ = stream.send_all(o).await;
                    });
                    continue;
                }
                runtime::spawn(conn::serve(stream, srv.clone(), id));
            }
            Err(_) if runtime::stopping() => return,
            Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => return,
            // Out of descriptors or a transient error: breathe, then retry.
            Err(_) => runtime::sleep(Duration::from_millis(10)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_print_as_redis_prints_them() {
        assert_eq!(human_bytes(0), "0B");
        assert_eq!(human_bytes(1023), "1023B");
        assert_eq!(human_bytes(1536), "1.50K");
        assert_eq!(human_bytes(1 << 30), "1.00G");
        assert_eq!(human_bytes(9_846_784), "9.39M");
    }
}
