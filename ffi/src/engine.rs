//! `rsl_engine`: the `resilienced` engine (RESP over io_uring) started inside
//! the host process, with its settings and counters.

use crate::boundary::{boundary, fail, Result};
use crate::handle::{self, opaque, Plain};
use crate::status::rsl_status;
use crate::status::{
    RSL_ERR_ALLOC, RSL_ERR_ENGINE_STATE, RSL_ERR_INVALID_ARG, RSL_ERR_IO, RSL_ERR_IO_URING_UNAVAILABLE,
};
use resilience_server::engine::StartError;
use resilience_server::{Config, Engine};
use std::ffi::c_char;
use std::net::IpAddr;
use std::sync::Mutex;

/// Size of `rsl_engine_config.bind`, including the terminating NUL.
pub const RSL_ENGINE_BIND_LEN: usize = 64;

/// An embedded engine's settings. Start from `rsl_engine_config_default()`;
/// the `_reserved` tail must stay zero (nonzero is refused with
/// RSL_ERR_INVALID_ARG).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct rsl_engine_config {
    /// Listen address, a NUL-terminated IPv4 or IPv6 literal inside the
    /// array (no host names). Default "127.0.0.1".
    pub bind: [c_char; RSL_ENGINE_BIND_LEN],
    /// TCP port; 0: any free port (read it with rsl_engine_port). Default 6390.
    pub port: u16,
    /// Nonzero: pin each shard thread to a CPU. Default 1.
    pub pin: u8,
    /// Reserved padding, must be zero.
    pub _pad: [u8; 5],
    /// Shard threads, 0..=1024; 0: one per CPU. Default 0.
    pub shards: u64,
    /// Most client connections at once; must be at least 1. Default 10000.
    pub max_clients: u64,
    /// Cache memory budget in bytes; must be at least 1. Default 1 GiB.
    pub max_memory: u64,
    /// Reserved for future fields, must be zero.
    pub _reserved: [u64; 8],
}

// SAFETY: repr(C), integer fields and arrays of integers only.
unsafe impl Plain for rsl_engine_config {}

/// Counters of a running engine (monotonic unless noted), summed over its
/// shards.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct rsl_engine_stats {
    /// Number of shard threads.
    pub shards: u64,
    /// Clients connected now (not monotonic).
    pub clients_connected: u64,
    /// Connections accepted since start.
    pub clients_accepted: u64,
    /// Connections refused because max_clients were connected.
    pub clients_rejected: u64,
    /// Turns of the shards' loops.
    pub loop_turns: u64,
    /// Task polls.
    pub task_polls: u64,
    /// io_uring completions reaped.
    pub io_completions: u64,
    /// Times a shard slept waiting for I/O.
    pub parks: u64,
    /// Messages passed between shards.
    pub mesh_messages: u64,
    /// Wake-ups sent to sleeping shards.
    pub wakeups: u64,
    /// Tasks alive now (not monotonic).
    pub tasks: u64,
    /// Reserved for future counters; written as zero.
    pub _reserved: [u64; 5],
}

/// A running (or stopped) embedded engine. Every function on it is
/// thread-safe, except that rsl_engine_free must be the last call.
#[allow(non_camel_case_types)]
pub struct rsl_engine {
    _private: [u8; 0],
}
opaque!(rsl_engine => EngineHandle);

/// The engine behind an `rsl_engine`: `None` once stopped.
pub struct EngineHandle {
    engine: Mutex<Option<Engine>>,
    port: u16,
}

impl EngineHandle {
    fn stop(&self) -> bool {
        let taken = self.engine.lock().unwrap_or_else(|e| e.into_inner()).take();
        match taken {
            Some(engine) => {
                engine.stop();
                engine.join();
                true
            }
            None => false,
        }
    }
}

impl Drop for EngineHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The defaults: bind "127.0.0.1", port 6390, one shard per CPU, pinned,
/// 10000 clients, 1 GiB of cache; reserved fields zero. Thread-safe. Never
/// fails.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_engine_config_default() -> rsl_engine_config {
    let d = Config::default();
    let mut bind = [0 as c_char; RSL_ENGINE_BIND_LEN];
    for (dst, src) in bind.iter_mut().zip(b"127.0.0.1") {
        *dst = *src as c_char;
    }
    rsl_engine_config {
        bind,
        port: d.port,
        pin: 1,
        _pad: [0; 5],
        shards: 0,
        max_clients: d.maxclients as u64,
        max_memory: d.maxmemory,
        _reserved: [0; 8],
    }
}

