//! The connections of one shard, for `CLIENT LIST`, `CLIENT INFO` and
//! `CLIENT KILL`.
//!
//! A connection registers a [`Client`] with its shard when it starts and
//! removes it when it ends; it updates the entry's cells as it goes (name,
//! library, protocol, last command, transaction state), so listing reads
//! them without asking the connection. `CLIENT LIST` and `CLIENT KILL` run
//! on every shard and their answers are merged: each shard lists or kills
//! only its own connections, and kills by shutting the socket down, which
//! ends the connection's pending `recv`.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;

use resilience::clock::{self, Nanos, SECOND};
use resilience::runtime::net::TcpStream;

use crate::command::parse_i64;
use crate::resp::{Encoder, Span};

/// What a shard knows of one of its connections.
pub struct Client {
    /// Unique over the server's life, from 1.
    pub id: u64,
    /// The peer's address (`ip:port`).
    pub addr: String,
    /// The local address (`ip:port`).
    pub laddr: String,
    stream: Rc<TcpStream>,
    created: Nanos,
    /// When the last command arrived ([`clock::coarse_now`]: a few ns to
    /// read, at millisecond resolution, which `idle` in seconds is far from
    /// needing).
    pub last: Cell<Nanos>,
    /// The last command's name.
    pub cmd: Cell<&'static str>,
    /// `CLIENT SETNAME` / `HELLO ... SETNAME`.
    pub name: RefCell<Option<Box<[u8]>>>,
    /// `CLIENT SETINFO LIB-NAME`.
    pub lib_name: RefCell<Option<Box<[u8]>>>,
    /// `CLIENT SETINFO LIB-VER`.
    pub lib_ver: RefCell<Option<Box<[u8]>>>,
    /// 2 or 3.
    pub resp: Cell<u8>,
    /// Commands queued since `MULTI`, or -1 outside a transaction.
    pub multi: Cell<i64>,
    /// Keys watched.
    pub watch: Cell<usize>,
    /// The selected database.
    pub db: Cell<u8>,
    /// `CLIENT KILL` chose this connection: it closes after this turn.
    pub killed: Cell<bool>,
}

impl Client {
    /// The entry for a new connection on `stream`.
    pub fn new(id: u64, stream: Rc<TcpStream>) -> Self {
        let show = |a: std::io::Result<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
        let now = clock::coarse_now();
        Self {
            id,
            addr: show(stream.peer_addr()),
            laddr: show(stream.local_addr()),
            stream,
            created: now,
            last: Cell::new(now),
            cmd: Cell::new("NULL"),
            name: RefCell::new(None),
            lib_name: RefCell::new(None),
            lib_ver: RefCell::new(None),
            resp: Cell::new(2),
            multi: Cell::new(-1),
            watch: Cell::new(0),
            db: Cell::new(0),
            killed: Cell::new(false),
        }
    }

    /// Redis's `CLIENT LIST` line for this client (the fields this server
    /// keeps; memory and buffer fields are left out rather than made up).
    pub fn line(&self, now: Nanos) -> String {
        let text = |c: &RefCell<Option<Box<[u8]>>>| {
            c.borrow().as_deref().unwrap_or_default().escape_ascii().to_string()
        };
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} multi={} watch={} \
             cmd={} user=default resp={} lib-name={} lib-ver={}\n",
            self.id,
            self.addr,
            self.laddr,
            self.stream.as_raw_fd(),
            text(&self.name),
            now.saturating_sub(self.created) / SECOND,
            now.saturating_sub(self.last.get()) / SECOND,
            if self.multi.get() >= 0 { "x" } else { "N" },
            self.db.get(),
            self.multi.get(),
            self.watch.get(),
            self.cmd.get(),
            self.resp.get(),
            text(&self.lib_name),
            text(&self.lib_ver),
        )
    }
}

/// The connections of one shard.
#[derive(Default)]
pub struct Registry {
    clients: RefCell<Vec<Rc<Client>>>,
}

