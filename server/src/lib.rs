//! # resilienced
//!
//! The libresilience engine served over RESP: every Redis client is a client.
//! One shard per CPU, each pinned and driving its own io_uring, each owning a
//! partition of the keyed state (cache entries, rate limiters, breakers,
//! idempotency records); shards talk only through the runtime's mesh of SPSC
//! rings.
//!
//! - [`resp`]: the zero-copy request parser and the reply encoder.
//! - [`command`]: the command table (names, arity, routing).
//! - [`state`]: one shard's keyed state and the commands that act on it.
//! - [`clients`]: one shard's connections, for `CLIENT LIST` / `KILL`.
//! - [`engine`]: listeners, shards, accept loops, start and stop.
//! - [`config`]: defaults, flags and the config file.
//!
//! ```no_run
//! let engine = resilience_server::Engine::start(resilience_server::Config::default())?;
//! println!("listening on {}", engine.local_addr());
//! engine.stop();
//! engine.join();
//! # Ok::<(), resilience_server::engine::StartError>(())
//! ```

pub mod clients;
pub mod command;
pub mod config;
mod conn;
pub mod engine;
pub mod resp;
pub mod state;

pub use config::Config;
pub use engine::Engine;