fn to_config(c: &rsl_engine_config) -> Result<Config> {
    let bad = |msg: String| fail(RSL_ERR_INVALID_ARG, msg);
    if c._pad != [0; 5] || c._reserved != [0; 8] {
        return Err(bad("a reserved field of rsl_engine_config is nonzero".into()));
    }
    let len = c.bind.iter().position(|&b| b == 0).ok_or_else(|| bad("bind is not NUL-terminated".into()))?;
    let text: Vec<u8> = c.bind[..len].iter().map(|&b| b as u8).collect();
    let bind: IpAddr = std::str::from_utf8(&text)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bind {:?} is not an IP address", String::from_utf8_lossy(&text))))?;
    let mut config = Config { bind, port: c.port, pin: c.pin != 0, ..Config::default() };
    if c.shards > 1024 {
        return Err(bad(format!("shards {} is above 1024", c.shards)));
    }
    if c.shards != 0 {
        config.shards = c.shards as usize;
    }
    if c.max_clients == 0 || c.max_clients > u32::MAX as u64 {
        return Err(bad(format!("max_clients {} is outside 1..=4294967295", c.max_clients)));
    }
    config.maxclients = c.max_clients as usize;
    if c.max_memory == 0 {
        return Err(bad("max_memory is 0".into()));
    }
    config.maxmemory = c.max_memory;
    Ok(config)
}

/// Starts the engine with `config` (NULL: the defaults) and returns once it
/// listens: its shard threads serve RESP clients until rsl_engine_stop.
///
/// Ownership: the caller owns `*engine_out` and frees it with
/// rsl_engine_free (which stops the engine if it still runs).
/// Thread-safe. Returns RSL_ERR_NULL_ARG if `engine_out` is NULL,
/// RSL_ERR_INVALID_ARG for bad settings (rsl_last_error says which),
/// RSL_ERR_IO_URING_UNAVAILABLE when the kernel, a sysctl or seccomp refuses
/// io_uring, RSL_ERR_IO when the address cannot be bound (port in use, no
/// such address) or a thread cannot start, RSL_ERR_ALLOC when the shards'
/// memory cannot be allocated, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_engine_start(
    config: *const rsl_engine_config,
    engine_out: *mut *mut rsl_engine,
) -> rsl_status {
    boundary(|| {
        handle::require_out(engine_out, "engine_out")?;
        let c = handle::read_plain(config, "config")?.unwrap_or_else(|| rsl_engine_config_default());
        let config = to_config(&c)?;
        let engine = Engine::start(config).map_err(|e| match &e {
            StartError::Runtime(resilience::runtime::Error::Unavailable { .. }) => {
                fail(RSL_ERR_IO_URING_UNAVAILABLE, e.to_string())
            }
            StartError::Runtime(resilience::runtime::Error::Io(io))
                if io.kind() == std::io::ErrorKind::OutOfMemory =>
            {
                fail(RSL_ERR_ALLOC, e.to_string())
            }
            StartError::Runtime(_) | StartError::Bind(..) => fail(RSL_ERR_IO, e.to_string()),
            StartError::Config(_) => fail(RSL_ERR_INVALID_ARG, e.to_string()),
        })?;
        let port = engine.local_addr().port();
        let h = EngineHandle { engine: Mutex::new(Some(engine)), port };
        handle::write(engine_out, handle::into_raw(h), "engine_out")
    })
}

/// Writes the TCP port the engine listens on (the bound one when the
/// config asked for port 0) to `port_out`; still answers after a stop.
///
/// Thread-safe. Returns RSL_ERR_NULL_ARG, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_engine_port(engine: *const rsl_engine, port_out: *mut u16) -> rsl_status {
    boundary(|| {
        let e = handle::borrow(engine)?;
        handle::write(port_out, e.port, "port_out")
    })
}

/// Writes a snapshot of the engine's counters to `stats_out`.
///
/// Thread-safe. Returns RSL_ERR_NULL_ARG, RSL_ERR_ENGINE_STATE if the
/// engine was stopped, RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_engine_get_stats(
    engine: *const rsl_engine,
    stats_out: *mut rsl_engine_stats,
) -> rsl_status {
    boundary(|| {
        let e = handle::borrow(engine)?;
        handle::require_out(stats_out, "stats_out")?;
        let guard = e.engine.lock().unwrap_or_else(|p| p.into_inner());
        let engine = guard.as_ref().ok_or_else(|| fail(RSL_ERR_ENGINE_STATE, "the engine was stopped"))?;
        let srv = engine.server();
        let rt = engine.runtime_stats();
        let mut sum = [0u64; 7];
        for shard in &rt.shards {
            for (s, v) in sum.iter_mut().zip(shard) {
                *s = s.wrapping_add(*v);
            }
        }
        let stats = rsl_engine_stats {
            shards: rt.shards.len() as u64,
            clients_connected: srv.clients.load(std::sync::atomic::Ordering::Relaxed) as u64,
            clients_accepted: srv.accepted.load(std::sync::atomic::Ordering::Relaxed),
            clients_rejected: srv.rejected_clients.load(std::sync::atomic::Ordering::Relaxed),
            loop_turns: sum[0],
            task_polls: sum[1],
            io_completions: sum[2],
            parks: sum[3],
            mesh_messages: sum[4],
            wakeups: sum[5],
            tasks: sum[6],
            _reserved: [0; 5],
        };
        handle::write(stats_out, stats, "stats_out")
    })
}

