//! Starting and stopping the engine: listeners, shards, accept loops.

use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use resilience::runtime::{self, net::TcpListener, Runtime};
use resilience::sync::{Arc, AtomicU64, AtomicUsize, Mutex, Ordering};

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
    /// INFO's first sections, shared by every shard.
    pub(crate) fn info_server_section(&self, shards: usize) -> Vec<u8> {
        let c = &self.config;
        format!(
            "# Server\r\nresilienced_version:{v}\r\nredis_version:7.0.0\r\nredis_mode:standalone\r\n\
             multiplexing_api:io_uring\r\nprocess_id:{pid}\r\ntcp_port:{port}\r\nuptime_in_seconds:{up}\r\n\
             shards:{shards}\r\n\r\n# Clients\r\nconnected_clients:{cl}\r\nmaxclients:{maxc}\r\n\
             rejected_connections:{rej}\r\ntotal_connections_received:{acc}\r\n\r\n# Memory\r\n\
             used_memory_rss:{rss}\r\nmaxmemory:{maxm}\r\nmaxmemory_policy:s3fifo\r\n\r\n",
            v = env!("CARGO_PKG_VERSION"),
            pid = std::process::id(),
            port = self.addr.port(),
            up = self.started.elapsed().as_secs(),
            cl = self.clients.load(Ordering::Relaxed),
            maxc = c.maxclients,
            rej = self.rejected_clients.load(Ordering::Relaxed),
            acc = self.accepted.load(Ordering::Relaxed),
            maxm = c.maxmemory,
            rss = rss_bytes(),
        )
        .into_bytes()
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
            ("databases", "1".into()),
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
