//! # resilienced
//!
//! The libresilience engine served over RESP: every Redis client is a client.
//!
//! - [`resp`]: the zero-copy request parser and the reply encoder.
//! - [`command`]: the command table (names, arity, routing).
//! - [`state`]: one shard's keyed state and the commands that act on it.
//! - [`config`]: defaults, flags and the config file.

pub mod command;
pub mod config;
pub mod resp;
pub mod state;

pub use config::Config;