/// Which clients a `CLIENT LIST` or `CLIENT KILL` filter keeps.
#[derive(Default)]
struct Filter<'a> {
    ids: Vec<u64>,
    addr: Option<&'a [u8]>,
    laddr: Option<&'a [u8]>,
    /// `TYPE`: only `normal` matches anything here.
    none: bool,
    max_age: Option<u64>,
    /// The caller, spared unless `SKIPME no`.
    skip: Option<u64>,
}

impl Filter<'_> {
    fn keeps(&self, c: &Client, now: Nanos) -> bool {
        !self.none
            && (self.ids.is_empty() || self.ids.contains(&c.id))
            && self.addr.is_none_or(|a| a == c.addr.as_bytes())
            && self.laddr.is_none_or(|a| a == c.laddr.as_bytes())
            && self.max_age.is_none_or(|m| now.saturating_sub(c.created) / SECOND >= m)
            && self.skip != Some(c.id)
    }
}

impl Registry {
    /// Adds a connection.
    pub fn add(&self, c: Rc<Client>) {
        self.clients.borrow_mut().push(c);
    }

    /// Removes connection `id`.
    pub fn remove(&self, id: u64) {
        self.clients.borrow_mut().retain(|c| c.id != id);
    }

    /// Connections on this shard.
    pub fn len(&self) -> usize {
        self.clients.borrow().len()
    }

    /// True when this shard has no connection.
    pub fn is_empty(&self) -> bool {
        self.clients.borrow().is_empty()
    }

    /// The shard's side of `CLIENT LIST` and `CLIENT KILL`, as the
    /// connection sends it (`args` after `CLIENT`):
    /// - `LIST [TYPE t] [ID id...]`: a bulk string of this shard's lines.
    /// - `KILL caller addr`: kills the client at `addr` (the old form,
    ///   which may kill the caller); `:n` killed.
    /// - `KILL caller filter value...`: kills the matching clients, sparing
    ///   the caller unless `SKIPME no`; `:n` killed.
    ///
    /// Filters are checked by the connection first; here a bad one is an
    /// error reply.
    pub fn exec(&self, buf: &[u8], args: &[Span], out: &mut Vec<u8>) {
        let arg = |i: usize| args.get(i).map(|s| s.of(buf)).unwrap_or_default();
        let now = clock::coarse_now();
        let kill = arg(0).eq_ignore_ascii_case(b"KILL");
        let caller = if kill { parse_i64(arg(1)).map(|id| id as u64) } else { None };
        let f = if kill && args.len() == 3 {
            Ok(Filter { addr: Some(arg(2)), ..Filter::default() })
        } else {
            let first = if kill { 2 } else { 1 };
            let raw: Vec<&[u8]> = args.get(first..).unwrap_or_default().iter().map(|s| s.of(buf)).collect();
            parse_filter(&raw, kill)
        };
        let f = match f {
            Ok(f) if f.skip == Some(0) => Filter { skip: caller, ..f },
            Ok(f) => f,
            Err(e) => return Encoder::error(out, &e),
        };
        let clients = self.clients.borrow();
        let matching = clients.iter().filter(|c| f.keeps(c, now));
        if !kill {
            let text: String = matching.map(|c| c.line(now)).collect();
            return Encoder::bulk(out, text.as_bytes());
        }
        let mut n = 0;
        for c in matching {
            c.killed.set(true);
            // The caller's own connection closes after its reply; others
            // close now: their pending recv ends with the shutdown.
            if Some(c.id) != caller {
                let _ = c.stream.shutdown(libc::SHUT_RDWR);
            }
            n += 1;
        }
        Encoder::int(out, n);
    }
}

