//! io_uring sockets: accept on every shard (SO_REUSEPORT), recv and send.
#![cfg(all(target_os = "linux", not(resilience_loom)))]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use resilience::runtime::{self, net::TcpListener, Config, Runtime};

/// An echo server; with `tag`, each reply starts with `<shard>:`.
fn echo_server(shards: usize, tag: bool) -> Option<(Runtime, SocketAddr)> {
    echo_server_with(shards, tag, 1024)
}

fn echo_server_with(shards: usize, tag: bool, ring_entries: u32) -> Option<(Runtime, SocketAddr)> {
    if let Err(e) = runtime::probe() {
        eprintln!("skipped: {e}");
        return None;
    }
    let group = TcpListener::bind_group("127.0.0.1:0".parse().unwrap(), shards, 128).unwrap();
    let addr = group[0].local_addr().unwrap();
    let listeners: Vec<Option<TcpListener>> = group.into_iter().map(Some).collect();
    let listeners = Arc::new(std::sync::Mutex::new(listeners));
    let cfg =
        Config { shards, pin: false, ring_entries, stop_grace: Duration::from_secs(2), ..Config::default() };
    let rt = Runtime::start(
        cfg,
        |_| (),
        move |shard| {
            let listener = listeners.lock().unwrap()[shard].take().unwrap();
            async move {
                while let Ok(stream) = listener.accept().await {
                    runtime::spawn(async move {
                        let mut buf = Vec::with_capacity(4096);
                        loop {
                            let (res, b) = stream.recv(buf).await;
                            buf = b;
                            match res {
                                Ok(0) | Err(_) => return,
                                Ok(_) => {}
                            }
                            // Reply with the shard id and the bytes received.
                            let mut out = if tag { format!("{shard}:").into_bytes() } else { Vec::new() };
                            out.extend_from_slice(&buf);
                            buf.clear();
                            let (res, _) = stream.send_all(out).await;
                            if res.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        },
    )
    .expect("runtime starts");
    Some((rt, addr))
}

#[test]
fn echo_over_io_uring_from_many_connections() {
    let Some((rt, addr)) = echo_server(2, true) else { return };
    let mut conns: Vec<TcpStream> = (0..16).map(|_| TcpStream::connect(addr).unwrap()).collect();
    for round in 0..5 {
        for (i, c) in conns.iter_mut().enumerate() {
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let msg = format!("hello {i} {round}");
            c.write_all(msg.as_bytes()).unwrap();
            let mut got = Vec::new();
            while !got.ends_with(msg.as_bytes()) {
                let mut b = [0u8; 256];
                let n = c.read(&mut b).unwrap();
                assert!(n > 0);
                got.extend_from_slice(&b[..n]);
            }
            let text = String::from_utf8(got).unwrap();
            assert!(text.starts_with("0:") || text.starts_with("1:"), "{text}");
        }
    }
    drop(conns);
    rt.stop();
    rt.join();
}

#[test]
fn large_messages_round_trip_intact() {
    let Some((rt, addr)) = echo_server(1, false) else { return };
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut w = c.try_clone().unwrap();
    let p2 = payload.clone();
    let writer = std::thread::spawn(move || w.write_all(&p2).unwrap());
    let mut body = Vec::new();
    let mut b = vec![0u8; 65536];
    while body.len() < payload.len() {
        let n = c.read(&mut b).unwrap();
        assert!(n > 0);
        body.extend_from_slice(&b[..n]);
    }
    writer.join().unwrap();
    assert_eq!(body, payload);
    drop(c);
    rt.stop();
    rt.join();
}

#[test]
fn stop_cancels_pending_accepts_and_reads() {
    let Some((rt, addr)) = echo_server(2, true) else { return };
    // An idle connection with a read posted, and listeners with accepts posted.
    let c = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let t = std::time::Instant::now();
    rt.stop();
    rt.join();
    assert!(t.elapsed() < Duration::from_secs(1));
    // The server side closed the idle connection.
    let mut c = c;
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut b = [0u8; 8];
    assert_eq!(c.read(&mut b).unwrap_or(0), 0);
}

#[test]
fn a_tiny_ring_serves_more_operations_than_it_has_slots() {
    // 4 submission slots (8 completion slots) for 64 connections: submitting
    // must flush a full queue, and completions overflow the completion ring.
    let Some((rt, addr)) = echo_server_with(1, false, 4) else { return };
    let mut conns: Vec<TcpStream> = (0..64).map(|_| TcpStream::connect(addr).unwrap()).collect();
    for round in 0..3 {
        for (i, c) in conns.iter_mut().enumerate() {
            c.write_all(format!("{i}.{round};").as_bytes()).unwrap();
        }
        for (i, c) in conns.iter_mut().enumerate() {
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let want = format!("{i}.{round};");
            let mut got = Vec::new();
            while got.len() < want.len() {
                let mut b = [0u8; 64];
                let n = c.read(&mut b).unwrap();
                assert!(n > 0);
                got.extend_from_slice(&b[..n]);
            }
            assert_eq!(got, want.as_bytes());
        }
    }
    drop(conns);
    rt.stop();
    rt.join();
}

#[test]
fn a_served_address_cannot_be_bound_twice() {
    let a = TcpListener::bind_group("127.0.0.1:0".parse().unwrap(), 2, 16).unwrap();
    let addr = a[0].local_addr().unwrap();
    assert_eq!(a[1].local_addr().unwrap(), addr);
    let again = TcpListener::bind_group(addr, 2, 16).unwrap_err();
    assert_eq!(again.kind(), std::io::ErrorKind::AddrInUse);
    // Port 0 never lands on a port that is already served.
    for _ in 0..50 {
        let b = TcpListener::bind_group("127.0.0.1:0".parse().unwrap(), 1, 16).unwrap();
        assert_ne!(b[0].local_addr().unwrap().port(), addr.port());
    }
}