/// Stops the engine: stops accepting, lets connections finish (up to the
/// shutdown grace of 5 s) and waits until every shard thread has exited.
///
/// Thread-safety: thread-safe; do not call it from a callback running on a
/// shard. Returns RSL_ERR_NULL_ARG, RSL_ERR_ENGINE_STATE if the engine was
/// already stopped (nothing is done), RSL_ERR_PANIC.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_engine_stop(engine: *mut rsl_engine) -> rsl_status {
    boundary(|| {
        let e = handle::borrow(engine.cast_const())?;
        if e.stop() {
            Ok(())
        } else {
            Err(fail(RSL_ERR_ENGINE_STATE, "the engine was already stopped"))
        }
    })
}

/// Stops the engine if it still runs (as rsl_engine_stop) and frees it.
/// NULL is a no-op. Not thread-safe with other calls on the same engine:
/// it must be the last one.
#[unsafe(no_mangle)]
pub extern "C" fn rsl_engine_free(engine: *mut rsl_engine) {
    crate::boundary::boundary_or((), || handle::free(engine))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::RSL_ERR_NULL_ARG;
    use std::io::{Read, Write};

    #[test]
    fn struct_sizes_are_fixed() {
        assert_eq!(std::mem::size_of::<rsl_engine_config>(), 160);
        assert_eq!(std::mem::size_of::<rsl_engine_stats>(), 128);
    }

    #[test]
    fn arguments_are_checked() {
        let mut e: *mut rsl_engine = std::ptr::null_mut();
        assert_eq!(rsl_engine_start(std::ptr::null(), std::ptr::null_mut()), RSL_ERR_NULL_ARG);
        let mut c = rsl_engine_config_default();
        c.bind[0] = b'x' as c_char;
        assert_eq!(rsl_engine_start(&c, &mut e), RSL_ERR_INVALID_ARG);
        let mut c = rsl_engine_config_default();
        c.bind = [b'1' as c_char; RSL_ENGINE_BIND_LEN];
        assert_eq!(rsl_engine_start(&c, &mut e), RSL_ERR_INVALID_ARG);
        let mut c = rsl_engine_config_default();
        c.max_clients = 0;
        assert_eq!(rsl_engine_start(&c, &mut e), RSL_ERR_INVALID_ARG);
        let mut c = rsl_engine_config_default();
        c._reserved[3] = 1;
        assert_eq!(rsl_engine_start(&c, &mut e), RSL_ERR_INVALID_ARG);
        assert!(e.is_null());
        let mut port = 0u16;
        assert_eq!(rsl_engine_port(std::ptr::null(), &mut port), RSL_ERR_NULL_ARG);
        assert_eq!(rsl_engine_stop(std::ptr::null_mut()), RSL_ERR_NULL_ARG);
        rsl_engine_free(std::ptr::null_mut());
    }

    #[test]
    fn serves_ping_and_counts_the_client() {
        let mut c = rsl_engine_config_default();
        c.port = 0;
        c.shards = 1;
        c.pin = 0;
        let mut e: *mut rsl_engine = std::ptr::null_mut();
        match rsl_engine_start(&c, &mut e) {
            rsl_status::RSL_OK => {}
            RSL_ERR_IO_URING_UNAVAILABLE => {
                eprintln!("skipped: io_uring is unavailable here");
                return;
            }
            other => panic!("start: {other:?}"),
        }
        let mut port = 0u16;
        assert_eq!(rsl_engine_port(e, &mut port), rsl_status::RSL_OK);
        assert_ne!(port, 0);
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"+PONG\r\n");
        let mut st = rsl_engine_stats::default();
        assert_eq!(rsl_engine_get_stats(e, &mut st), rsl_status::RSL_OK);
        assert_eq!(st.shards, 1);
        assert!(st.clients_accepted >= 1);
        drop(s);
        assert_eq!(rsl_engine_stop(e), rsl_status::RSL_OK);
        assert_eq!(rsl_engine_stop(e), RSL_ERR_ENGINE_STATE);
        assert_eq!(rsl_engine_get_stats(e, &mut st), RSL_ERR_ENGINE_STATE);
        let mut again = 0u16;
        assert_eq!(rsl_engine_port(e, &mut again), rsl_status::RSL_OK);
        assert_eq!(again, port);
        rsl_engine_free(e);
    }
}
