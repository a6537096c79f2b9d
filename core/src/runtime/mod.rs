//! The thread-per-core engine: pinned shards, io_uring, a mesh of SPSC rings.
//!
//! [`Runtime::start`] spawns one thread per shard. Each shard is pinned to a
//! CPU with `core_affinity`, owns its io_uring, a small single-threaded
//! executor (async/await; the waker is hand-written and shard-local), a timer
//! heap, and one inbound SPSC ring from every other shard, with an eventfd
//! wake-up for when it sleeps in `io_uring_enter`. Nothing is shared between
//! shards except those rings, the wake-ups and a few counters.
//!
//! Inside a shard, code runs as tasks ([`spawn`]) and uses the free functions
//! of this module, which act on the current shard: [`sleep`], [`call`] (run a
//! closure on another shard and bring the answer back), [`shard_id`],
//! [`stopping`], and the sockets of [`net`], whose reads and writes go
//! through the shard's io_uring.
//!
//! ```no_run
//! use resilience::runtime::{self, Config, Runtime};
//!
//! let rt = Runtime::start(Config::default(), |_shard| (), |shard| async move {
//!     let other = (shard + 1) % runtime::shard_count();
//!     let id = runtime::call(other, runtime::shard_id).await;
//!     assert_eq!(id, other);
//! })
//! .expect("io_uring is available");
//! rt.stop();
//! rt.join();
//! ```
//!
//! Where io_uring cannot be used (kernel too old, the
//! `kernel.io_uring_disabled` sysctl, a container's seccomp profile),
//! [`Runtime::start`] and [`probe`] return [`Error::Unavailable`], whose
//! `Display` is one line saying so and how to enable it.
//!
//! The engine itself needs io_uring (Linux) and packs task ids into a
//! 64-bit word; under loom only [`wake`], the lock-free handshake, is built.

pub mod wake;

/// Applies the engine's cfg to every item given.
macro_rules! engine {
    ($($item:item)*) => {
        $(
            #[cfg(all(target_os = "linux", target_pointer_width = "64", not(resilience_loom)))]
            $item
        )*
    };
}

engine! {
    mod driver;
    mod executor;
    mod mesh;
    pub mod net;
    mod shard;
    mod timer;

    pub use executor::JoinHandle;
    pub use mesh::Call;
    pub use shard::{
        call, local_stats, shard_count, shard_id, sleep, sleep_until, spawn, state, stopped, stopping, with_state,
        yield_now, Config, Runtime, ShardStats, Stats,
    };
    pub use timer::Sleep;

    use std::fmt;
    use std::io;

/// Why the runtime could not start.
#[derive(Debug)]
pub enum Error {
    /// The kernel refused `io_uring_setup` (or lacks a feature the runtime needs).
    Unavailable {
        /// What the kernel said.
        reason: String,
    },
    /// Any other I/O failure while setting up (eventfd, threads, sockets).
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable { reason } => write!(
                f,
                "io_uring is unavailable ({reason}): it needs Linux >= 5.11 with io_uring enabled; \
                 run `sysctl -w kernel.io_uring_disabled=0` as root, or allow io_uring_setup/io_uring_enter \
                 in the container's seccomp profile (e.g. docker run --security-opt seccomp=unconfined)"
            ),
            Self::Io(e) => write!(f, "runtime setup failed: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Checks that this process may use io_uring with the features the runtime
/// needs, by creating (and dropping) a small ring.
///
/// The ring lives on a short-lived thread of its own: tearing a ring down
/// leaves kernel work queued on the thread that made it, which would cut
/// that thread's next blocking system call short (`EINTR`, e.g. a socket
/// read with a timeout in the caller).
pub fn probe() -> Result<(), Error> {
    crate::sync::thread::spawn(|| driver::Driver::new(8).map(drop))
        .join()
        .unwrap_or_else(|_| Err(Error::Io(io::Error::other("io_uring probe thread panicked"))))
}
}
