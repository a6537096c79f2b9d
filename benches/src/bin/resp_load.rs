//! A light pipelined RESP load generator, so that the server, not the
//! client, is what a 2-core machine measures.
//!
//! redis-benchmark spends most of a core on its own event loop (five
//! `epoll_ctl` calls a request); this client keeps `CONNS` connections in
//! lockstep on one thread: write `PIPELINE` requests on each, then read each
//! one's replies, counting them with a minimal RESP scanner. Requests are
//! the ones redis-benchmark sends by default (`SET key:__rand_int__ xxx`,
//! `GET key:__rand_int__`).
//!
//! `resp-load PORT [set|get] [SECONDS] [CONNS] [PIPELINE]` prints one line:
//! requests/s, the client's CPU time per request (us), its share of a core,
//! and the requests sent in all (the 300 ms warm-up included).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Counts complete RESP2 replies in a byte stream, across reads.
#[derive(Default)]
struct Scanner {
    /// Bytes of bulk payload (plus its CRLF) still to skip.
    skip: usize,
    /// The reply line being read (type byte onwards), when it straddles reads.
    line: Vec<u8>,
}

impl Scanner {
    /// Consumes `buf`; returns how many replies completed. Only the reply
    /// types GET and SET produce (`+ - : $`) are understood.
    fn feed(&mut self, mut buf: &[u8]) -> Result<usize, String> {
        let mut done = 0;
        loop {
            if self.skip > 0 {
                let n = self.skip.min(buf.len());
                self.skip -= n;
                buf = &buf[n..];
                if self.skip > 0 {
                    return Ok(done);
                }
                done += 1;
            }
            let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
                self.line.extend_from_slice(buf);
                return Ok(done);
            };
            self.line.extend_from_slice(&buf[..=nl]);
            buf = &buf[nl + 1..];
            let line = std::mem::take(&mut self.line);
            match line.first() {
                Some(b'+' | b'-' | b':') => done += 1,
                Some(b'$') => {
                    let len: i64 = std::str::from_utf8(&line[1..line.len() - 2])
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| format!("bad bulk header {line:?}"))?;
                    if len < 0 {
                        done += 1;
                    } else {
                        self.skip = len as usize + 2;
                    }
                }
                _ => return Err(format!("unexpected reply {line:?}")),
            }
        }
    }
}

/// User + system CPU time of this process.
fn cpu_time() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: `ru` is a valid, writable rusage; getrusage only writes it.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    if rc != 0 {
        return Duration::ZERO;
    }
    // SAFETY: getrusage succeeded and initialised `ru`.
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: &str| args.get(i).cloned().unwrap_or_else(|| d.to_string());
    let port: u16 = arg(1, "6390").parse().expect("port");
    let op = arg(2, "get");
    let secs: f64 = arg(3, "3").parse().expect("seconds");
    let conns: usize = arg(4, "50").parse().expect("connections");
    let pipeline: usize = arg(5, "16").parse().expect("pipeline");

    let one: &[u8] = match op.as_str() {
        "set" => b"*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$3\r\nxxx\r\n",
        "get" => b"*2\r\n$3\r\nGET\r\n$16\r\nkey:__rand_int__\r\n",
        other => panic!("unknown workload {other} (set or get)"),
    };
    let batch = one.repeat(pipeline);
    let mut streams: Vec<TcpStream> = (0..conns)
        .map(|_| {
            let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.set_nodelay(true).expect("nodelay");
            s
        })
        .collect();
    let mut scanners: Vec<Scanner> = (0..conns).map(|_| Scanner::default()).collect();
    let mut buf = vec![0u8; 64 * 1024];

    let run = |streams: &mut [TcpStream], scanners: &mut [Scanner], buf: &mut [u8], until: Instant| -> u64 {
        let mut total = 0u64;
        while Instant::now() < until {
            for s in streams.iter_mut() {
                s.write_all(&batch).expect("write");
            }
            for (s, sc) in streams.iter_mut().zip(scanners.iter_mut()) {
                let mut got = 0;
                while got < pipeline {
                    let n = s.read(buf).expect("read");
                    assert!(n > 0, "server closed the connection");
                    got += sc.feed(&buf[..n]).expect("RESP reply");
                }
                assert_eq!(got, pipeline, "replies beyond the pipeline");
                total += pipeline as u64;
            }
        }
        total
    };

    // Warm up (fills the key, grows buffers), then measure.
    let warm = run(&mut streams, &mut scanners, &mut buf, Instant::now() + Duration::from_millis(300));
    let (t0, c0) = (Instant::now(), cpu_time());
    let n = run(&mut streams, &mut scanners, &mut buf, t0 + Duration::from_secs_f64(secs));
    let (wall, cpu) = (t0.elapsed(), cpu_time() - c0);
    println!(
        "{:.0} req/s, client {:.3} us/req, {:.0}% of a core, {} requests in all",
        n as f64 / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / n as f64,
        cpu.as_secs_f64() / wall.as_secs_f64() * 100.0,
        warm + n
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_counts_replies_split_anywhere() {
        let stream = b"+OK\r\n$3\r\nxxx\r\n$-1\r\n:5\r\n-ERR x\r\n$0\r\n\r\n";
        for cut in 0..stream.len() {
            let mut s = Scanner::default();
            let n = s.feed(&stream[..cut]).unwrap() + s.feed(&stream[cut..]).unwrap();
            assert_eq!(n, 6, "cut at {cut}");
        }
        assert!(Scanner::default().feed(b"*1\r\n").is_err());
    }
}