/// Parses `CLIENT LIST`'s (`kill` false) or `CLIENT KILL`'s filters, with
/// Redis's messages. `SKIPME` defaults to yes for `KILL`: `skip` is then
/// `Some(0)`, to be replaced with the caller's id.
fn parse_filter<'a>(raw: &[&'a [u8]], kill: bool) -> Result<Filter<'a>, String> {
    let syntax = || "ERR syntax error".to_string();
    let mut f = Filter { skip: kill.then_some(0), ..Filter::default() };
    let mut i = 0;
    while i < raw.len() {
        let opt = raw[i].to_ascii_uppercase();
        if opt == b"ID" && !kill {
            // LIST ID id [id ...]: every remaining argument.
            // Any integer (no client has an id below 1).
            for v in &raw[i + 1..] {
                match parse_i64(v) {
                    Some(id) => f.ids.push(id.max(0) as u64),
                    None => return Err("ERR Invalid client ID".into()),
                }
            }
            if i + 1 == raw.len() {
                return Err(syntax());
            }
            return Ok(f);
        }
        let Some(&v) = raw.get(i + 1) else { return Err(syntax()) };
        match opt.as_slice() {
            b"TYPE" => match v.to_ascii_lowercase().as_slice() {
                b"normal" => {}
                b"master" | b"replica" | b"slave" | b"pubsub" => f.none = true,
                _ => return Err(format!("ERR Unknown client type '{}'", v.escape_ascii())),
            },
            b"ID" => match parse_i64(v) {
                Some(id) if id > 0 => f.ids.push(id as u64),
                _ => return Err("ERR client-id should be greater than 0".into()),
            },
            b"ADDR" if kill => f.addr = Some(v),
            b"LADDR" if kill => f.laddr = Some(v),
            b"USER" if kill && v == b"default" => {}
            b"USER" if kill => return Err(format!("ERR No such user '{}'", v.escape_ascii())),
            b"SKIPME" if kill => match v.to_ascii_lowercase().as_slice() {
                b"yes" => f.skip = Some(0),
                b"no" => f.skip = None,
                _ => return Err(syntax()),
            },
            b"MAXAGE" if kill => match parse_i64(v) {
                Some(age) if age >= 0 => f.max_age = Some(age as u64),
                _ => return Err(syntax()),
            },
            _ => return Err(syntax()),
        }
        i += 2;
    }
    Ok(f)
}

/// Checks `CLIENT LIST` / `CLIENT KILL` arguments (after the subcommand)
/// before they fan out, so that every shard agrees; `Err` is the reply.
pub fn check(kill: bool, raw: &[&[u8]]) -> Result<(), String> {
    if kill && raw.len() == 1 {
        return Ok(());
    }
    if kill && raw.is_empty() {
        return Err("ERR wrong number of arguments for 'client|kill' command".into());
    }
    parse_filter(raw, kill).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_as_redis() {
        assert!(check(false, &[]).is_ok());
        assert!(check(false, &[b"TYPE", b"normal"]).is_ok());
        assert_eq!(check(false, &[b"TYPE", b"nope"]).unwrap_err(), "ERR Unknown client type 'nope'");
        assert!(check(false, &[b"ID", b"1", b"2"]).is_ok());
        assert_eq!(check(false, &[b"ID", b"x"]).unwrap_err(), "ERR Invalid client ID");
        assert!(check(false, &[b"ID", b"0", b"-3"]).is_ok());
        assert_eq!(check(false, &[b"ID"]).unwrap_err(), "ERR syntax error");
        assert!(check(true, &[b"127.0.0.1:5"]).is_ok());
        assert!(check(true, &[b"ID", b"3", b"SKIPME", b"no", b"MAXAGE", b"10"]).is_ok());
        assert_eq!(check(true, &[b"ID", b"0"]).unwrap_err(), "ERR client-id should be greater than 0");
        assert_eq!(check(true, &[b"ADDR", b"x", b"LADDR"]).unwrap_err(), "ERR syntax error");
        assert_eq!(check(true, &[b"SKIPME", b"maybe"]).unwrap_err(), "ERR syntax error");
        assert_eq!(check(true, &[]).unwrap_err(), "ERR wrong number of arguments for 'client|kill' command");
        assert!(check(true, &[b"USER", b"default"]).is_ok());
        assert_eq!(check(true, &[b"USER", b"someone"]).unwrap_err(), "ERR No such user 'someone'");
    }
}
