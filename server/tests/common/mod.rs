//! Helpers shared by the integration tests: start an engine on a free
//! loopback port, or explain why the test is skipped.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use resilience_server::{Config, Engine};

/// Starts an in-process engine with `shards` shards on a free port, or
/// prints why not (io_uring refused) and returns `None`.
pub fn start(shards: usize, tweak: impl FnOnce(&mut Config)) -> Option<Engine> {
    if let Err(e) = resilience::runtime::probe() {
        eprintln!("skipped: {e}");
        return None;
    }
    let mut cfg =
        Config { port: 0, shards, pin: false, shutdown_grace: Duration::from_secs(2), ..Config::default() };
    tweak(&mut cfg);
    Some(Engine::start(cfg).expect("engine starts"))
}

/// A `redis` crate connection to `addr`.
pub fn client(addr: SocketAddr) -> redis::Connection {
    let c = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let con = c.get_connection().unwrap();
    con.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    con
}

/// Sends raw bytes and reads until `want` bytes arrived or the peer closed.
pub fn raw(addr: SocketAddr, input: &[u8], want: usize) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(input).unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        if got.len() >= want {
            return (got, false);
        }
        match s.read(&mut b) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&b[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (got, true),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read: {e} after {:?}", String::from_utf8_lossy(&got)),
        }
    }
}
