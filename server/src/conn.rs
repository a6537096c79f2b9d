//! One client connection: read, parse a pipeline, run it where each key
//! lives, write the replies in order.
//!
//! A connection is a task on the shard that accepted it. Each turn parses up
//! to `max_pipeline` requests from what has arrived (zero-copy), runs those
//! whose keys live on this shard at once, and sends the others to their
//! owners over the mesh, one batch per shard (arguments copied once into the
//! batch). When every batch has answered, the replies are written in request
//! order, and only after they are all written is the socket read again: a
//! client that does not read its replies stops being read (backpressure
//! through TCP).
//!
//! Memory per client is bounded: the input buffer by `max_query` (one
//! request), the output by about `max_output` plus one reply. A turn stops
//! taking requests once the replies made on this shard pass `max_output`;
//! replies from other shards carry large values as shared handles (no copy)
//! and are written out in `max_output` pieces as they are assembled; and the
//! number of requests per turn follows the recent reply size, so a pipeline
//! of large remote values stays near `max_output` too.
//!
//! Requests for the same key always run on the same shard in the order they
//! were sent, so a pipeline's effects on each key are those of running it in
//! order; requests on keys of different shards may interleave with other
//! clients' requests differently than on a single-threaded Redis.

use std::rc::Rc;

use resilience::runtime::{self, net::TcpStream};
use resilience::sync::{Arc, Ordering};

use crate::clients::{self, Client};
use crate::command::{self, glob, parse_i64, Op, Route, Spec, REDIS_VERSION};
use crate::engine::Server;
use crate::resp::{self, Encoder, Parsed, Proto, Span};
use crate::state::{ShardState, Sink};

/// Requests for one shard, with their arguments copied out of the client's
/// buffer so they can cross threads.
#[derive(Debug, Default)]
pub struct RemoteBatch {
    arena: Vec<u8>,
    spans: Vec<Span>,
    /// (command, reply protocol, database, first span, span count).
    ops: Vec<(Op, Proto, u8, u32, u32)>,
    /// `(i, n)`: op `i` is an `EXEC` check; when it fails, the `n` ops after
    /// it (the transaction's commands) are skipped.
    guards: Vec<(usize, usize)>,
}

/// The replies to a [`RemoteBatch`], concatenated; `ends[i]` is where reply
/// `i` ends in `out`. A large value is not copied into `out`: `holes` holds
/// `(reply index, position in out, value)`, to be written as a bulk string
/// there.
#[derive(Debug, Default)]
pub struct RemoteReply {
    out: Vec<u8>,
    ends: Vec<usize>,
    holes: Vec<(usize, usize, Arc<[u8]>)>,
}

/// Values at least this large cross the mesh as shared handles.
const SHARE_AT: usize = 2048;

impl RemoteReply {
    /// The holes of reply `i`.
    fn holes_of(&self, i: usize) -> &[(usize, usize, Arc<[u8]>)] {
        let first = self.holes.partition_point(|h| h.0 < i);
        let n = self.holes[first..].iter().take_while(|h| h.0 == i).count();
        &self.holes[first..first + n]
    }

    /// Writes reply `i` to `out`, filling in its large values.
    fn write_part(&self, i: usize, out: &mut Vec<u8>) {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        let mut at = start;
        for (_, pos, v) in self.holes_of(i) {
            out.extend_from_slice(&self.out[at..*pos]);
            Encoder::bulk(out, v);
            at = *pos;
        }
        out.extend_from_slice(&self.out[at..self.ends[i]]);
    }

    /// The bytes [`write_part`](Self::write_part) writes for reply `i`.
    fn part_len(&self, i: usize) -> usize {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        let bulk = |n: usize| n + 25; // `$`, up to 20 digits, two CRLFs
        self.ends[i] - start + self.holes_of(i).iter().map(|h| bulk(h.2.len())).sum::<usize>()
    }
}

impl Sink for RemoteReply {
    fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    fn value(&mut self, v: &Arc<[u8]>) {
        if v.len() >= SHARE_AT {
            self.holes.push((self.ends.len(), self.out.len(), v.clone()));
        } else {
            Encoder::bulk(&mut self.out, v);
        }
    }
}

impl RemoteBatch {
    fn push(&mut self, op: Op, proto: Proto, db: u8, buf: &[u8], args: &[Span]) -> usize {
        let first = self.spans.len() as u32;
        for a in args {
            let start = self.arena.len();
            self.arena.extend_from_slice(a.of(buf));
            self.spans.push(Span { start, end: self.arena.len() });
        }
        self.ops.push((op, proto, db, first, args.len() as u32));
        self.ops.len() - 1
    }

    /// Runs every request on `state` (the owning shard's), in order.
    pub fn run(self, state: &ShardState) -> RemoteReply {
        let mut reply =
            RemoteReply { out: Vec::with_capacity(32 * self.ops.len()), ..RemoteReply::default() };
        let mut guards = self.guards.iter().peekable();
        let mut skip = 0;
        for (i, &(op, proto, db, first, n)) in self.ops.iter().enumerate() {
            if skip > 0 {
                // A skipped command's reply is empty (never written out).
                skip -= 1;
                reply.ends.push(reply.out.len());
                continue;
            }
            let args = &self.spans[first as usize..(first + n) as usize];
            let start = reply.out.len();
            state.exec(op, db, &self.arena, args, proto, &mut reply);
            reply.ends.push(reply.out.len());
            if let Some(&(_, count)) = guards.next_if(|g| g.0 == i) {
                if reply.out[start..] != *b":1\r\n" {
                    skip = count;
                }
            }
        }
        reply
    }
}

/// Where one part of a reply comes from.
#[derive(Debug, Clone, Copy)]
enum Part {
    /// Reply `i` of the local buffer.
    Local(usize),
    /// Reply `i` of shard `s`'s batch.
    Remote(usize, usize),
}

/// How the parts of one request make its reply.
#[derive(Debug, Clone, Copy)]
enum Merge {
    /// The one part, as is.
    One,
    /// An array of the parts (`MGET`).
    Array,
    /// The sum of integer parts (`DEL`, `EXISTS`, `DBSIZE`).
    Sum,
    /// `+OK` unless a part is an error (`MSET`, `FLUSHALL`).
    AllOk,
    /// One array of every part's array elements (`KEYS`).
    Concat,
    /// `INFO`: the sections of [`crate::engine::InfoSections`] asked for,
    /// totals over the shards, then every shard's section.
    Info(u8),
    /// `EXEC`'s array of `n` replies (the `n` planned requests that follow),
    /// or a null array and none of them when its one part, the check of
    /// the watched keys, is not `:1`.
    Exec(usize),
    /// Nothing (the `UNWATCH` that follows a discarded transaction).
    Silent,
    /// One text of every part's bulk payload (`CLIENT LIST`).
    Text,
    /// `CLIENT KILL ip:port`: `+OK` if a part killed one, else an error.
    KillOne,
}

/// A request whose reply waits for other shards.
#[derive(Debug)]
struct Planned {
    merge: Merge,
    parts: std::ops::Range<usize>,
    proto: Proto,
}

/// A connection's reusable scratch space.
struct Conn {
    srv: Arc<Server>,
    state: Rc<ShardState>,
    me: usize,
    shards: usize,
    id: u64,
    proto: Proto,
    close: bool,
    spans: Vec<Span>,
    /// True once a request of this turn waits for another shard: later
    /// replies are then staged in `local` to keep the order.
    deferred: bool,
    local: Vec<u8>,
    local_ends: Vec<usize>,
    remote: Vec<RemoteBatch>,
    parts: Vec<Part>,
    planned: Vec<Planned>,
    /// Requests to take in the next turn: `max_output` divided by the
    /// recent reply size, so that a pipeline of large remote replies (whose
    /// size is unknown until they come back) stays near `max_output`.
    turn_limit: usize,
    /// Average reply bytes per request, decaying by half each turn.
    avg_reply: usize,
    /// Reply bytes already written during this turn.
    streamed: usize,
    /// This connection as `CLIENT LIST` shows it (name, library, last
    /// command, transaction state), registered with the shard.
    client: Rc<Client>,
    /// The commands queued since `MULTI`.
    multi: Option<Multi>,
    /// The keys `WATCH`ed (as stored: see [`crate::state::stored_key`]),
    /// until `EXEC`, `DISCARD` or `UNWATCH`.
    watching: Vec<Box<[u8]>>,
    /// The database `SELECT`ed.
    db: u8,
}

/// A transaction being queued: each command's arguments, copied.
#[derive(Default)]
struct Multi {
    arena: Vec<u8>,
    spans: Vec<Span>,
    /// (first span, span count) of each command.
    commands: Vec<(usize, usize)>,
    /// A command was refused while queueing: `EXEC` will discard them all.
    refused: bool,
}

/// Most commands one transaction may queue.
const MAX_QUEUED: usize = 1 << 20;
/// Keys of a transaction with `WATCH` must live on the watched keys' shard.
const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot \
                         (with WATCH, keep the watched keys and the transaction's keys under one {hash tag})";

/// A command of several keys (`RENAME`, `COPY`, `MSETNX`) whose keys live
/// on different shards, as Redis Cluster answers across slots.
const CROSSSLOT_KEYS: &str = "CROSSSLOT Keys in request don't hash to the same slot \
                              (keep them under one {hash tag}, or run one shard)";

/// Most keys one connection may watch.
const MAX_WATCHED: usize = 1 << 16;

/// Serves one client until it quits, errs, or the server stops.
pub(crate) async fn serve(stream: TcpStream, srv: Arc<Server>, id: u64) {
    let state: Rc<ShardState> = runtime::state();
    state.stats.connections.set(state.stats.connections.get() + 1);
    let stream = Rc::new(stream);
    let client = Rc::new(Client::new(id, stream.clone()));
    state.clients.add(client.clone());
    let shards = runtime::shard_count();
    let mut c = Conn {
        srv: srv.clone(),
        state: state.clone(),
        me: runtime::shard_id(),
        shards,
        id,
        proto: Proto::Resp2,
        close: false,
        spans: Vec::new(),
        deferred: false,
        local: Vec::new(),
        local_ends: Vec::new(),
        remote: (0..shards).map(|_| RemoteBatch::default()).collect(),
        parts: Vec::new(),
        planned: Vec::new(),
        turn_limit: 16,
        avg_reply: 0,
        streamed: 0,
        client,
        multi: None,
        watching: Vec::new(),
        db: 0,
    };
    let cfg = &srv.config;
    let mut inb: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut start = 0usize;
    let mut need = 1usize;
    loop {
        if inb.len() - start >= need {
            let (consumed, next_need) = c.turn(&inb[start..], &mut out, &stream).await;
            start += consumed;
            need = next_need;
            if !out.is_empty() {
                let (res, o) = stream.send_all(out).await;
                out = o;
                out.clear();
                if out.capacity() > 4 * cfg.max_output {
                    out = Vec::with_capacity(16 * 1024);
                }
                if res.is_err() {
                    break;
                }
            }
            if c.close || c.client.killed.get() || runtime::stopping() {
                break;
            }
            if need == 0 {
                continue;
            }
        }
        // Keep the unparsed tail at the front, and room for what it needs.
        if start > 0 {
            inb.drain(..start);
            start = 0;
        }
        if need > cfg.max_query {
            let mut o = Vec::new();
            Encoder::error(&mut o, "ERR Protocol error: request exceeds the query buffer limit");
            let _ = stream.send_all(o).await;
            break;
        }
        if inb.capacity() > 1 << 20 && inb.len() < 16 * 1024 && need < 16 * 1024 {
            inb.shrink_to(64 * 1024);
        }
        // Room for what the request needs, but never more than twice what
        // has arrived (at least 64 KiB): a header that announces 16 MiB and
        // sends nothing costs 64 KiB, not 16 MiB (and a huge page) per
        // connection. A real value arrives, and the buffer doubles with it.
        let want = need.min(inb.len().saturating_mul(2).max(64 * 1024)).max(inb.len() + 4096);
        if inb.capacity() < want {
            // Exact: `want` already doubles, and `reserve` would double
            // again past it (a 16 MiB value in a 32 MiB buffer).
            inb.reserve_exact(want - inb.len());
        }
        let (res, b) = stream.recv(inb).await;
        inb = b;
        match res {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    c.forget_watches().await;
    state.clients.remove(id);
    state.stats.connections.set(state.stats.connections.get() - 1);
    srv.clients.fetch_sub(1, Ordering::Relaxed);
}

impl Conn {
    /// Parses and runs one pipeline from `input`, appending replies to
    /// `out`. Returns the bytes consumed and the bytes needed before the next
    /// turn (0: more complete requests may be waiting).
    async fn turn(&mut self, input: &[u8], out: &mut Vec<u8>, stream: &TcpStream) -> (usize, usize) {
        let srv = self.srv.clone();
        let cfg = &srv.config;
        let mut pos = 0;
        let mut count = 0;
        let mut need = 1;
        let out_start = out.len();
        let mut spans = std::mem::take(&mut self.spans);
        self.client.last.set(resilience::clock::coarse_now());
        loop {
            if count >= self.turn_limit || out.len() + self.local.len() > cfg.max_output {
                need = 0;
                break;
            }
            let buf = &input[pos..];
            match resp::parse(buf, &cfg.limits, &mut spans) {
                Ok(Parsed::Command { consumed }) => {
                    self.request(buf, &spans, out);
                    pos += consumed;
                    count += 1;
                    if self.close {
                        break;
                    }
                }
                Ok(Parsed::Empty { consumed }) => pos += consumed,
                Ok(Parsed::Incomplete { need: n }) => {
                    need = n;
                    break;
                }
                Err(e) => {
                    let msg = e.to_string();
                    self.reply_here(out, |o| Encoder::error(o, &msg));
                    self.close = true;
                    break;
                }
            }
        }
        self.spans = spans;
        self.state.stats.ops.set(self.state.stats.ops.get() + count as u64);
        if self.deferred {
            self.finish(out, stream).await;
        }
        let bytes = out.len().saturating_sub(out_start) + std::mem::take(&mut self.streamed);
        if let Some(avg) = bytes.checked_div(count) {
            self.avg_reply = avg.max(self.avg_reply / 2);
            self.turn_limit = (cfg.max_output / self.avg_reply.max(16)).clamp(1, cfg.max_pipeline);
        }
        (pos, need)
    }

    /// The shard of a watched key (kept as it is stored, database and all).
    fn watch_owner(&self, stored: &[u8]) -> usize {
        self.owner(crate::state::user_key(stored).1)
    }

    /// The shard that owns `key`.
    fn owner(&self, key: &[u8]) -> usize {
        if self.shards == 1 {
            return 0;
        }
        let h = resilience::hash::hash_bytes(self.srv.route_seed, command::hash_tag(key));
        ((h as u128 * self.shards as u128) >> 64) as usize
    }

    /// Writes a reply made on this shard: straight to `out` unless an
    /// earlier request of this turn is still waiting.
    fn reply_here(&mut self, out: &mut Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) {
        if self.deferred {
            f(&mut self.local);
            self.local_ends.push(self.local.len());
            let p = self.parts.len();
            self.parts.push(Part::Local(self.local_ends.len() - 1));
            self.planned.push(Planned { merge: Merge::One, parts: p..p + 1, proto: self.proto });
        } else {
            f(out);
        }
    }

    /// Adds a part that runs `op` with `args` on `shard`.
    fn part(&mut self, shard: usize, op: Op, buf: &[u8], args: &[Span]) {
        if shard == self.me {
            self.state.exec(op, self.db, buf, args, self.proto, &mut self.local);
            self.local_ends.push(self.local.len());
            self.parts.push(Part::Local(self.local_ends.len() - 1));
        } else {
            let i = self.remote[shard].push(op, self.proto, self.db, buf, args);
            self.parts.push(Part::Remote(shard, i));
        }
    }

    fn request(&mut self, buf: &[u8], args: &[Span], out: &mut Vec<u8>) {
        let name = args[0].of(buf);
        let Some(spec) = command::lookup(name) else {
            let msg = unknown_command(buf, args);
            return self.refuse(out, &msg);
        };
        self.client.cmd.set(spec.name);
        if !spec.arity_ok(args.len()) {
            let msg = match spec.op {
                Op::Throttle => {
                    "Cell error: Usage: cl.throttle <key> <max_burst> <count per period> <period> [<quantity>]"
                        .to_string()
                }
                _ => format!("ERR wrong number of arguments for '{}' command", spec.name),
            };
            if spec.op == Op::Exec {
                return self.abort_exec(out, &msg);
            }
            return self.refuse(out, &msg);
        }
        if let Some(msg) = subcommand_check(spec.op, buf, args) {
            // Refused before queueing too, as Redis (EXEC then aborts).
            return self.refuse(out, &msg);
        }
        if self.multi.is_some()
            && !matches!(spec.op, Op::Exec | Op::Discard | Op::Multi | Op::Watch | Op::Quit | Op::Reset)
        {
            return self.queue(spec, buf, args, out);
        }
        if matches!(spec.op, Op::Mset | Op::Msetnx) && args.len().is_multiple_of(2) {
            // Checked after queueing, as Redis does: inside MULTI an odd
            // MSET is queued and fails as one element of EXEC's reply.
            return self.refuse(out, &format!("ERR wrong number of arguments for '{}' command", spec.name));
        }
        if matches!(spec.op, Op::Flushall | Op::Flushdb)
            && (args.len() > 2 || args.get(1).is_some_and(|a| !is_word(a.of(buf), &["ASYNC", "SYNC"])))
        {
            return self.reply_here(out, |o| Encoder::error(o, "ERR syntax error"));
        }
        match spec.route {
            Route::Conn
                if matches!(spec.op, Op::Multi | Op::Exec | Op::Discard | Op::Watch | Op::Unwatch) =>
            {
                self.transaction(spec.op, buf, args, out)
            }
            Route::Conn => self.conn_command(spec, buf, args, out),
            Route::Key => {
                let owner = self.owner(args[1].of(buf));
                if spec.op.more_keys()
                    && (2..args.len()).any(|i| spec.op.key_at(i - 1) && self.owner(args[i].of(buf)) != owner)
                {
                    return self.refuse(out, CROSSSLOT_KEYS);
                }
                if owner == self.me && !self.deferred {
                    self.state.exec(spec.op, self.db, buf, &args[1..], self.proto, out);
                } else {
                    let p = self.parts.len();
                    self.part(owner, spec.op, buf, &args[1..]);
                    self.plan(Merge::One, p, out);
                }
            }
            Route::Keys { step } => {
                // An MGET of this shard's keys alone answers straight into
                // `out`: through the parts its values would be copied twice
                // (into the local buffer, then out of it), and a reply of
                // large values would need three times its size.
                if matches!(spec.op, Op::Mget)
                    && !self.deferred
                    && args[1..].iter().all(|a| self.owner(a.of(buf)) == self.me)
                {
                    // Large values are gathered as shared handles first, so
                    // that `out` grows once, to the reply's exact size.
                    let mut r = RemoteReply::default();
                    for key in &args[1..] {
                        self.state.exec(Op::Get, self.db, buf, std::slice::from_ref(key), self.proto, &mut r);
                        r.ends.push(r.out.len());
                    }
                    let size = (0..r.ends.len()).map(|i| r.part_len(i)).sum::<usize>();
                    if size > self.srv.config.max_reply {
                        return Encoder::error(out, &reply_too_large(size, self.srv.config.max_reply));
                    }
                    out.reserve(16 + size);
                    Encoder::array(out, r.ends.len());
                    for i in 0..r.ends.len() {
                        r.write_part(i, out);
                    }
                    return;
                }
                let (sub, merge) = match spec.op {
                    Op::Mget => (Op::Get, Merge::Array),
                    Op::Del | Op::Unlink => (Op::Del, Merge::Sum),
                    Op::Exists => (Op::Exists, Merge::Sum),
                    Op::Touch => (Op::Touch, Merge::Sum),
                    _ => (Op::Set, Merge::AllOk),
                };
                let p = self.parts.len();
                let mut i = 1;
                while i + step <= args.len() {
                    let owner = self.owner(args[i].of(buf));
                    self.part(owner, sub, buf, &args[i..i + step]);
                    i += step;
                }
                self.plan(merge, p, out);
            }
            Route::All => {
                let merge = match spec.op {
                    Op::Dbsize => Merge::Sum,
                    Op::Flushall | Op::Flushdb => Merge::AllOk,
                    Op::Keys => Merge::Concat,
                    _ => Merge::Info(crate::engine::info_sections(args[1..].iter().map(|a| a.of(buf)))),
                };
                let p = self.parts.len();
                for s in 0..self.shards {
                    self.part(s, spec.op, buf, &args[1..]);
                }
                self.plan(merge, p, out);
            }
        }
    }

    /// Records a request made of the parts from `first` on; merges it at
    /// once if none of them waits for another shard and nothing before it does.
    fn plan(&mut self, merge: Merge, first: usize, out: &mut Vec<u8>) {
        let remote = self.parts[first..].iter().any(|p| matches!(p, Part::Remote(..)));
        if !remote && !self.deferred {
            let parts: Vec<Part> = self.parts.drain(first..).collect();
            let planned = Planned { merge, parts: 0..parts.len(), proto: self.proto };
            self.merge(&planned, &parts, &[], out);
            self.local.clear();
            self.local_ends.clear();
            return;
        }
        self.deferred = true;
        self.planned.push(Planned { merge, parts: first..self.parts.len(), proto: self.proto });
    }

    /// Sends the batches, waits for their replies, and writes every planned
    /// reply in order.
    async fn finish(&mut self, out: &mut Vec<u8>, stream: &TcpStream) {
        let mut calls = Vec::new();
        for s in 0..self.shards {
            if self.remote[s].ops.is_empty() {
                continue;
            }
            let batch = std::mem::take(&mut self.remote[s]);
            calls.push((
                s,
                runtime::call(s, move || {
                    let state: Rc<ShardState> = runtime::state();
                    batch.run(&state)
                }),
            ));
        }
        let mut replies: Vec<RemoteReply> = (0..self.shards).map(|_| RemoteReply::default()).collect();
        for (s, call) in calls {
            replies[s] = call.await;
        }
        let planned = std::mem::take(&mut self.planned);
        let parts = std::mem::take(&mut self.parts);
        let mut skip = 0;
        for p in &planned {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if let Merge::Exec(n) = p.merge {
                if parts[p.parts.clone()].iter().any(|&part| self.part_bytes(part, &replies) != b":1\r\n") {
                    Encoder::null_array(out, p.proto);
                    skip = n;
                    continue;
                }
            }
            self.merge(p, &parts, &replies, out);
            // Large replies are written as they are assembled, so the
            // buffer stays near `max_output` whatever the pipeline holds.
            if out.len() > self.srv.config.max_output && !self.close {
                self.streamed += out.len();
                let (res, b) = stream.send_all(std::mem::take(out)).await;
                *out = b;
                out.clear();
                if res.is_err() {
                    self.close = true;
                }
            }
        }
        self.planned = planned;
        self.planned.clear();
        self.parts = parts;
        self.parts.clear();
        self.local.clear();
        self.local_ends.clear();
        self.deferred = false;
    }

    /// The bytes of a part without large values (those are never in parts
    /// that are parsed: integers, `+OK`, errors, INFO text).
    fn part_bytes<'a>(&'a self, part: Part, replies: &'a [RemoteReply]) -> &'a [u8] {
        match part {
            Part::Local(i) => {
                let start = if i == 0 { 0 } else { self.local_ends[i - 1] };
                &self.local[start..self.local_ends[i]]
            }
            Part::Remote(s, i) => {
                let r = &replies[s];
                let start = if i == 0 { 0 } else { r.ends[i - 1] };
                &r.out[start..r.ends[i]]
            }
        }
    }

    /// Writes a part to `out`, filling in the large values it refers to.
    fn write_part(&self, part: Part, replies: &[RemoteReply], out: &mut Vec<u8>) {
        match part {
            Part::Remote(s, i) => replies[s].write_part(i, out),
            Part::Local(_) => out.extend_from_slice(self.part_bytes(part, replies)),
        }
    }

    /// The bytes [`write_part`](Self::write_part) writes for `part`.
    fn part_len(&self, part: Part, replies: &[RemoteReply]) -> usize {
        match part {
            Part::Remote(s, i) => replies[s].part_len(i),
            Part::Local(_) => self.part_bytes(part, replies).len(),
        }
    }

    fn merge(&self, p: &Planned, parts: &[Part], replies: &[RemoteReply], out: &mut Vec<u8>) {
        let parts = &parts[p.parts.clone()];
        let bytes = |part: &Part| self.part_bytes(*part, replies);
        match p.merge {
            Merge::One => self.write_part(parts[0], replies, out),
            Merge::Array => {
                // One growth to the exact size, not a doubling chain (which
                // for a reply of large values peaks near three times it).
                let size = parts.iter().map(|&part| self.part_len(part, replies)).sum::<usize>();
                if size > self.srv.config.max_reply {
                    return Encoder::error(out, &reply_too_large(size, self.srv.config.max_reply));
                }
                out.reserve(16 + size);
                Encoder::array(out, parts.len());
                for part in parts {
                    self.write_part(*part, replies, out);
                }
            }
            Merge::Sum | Merge::AllOk => {
                let mut sum: i64 = 0;
                for part in parts {
                    let b = bytes(part);
                    if b.first() == Some(&b'-') {
                        out.extend_from_slice(b);
                        return;
                    }
                    sum = sum.saturating_add(parse_int_reply(b).unwrap_or(0));
                }
                match p.merge {
                    Merge::Sum => Encoder::int(out, sum),
                    _ => Encoder::ok(out),
                }
            }
            Merge::Concat => {
                let mut n = 0;
                for part in parts {
                    match array_body(bytes(part)) {
                        Some((len, _)) => n += len,
                        None => return out.extend_from_slice(bytes(part)),
                    }
                }
                Encoder::array(out, n);
                for part in parts {
                    if let Some((_, body)) = array_body(bytes(part)) {
                        out.extend_from_slice(body);
                    }
                }
            }
            Merge::Info(sections) => {
                let shards: Vec<&[u8]> = parts.iter().map(|part| bulk_payload(bytes(part))).collect();
                let text = self.srv.info_text(sections, self.shards, &shards);
                Encoder::verbatim(out, &text, p.proto);
            }
            // A failed check never gets here (`finish` skips it).
            Merge::Exec(n) => Encoder::array(out, n),
            Merge::Silent => {}
            Merge::Text => {
                let text: Vec<u8> =
                    parts.iter().flat_map(|part| bulk_payload(bytes(part))).copied().collect();
                Encoder::verbatim(out, &text, p.proto);
            }
            Merge::KillOne => {
                let killed: i64 = parts.iter().filter_map(|part| parse_int_reply(bytes(part))).sum();
                if killed > 0 {
                    Encoder::ok(out)
                } else {
                    Encoder::error(out, "ERR No such client")
                }
            }
        }
    }

    /// Replies with an error; inside `MULTI`, the transaction is then
    /// discarded at `EXEC`, as Redis does.
    fn refuse(&mut self, out: &mut Vec<u8>, msg: &(impl AsRef<[u8]> + ?Sized)) {
        if let Some(m) = &mut self.multi {
            m.refused = true;
        }
        self.reply_here(out, |o| Encoder::error_bytes(o, msg.as_ref()));
    }

    /// Refuses `EXEC` itself as Redis's `rejectCommand` does: the transaction
    /// (in `MULTI` or not) and the watches end, and the answer is
    /// `-EXECABORT` quoting `msg` without its `ERR ` code.
    fn abort_exec(&mut self, out: &mut Vec<u8>, msg: &str) {
        self.end_transaction(Merge::Silent, out);
        let why = msg.strip_prefix("ERR ").unwrap_or(msg);
        let msg = format!("EXECABORT Transaction discarded because of: {why}");
        self.reply_here(out, |o| Encoder::error(o, &msg));
    }

    /// Leaves `MULTI` (its queue discarded) and drops the watches, replying
    /// as `merge` says (`DISCARD`'s `+OK`, or nothing).
    fn end_transaction(&mut self, merge: Merge, out: &mut Vec<u8>) {
        self.multi = None;
        self.client.multi.set(-1);
        self.unwatch_all(merge, out);
    }

    /// Queues a command between `MULTI` and `EXEC`, copying its arguments.
    fn queue(&mut self, spec: &Spec, buf: &[u8], args: &[Span], out: &mut Vec<u8>) {
        if matches!(spec.op, Op::Hello | Op::Client | Op::Auth | Op::Select)
            && self.watching.first().is_some_and(|k| self.watch_owner(k) != self.me)
        {
            // They change the connection at once, before another shard's
            // check of the watched keys can say the transaction will not run.
            return self.refuse(out, "ERR Command not allowed inside a transaction");
        }
        if let Some(w) = self.watching.first().map(|k| self.watch_owner(k)) {
            let mut on = vec![false; self.shards];
            self.shards_of(buf, args, &mut on);
            if on.iter().enumerate().any(|(s, &on)| on && s != w) {
                return self.refuse(out, CROSSSLOT);
            }
        }
        let max_bytes = self.srv.config.max_query;
        let Some(m) = self.multi.as_mut() else { return };
        let bytes: usize = args.iter().map(|a| a.len()).sum();
        if !m.refused && (m.commands.len() >= MAX_QUEUED || m.arena.len() + bytes > max_bytes) {
            *m = Multi { refused: true, ..Multi::default() };
            return self.refuse(out, "ERR transaction too large (max_query bytes or 1048576 commands)");
        }
        // After a refusal nothing is kept: EXEC will discard the lot.
        if !m.refused {
            let first = m.spans.len();
            for a in args {
                let start = m.arena.len();
                m.arena.extend_from_slice(a.of(buf));
                m.spans.push(Span { start, end: m.arena.len() });
            }
            m.commands.push((first, args.len()));
        }
        self.client.multi.set(self.client.multi.get() + 1);
        self.reply_here(out, |o| Encoder::simple(o, "QUEUED"));
    }

    /// `MULTI`, `EXEC`, `DISCARD`, `WATCH` and `UNWATCH`.
    fn transaction(&mut self, op: Op, buf: &[u8], args: &[Span], out: &mut Vec<u8>) {
        if matches!(op, Op::Exec | Op::Discard) {
            self.client.multi.set(-1);
        }
        match op {
            Op::Multi if self.multi.is_some() => {
                self.reply_here(out, |o| Encoder::error(o, "ERR MULTI calls can not be nested"))
            }
            Op::Multi => {
                self.multi = Some(Multi::default());
                self.client.multi.set(0);
                self.reply_here(out, Encoder::ok)
            }
            Op::Discard if self.multi.is_none() => {
                self.reply_here(out, |o| Encoder::error(o, "ERR DISCARD without MULTI"))
            }
            Op::Discard => self.end_transaction(Merge::AllOk, out),
            Op::Unwatch => self.unwatch_all(Merge::AllOk, out),
            Op::Watch if self.multi.is_some() => {
                self.reply_here(out, |o| Encoder::error(o, "ERR WATCH inside MULTI is not allowed"))
            }
            Op::Watch if self.watching.len() + args.len() - 1 > MAX_WATCHED => self.reply_here(out, |o| {
                Encoder::error(o, "ERR too many watched keys (at most 65536 per connection)")
            }),
            Op::Watch => {
                // Watched keys live on one shard, whose check then runs
                // right before the transaction's commands there.
                let w = self
                    .watching
                    .first()
                    .map_or_else(|| self.owner(args[1].of(buf)), |k| self.watch_owner(k));
                if args[1..].iter().any(|a| self.owner(a.of(buf)) != w) {
                    return self.reply_here(out, |o| Encoder::error(o, CROSSSLOT));
                }
                let id = self.id.to_string();
                let p = self.parts.len();
                for a in &args[1..] {
                    // Kept as stored: a later SELECT does not move it.
                    let key = crate::state::stored_key(self.db, a.of(buf));
                    if self.watching.iter().any(|k| **k == *key) {
                        continue;
                    }
                    self.watching.push(key[..].into());
                    self.shard_op(self.owner(a.of(buf)), Op::Watch, &[id.as_bytes(), &key]);
                }
                self.client.watch.set(self.watching.len());
                if self.parts.len() == p {
                    return self.reply_here(out, Encoder::ok);
                }
                self.plan(Merge::AllOk, p, out)
            }
            _ => self.exec(out),
        }
    }

    /// `EXEC`: runs the queued commands, their replies in one array.
    ///
    /// Each shard runs its share of the transaction in one go, in order, so
    /// nothing else happens on that shard in between; shards do not wait for
    /// each other. With `WATCH`, the watched keys and the transaction's keys
    /// all live on one shard (`WATCH` and queueing refuse others, as Redis
    /// Cluster does across slots), whose check of the watched keys runs
    /// right before the commands.
    fn exec(&mut self, out: &mut Vec<u8>) {
        let Some(m) = self.multi.take() else {
            return self.reply_here(out, |o| Encoder::error(o, "ERR EXEC without MULTI"));
        };
        if m.refused {
            self.unwatch_all(Merge::Silent, out);
            return self.reply_here(out, |o| {
                Encoder::error(o, "EXECABORT Transaction discarded because of previous errors.")
            });
        }
        let commands = m.commands.len();
        let p = self.parts.len();
        let mut guard = None;
        if let Some(w) = self.watching.first().map(|k| self.watch_owner(k)) {
            let keys = std::mem::take(&mut self.watching);
            self.client.watch.set(0);
            let id = self.id.to_string();
            let mut fields: Vec<&[u8]> = vec![id.as_bytes(), b"0"];
            fields.extend(keys.iter().map(|k| &k[..]));
            if w == self.me {
                // Checked now: this shard runs nothing else before the
                // commands below.
                let (fbuf, spans) = fields_buf(&fields);
                let mut check = Vec::new();
                self.state.exec(Op::Exec, self.db, &fbuf, &spans, self.proto, &mut check);
                if check != b":1\r\n" {
                    let proto = self.proto;
                    return self.reply_here(out, |o| Encoder::null_array(o, proto));
                }
            } else {
                self.shard_op(w, Op::Exec, &fields);
                guard = Some((w, self.remote[w].ops.len() - 1));
            }
        }
        self.plan(Merge::Exec(commands), p, out);
        for &(first, n) in &m.commands {
            self.request(&m.arena, &m.spans[first..first + n], out);
        }
        if let Some((w, at)) = guard {
            let count = self.remote[w].ops.len() - at - 1;
            self.remote[w].guards.push((at, count));
        }
    }

    /// Marks in `on` the shards a queued command will run on.
    fn shards_of(&self, buf: &[u8], args: &[Span], on: &mut [bool]) {
        let Some(spec) = command::lookup(args[0].of(buf)) else { return };
        match spec.route {
            Route::Key => {
                for i in (1..args.len()).filter(|&i| spec.op.key_at(i - 1)) {
                    on[self.owner(args[i].of(buf))] = true;
                }
            }
            Route::Keys { step } => {
                for a in args[1..].iter().step_by(step) {
                    on[self.owner(a.of(buf))] = true;
                }
            }
            Route::All => on.fill(true),
            Route::Conn if spec.op == Op::Scan => {
                if let Ok(c) = command::scan_cursor(args[1].of(buf)) {
                    on[(c % self.shards as u64) as usize] = true;
                }
            }
            Route::Conn => {}
        }
    }

    /// Stops watching every key (one `UNWATCH` per shard holding some);
    /// replies as `merge` says (`+OK`, or nothing).
    fn unwatch_all(&mut self, merge: Merge, out: &mut Vec<u8>) {
        let keys = std::mem::take(&mut self.watching);
        self.client.watch.set(0);
        let id = self.id.to_string();
        let p = self.parts.len();
        for s in 0..self.shards {
            let mut fields: Vec<&[u8]> = vec![id.as_bytes()];
            fields.extend(keys.iter().filter(|k| self.watch_owner(k) == s).map(|k| &k[..]));
            if fields.len() > 1 {
                self.shard_op(s, Op::Unwatch, &fields);
            }
        }
        if self.parts.len() > p {
            self.plan(merge, p, out);
        } else if matches!(merge, Merge::AllOk) {
            self.reply_here(out, Encoder::ok);
        }
    }

    /// Adds a part running the shard-side `op` with `fields` as arguments.
    fn shard_op(&mut self, shard: usize, op: Op, fields: &[&[u8]]) {
        let (buf, spans) = fields_buf(fields);
        self.part(shard, op, &buf, &spans);
    }

    /// At disconnect: drops this connection's watches on every shard.
    async fn forget_watches(&mut self) {
        if self.watching.is_empty() || runtime::stopping() {
            return;
        }
        let keys = std::mem::take(&mut self.watching);
        let id = self.id.to_string();
        for s in 0..self.shards {
            let mut fields: Vec<&[u8]> = vec![id.as_bytes()];
            fields.extend(keys.iter().filter(|k| self.watch_owner(k) == s).map(|k| &k[..]));
            if fields.len() == 1 {
                continue;
            }
            let (buf, spans) = fields_buf(&fields);
            runtime::call(s, move || {
                let state: Rc<ShardState> = runtime::state();
                state.exec(Op::Unwatch, 0, &buf, &spans, Proto::Resp2, &mut Vec::new());
            })
            .await;
        }
    }

    fn conn_command(&mut self, spec: &Spec, buf: &[u8], args: &[Span], out: &mut Vec<u8>) {
        let arg = |i: usize| args.get(i).map(|s| s.of(buf)).unwrap_or(&[]);
        match spec.op {
            Op::Ping => match args.len() {
                1 => self.reply_here(out, |o| Encoder::simple(o, "PONG")),
                2 => self.reply_here(out, |o| Encoder::bulk(o, arg(1))),
                _ => self.reply_here(out, |o| {
                    Encoder::error(o, "ERR wrong number of arguments for 'ping' command")
                }),
            },
            Op::Echo => self.reply_here(out, |o| Encoder::bulk(o, arg(1))),
            Op::Quit => {
                self.reply_here(out, Encoder::ok);
                self.close = true;
            }
            Op::Reset => {
                // As Redis: out of MULTI (discarded), no watched keys,
                // database 0, RESP2, no name. Runs inside MULTI too.
                self.end_transaction(Merge::Silent, out);
                self.db = 0;
                self.client.db.set(0);
                self.proto = Proto::Resp2;
                self.client.resp.set(2);
                *self.client.name.borrow_mut() = None;
                self.reply_here(out, |o| Encoder::simple(o, "RESET"))
            }
            Op::Select => match parse_i64(arg(1)) {
                Some(db) if (0..self.srv.config.databases as i64).contains(&db) => {
                    self.db = db as u8;
                    self.client.db.set(self.db);
                    self.reply_here(out, Encoder::ok)
                }
                Some(db) if i32::try_from(db).is_err() => self.reply_here(out, |o| {
                    Encoder::error(
                        o,
                        "ERR value is out of range, value must between -2147483648 and 2147483647",
                    )
                }),
                Some(_) => self.reply_here(out, |o| Encoder::error(o, "ERR DB index is out of range")),
                None => {
                    self.reply_here(out, |o| Encoder::error(o, "ERR value is not an integer or out of range"))
                }
            },
            Op::Auth => {
                // No passwords: like Redis with none configured, the
                // `default` user (no password) is the only one.
                let msg = match args.len() {
                    2 => Some(
                        "ERR AUTH <password> called without any password configured for the default user. \
                         Are you sure your configuration is correct?",
                    ),
                    3 if arg(1) == b"default" => None,
                    3 => Some(WRONGPASS),
                    _ => Some("ERR syntax error"),
                };
                match msg {
                    None => self.reply_here(out, Encoder::ok),
                    Some(m) => self.reply_here(out, |o| Encoder::error(o, m)),
                }
            }
            Op::Time => {
                let us = crate::state::unix_ns() / 1000;
                let (secs, micros) = ((us / 1_000_000).to_string(), (us % 1_000_000).to_string());
                self.reply_here(out, |o| Encoder::command(o, &[secs.as_bytes(), micros.as_bytes()]))
            }
            Op::Scan => match command::scan_cursor(arg(1)) {
                // Run on the shard the cursor names, which checks the rest.
                Ok(cursor) => {
                    let p = self.parts.len();
                    self.part((cursor % self.shards as u64) as usize, Op::Scan, buf, &args[1..]);
                    self.plan(Merge::One, p, out);
                }
                Err(e) => self.reply_here(out, |o| Encoder::error(o, e)),
            },
            Op::Hello => self.hello(buf, args, out),
            Op::Client => self.client(buf, args, out),
            Op::Command => self.command(buf, args, out),
            Op::Config => self.config(buf, args, out),
            _ => self.reply_here(out, |o| Encoder::error(o, "ERR internal: misrouted command")),
        }
    }

    fn hello(&mut self, buf: &[u8], args: &[Span], out: &mut Vec<u8>) {
        if args.len() >= 2 {
            let proto = match parse_i64(args[1].of(buf)) {
                Some(2) => Proto::Resp2,
                Some(3) => Proto::Resp3,
                Some(_) => {
                    return self
                        .reply_here(out, |o| Encoder::error(o, "NOPROTO unsupported protocol version"))
                }
                None => {
                    return self.reply_here(out, |o| {
                        Encoder::error(o, "ERR Protocol version is not an integer or out of range")
                    })
                }
            };
            // AUTH <user> <pass> passes for the `default` user only (there
            // are no passwords, as in a Redis without any configured);
            // SETNAME <name> names the connection. Nothing changes unless
            // every option is valid.
            let mut name = None;
            let mut i = 2;
            while i < args.len() {
                let opt = args[i].of(buf).to_ascii_uppercase();
                let takes = match opt.as_slice() {
                    b"AUTH" => 2,
                    b"SETNAME" => 1,
                    _ => 0,
                };
                if takes == 0 || i + takes >= args.len() {
                    let msg =
                        format!("ERR Syntax error in HELLO option '{}'", args[i].of(buf).escape_ascii());
                    return self.reply_here(out, |o| Encoder::error(o, &msg));
                }
                if takes == 2 && args[i + 1].of(buf) != b"default" {
                    return self.reply_here(out, |o| Encoder::error(o, WRONGPASS));
                }
                if takes == 1 {
                    let n = args[i + 1].of(buf);
                    if n.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
                        return self.reply_here(out, |o| {
                            Encoder::error(
                                o,
                                "ERR Client names cannot contain spaces, newlines or special characters.",
                            )
                        });
                    }
                    name = Some(n);
                }
                i += takes + 1;
            }
            self.proto = proto;
            self.client.resp.set(if proto == Proto::Resp3 { 3 } else { 2 });
            if let Some(n) = name {
                *self.client.name.borrow_mut() = (!n.is_empty()).then(|| n.into());
            }
        }
        let proto = self.proto;
        let id = self.id as i64;
        self.reply_here(out, |o| {
            Encoder::map(o, 7, proto);
            Encoder::bulk(o, b"server");
            Encoder::bulk(o, b"resilienced");
            // The Redis version whose commands it answers, as INFO's
            // redis_version (clients compare it; INFO has our own version).
            Encoder::bulk(o, b"version");
            Encoder::bulk(o, REDIS_VERSION.as_bytes());
            Encoder::bulk(o, b"proto");
            Encoder::int(o, if proto == Proto::Resp3 { 3 } else { 2 });
            Encoder::bulk(o, b"id");
            Encoder::int(o, id);
            Encoder::bulk(o, b"mode");
            Encoder::bulk(o, b"standalone");
            Encoder::bulk(o, b"role");
            Encoder::bulk(o, b"master");
            Encoder::bulk(o, b"modules");
            Encoder::array(o, 0);
        });
    }

    /// `CLIENT SETNAME | GETNAME | ID | SETINFO | INFO | HELP`: what client
    /// libraries send when they connect. Names and library details are kept
    /// for the connection and shown by `CLIENT INFO`.
    fn client(&mut self, buf: &[u8], args: &[Span], out: &mut Vec<u8>) {
        let sub = args[1].of(buf).to_ascii_uppercase();
        let n = args.len();
        match sub.as_slice() {
            b"SETNAME" if n == 3 => {
                let name = args[2].of(buf);
                if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
                    return self.reply_here(out, |o| {
                        Encoder::error(
                            o,
                            "ERR Client names cannot contain spaces, newlines or special characters.",
                        )
                    });
                }
                *self.client.name.borrow_mut() = (!name.is_empty()).then(|| name.into());
                self.reply_here(out, Encoder::ok)
            }
            b"GETNAME" if n == 2 => {
                let proto = self.proto;
                let name = self.client.name.borrow().clone();
                self.reply_here(out, |o| match &name {
                    Some(v) => Encoder::bulk(o, v),
                    None => Encoder::null(o, proto),
                })
            }
            b"ID" if n == 2 => {
                let id = self.id as i64;
                self.reply_here(out, |o| Encoder::int(o, id))
            }
            b"SETINFO" if n == 4 => {
                let value = args[3].of(buf);
                if value.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
                    return self.reply_here(out, |o| {
                        Encoder::error(
                            o,
                            "ERR lib-name and lib-ver cannot contain spaces, newlines or special characters.",
                        )
                    });
                }
                match args[2].of(buf).to_ascii_uppercase().as_slice() {
                    b"LIB-NAME" => *self.client.lib_name.borrow_mut() = Some(value.into()),
                    b"LIB-VER" => *self.client.lib_ver.borrow_mut() = Some(value.into()),
                    _ => {
                        let msg = format!("ERR Unrecognized option '{}'", args[2].of(buf).escape_ascii());
                        return self.reply_here(out, |o| Encoder::error(o, &msg));
                    }
                }
                self.reply_here(out, Encoder::ok)
            }
            b"INFO" if n == 2 => {
                let text = self.client.line(resilience::clock::coarse_now());
                let proto = self.proto;
                self.reply_here(out, |o| Encoder::verbatim(o, text.as_bytes(), proto))
            }
            b"LIST" | b"KILL" => {
                let kill = sub == b"KILL";
                let raw: Vec<&[u8]> = args[2..].iter().map(|a| a.of(buf)).collect();
                if let Err(e) = clients::check(kill, &raw) {
                    return self.reply_here(out, |o| Encoder::error(o, &e));
                }
                let id = self.id.to_string();
                let mut fields: Vec<&[u8]> = vec![args[1].of(buf)];
                if kill {
                    fields.push(id.as_bytes());
                }
                fields.extend(&raw);
                let p = self.parts.len();
                for s in 0..self.shards {
                    self.shard_op(s, Op::Client, &fields);
                }
                let merge = match (kill, raw.len()) {
                    (false, _) => Merge::Text,
                    (true, 1) => Merge::KillOne,
                    (true, _) => Merge::Sum,
                };
                self.plan(merge, p, out)
            }
            b"HELP" if n == 2 => self.reply_here(out, |o| {
                let lines: [&[u8]; 8] = [
                    b"CLIENT <subcommand> [<arg> ...]. Subcommands are:",
                    b"GETNAME",
                    b"ID",
                    b"INFO",
                    b"KILL <ip:port> | <filter> <value> ...",
                    b"LIST [TYPE <type>] [ID <id> ...]",
                    b"SETINFO <LIB-NAME|LIB-VER> <value>",
                    b"SETNAME <name>",
                ];
                Encoder::array(o, lines.len());
                for l in lines {
                    Encoder::simple(o, std::str::from_utf8(l).unwrap_or_default());
                }
            }),
            b"NO-EVICT"
                if n == 3 && matches!(args[2].of(buf).to_ascii_uppercase().as_slice(), b"ON" | b"OFF") =>
            {
                // No client is ever evicted here: either answer holds.
                self.reply_here(out, Encoder::ok)
            }
            b"NO-EVICT" if n == 3 => self.reply_here(out, |o| Encoder::error(o, "ERR syntax error")),
            // Unknown names and wrong arities were refused before dispatch
            // (`subcommand_check`); kept so that no request goes unanswered.
            _ => self.reply_here(out, |o| subcommand_error(o, "client", args[1].of(buf), false)),
        }
    }

    fn command(&mut self, buf: &[u8], args: &[Span], out: &mut Vec<u8>) {
        let proto = self.proto;
        let sub = args.get(1).map(|s| s.of(buf).to_ascii_uppercase());
        match sub.as_deref() {
            // Every command: `COMMAND`, or `COMMAND INFO` with no names (as
            // Redis 7).
            None => self.reply_here(out, every_command),
            Some(b"INFO") if args.len() == 2 => self.reply_here(out, every_command),
            Some(b"COUNT") if args.len() == 2 => {
                self.reply_here(out, |o| Encoder::int(o, command::TABLE.len() as i64))
            }
            Some(b"DOCS") => self.reply_here(out, |o| Encoder::map(o, 0, proto)),
            // An unknown name is a null (`$-1` in RESP2, as Redis).
            Some(b"INFO") => {
                let names: Vec<&[u8]> = args[2..].iter().map(|s| s.of(buf)).collect();
                self.reply_here(out, |o| {
                    Encoder::array(o, names.len());
                    for n in names {
                        match command::lookup(n) {
                            Some(s) => command_entry(o, s),
                            None => Encoder::null(o, proto),
                        }
                    }
                })
            }
            // As in `client`: refused before dispatch already.
            Some(_) => self.reply_here(out, |o| subcommand_error(o, "command", args[1].of(buf), false)),
        }
    }

    fn config(&mut self, buf: &[u8], args: &[Span], out: &mut Vec<u8>) {
        let proto = self.proto;
        let sub = args[1].of(buf).to_ascii_uppercase();
        if sub != b"GET" {
            // Redis's other subcommands (`subcommand_check` refused unknown
            // ones and wrong arities) are not supported here.
            let msg =
                format!("ERR CONFIG {} is not supported (only CONFIG GET)", args[1].of(buf).escape_ascii());
            return self.reply_here(out, |o| Encoder::error(o, &msg));
        }
        let params = self.srv.config_params();
        let mut hits: Vec<&(String, String)> = Vec::new();
        for pat in &args[2..] {
            let pat = pat.of(buf).to_ascii_lowercase();
            for p in &params {
                if glob(&pat, p.0.as_bytes()) && !hits.iter().any(|h| h.0 == p.0) {
                    hits.push(p);
                }
            }
        }
        self.reply_here(out, |o| {
            Encoder::map(o, hits.len(), proto);
            for (k, v) in hits {
                Encoder::bulk(o, k.as_bytes());
                Encoder::bulk(o, v.as_bytes());
            }
        });
    }
}

fn command_entry(o: &mut Vec<u8>, s: &Spec) {
    Encoder::array(o, 6);
    Encoder::bulk(o, s.name.as_bytes());
    Encoder::int(o, s.arity as i64);
    Encoder::array(o, s.flags.len());
    for f in s.flags {
        Encoder::simple(o, f);
    }
    let (first, last, step) = match s.route {
        Route::Key if s.op == Op::Msetnx => (1, -1, 2),
        Route::Key if s.op.more_keys() => (1, 2, 1),
        Route::Key => (1, 1, 1),
        Route::Keys { step } => (1, -1, step as i64),
        // Routed by the connection, but its arguments are keys.
        Route::Conn if s.op == Op::Watch => (1, -1, 1),
        _ => (0, 0, 0),
    };
    Encoder::int(o, first);
    Encoder::int(o, last);
    Encoder::int(o, step);
}

/// Redis 7's wording, byte for byte: `ERR unknown command 'x', with args
/// beginning with: 'a' 'b' `. As Redis prints them with `%.*s`: the name
/// up to 128 bytes, the arguments while the list is under 128 bytes (each cut
/// to what is left), each ending at a NUL byte; other bytes go out as they
/// came (`Encoder::error` turns CR and LF into spaces).
fn unknown_command(buf: &[u8], args: &[Span]) -> Vec<u8> {
    let c_str = |b: &[u8], max: usize| -> Vec<u8> {
        let b = &b[..b.len().min(max)];
        b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())].to_vec()
    };
    let mut list = Vec::new();
    for a in &args[1..] {
        if list.len() >= 128 {
            break;
        }
        let arg = c_str(a.of(buf), 128 - list.len());
        list.push(b'\'');
        list.extend_from_slice(&arg);
        list.extend_from_slice(b"' ");
    }
    let mut msg = b"ERR unknown command '".to_vec();
    msg.extend_from_slice(&c_str(args[0].of(buf), 128));
    msg.extend_from_slice(b"', with args beginning with: ");
    msg.extend_from_slice(&list);
    msg
}

/// `fields` laid end to end, and their spans.
fn fields_buf(fields: &[&[u8]]) -> (Vec<u8>, Vec<Span>) {
    let mut buf = Vec::with_capacity(fields.iter().map(|f| f.len()).sum());
    let mut spans = Vec::with_capacity(fields.len());
    for f in fields {
        let start = buf.len();
        buf.extend_from_slice(f);
        spans.push(Span { start, end: buf.len() });
    }
    (buf, spans)
}

/// What `AUTH` answers for a user other than `default`.
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// True when `b` is one of `words` (ASCII case ignored).
fn is_word(b: &[u8], words: &[&str]) -> bool {
    words.iter().any(|w| b.eq_ignore_ascii_case(w.as_bytes()))
}

/// The element count and the element bytes of a `*n\r\n...` array reply.
fn array_body(b: &[u8]) -> Option<(usize, &[u8])> {
    let rest = b.strip_prefix(b"*")?;
    let cr = rest.iter().position(|&c| c == b'\r')?;
    let n = std::str::from_utf8(&rest[..cr]).ok()?.parse().ok()?;
    Some((n, rest.get(cr + 2..)?))
}

fn parse_int_reply(b: &[u8]) -> Option<i64> {
    let b = b.strip_prefix(b":")?.strip_suffix(b"\r\n")?;
    parse_i64(b)
}

/// The payload of a `$len\r\n...\r\n` bulk reply (empty if not one).
fn bulk_payload(b: &[u8]) -> &[u8] {
    let Some(rest) = b.strip_prefix(b"$") else { return &[] };
    let Some(cr) = rest.iter().position(|&c| c == b'\r') else { return &[] };
    rest.get(cr + 2..rest.len().saturating_sub(2)).unwrap_or(&[])
}

/// `COMMAND`'s reply: every command's entry.
fn every_command(o: &mut Vec<u8>) {
    Encoder::array(o, command::TABLE.len());
    for s in command::TABLE {
        command_entry(o, s);
    }
}

/// The error for an array reply larger than `max-reply`.
fn reply_too_large(size: usize, limit: usize) -> String {
    format!("ERR reply too large ({size} bytes; max-reply is {limit}): ask for fewer or smaller values")
}

/// The error Redis 7 gives before running (or queueing) a `CLIENT`,
/// `COMMAND` or `CONFIG` request whose subcommand is unknown, or known with
/// the wrong number of arguments (arities as in Redis's command table;
/// negative: at least). `None` for everything else.
fn subcommand_check(op: Op, buf: &[u8], args: &[Span]) -> Option<Vec<u8>> {
    let (cmd, table): (&str, &[(&[u8], i32)]) = match op {
        Op::Client => (
            "client",
            &[
                (b"SETNAME", 3),
                (b"GETNAME", 2),
                (b"ID", 2),
                (b"SETINFO", 4),
                (b"INFO", 2),
                (b"LIST", -2),
                (b"KILL", -3),
                (b"HELP", 2),
                (b"NO-EVICT", 3),
            ],
        ),
        Op::Command if args.len() >= 2 => ("command", &[(b"COUNT", 2), (b"DOCS", -2), (b"INFO", -2)]),
        Op::Config => {
            ("config", &[(b"GET", -3), (b"SET", -4), (b"RESETSTAT", 2), (b"REWRITE", 2), (b"HELP", 2)])
        }
        _ => return None,
    };
    let raw = args.get(1)?.of(buf);
    let sub = raw.to_ascii_uppercase();
    let n = args.len() as i32;
    let mut o = Vec::new();
    match table.iter().find(|(name, _)| *name == sub.as_slice()) {
        Some(&(_, arity)) if (arity >= 0 && n == arity) || (arity < 0 && n >= -arity) => return None,
        Some(_) => subcommand_error(&mut o, cmd, raw, true),
        None => subcommand_error(&mut o, cmd, raw, false),
    }
    // `o` is `-message\r\n`: the message alone, for `refuse`.
    Some(o[1..o.len() - 2].to_vec())
}

/// Redis's error for a container command's subcommand: a known one with the
/// wrong number of arguments (`'client|setname'`), or an unknown one, shown
/// as sent (up to a NUL byte, at most 128 bytes, as Redis's `%.128s`).
fn subcommand_error(o: &mut Vec<u8>, cmd: &str, sub: &[u8], known: bool) {
    if known {
        let msg = format!(
            "ERR wrong number of arguments for '{cmd}|{}' command",
            String::from_utf8_lossy(&sub.to_ascii_lowercase())
        );
        return Encoder::error(o, &msg);
    }
    let sub = &sub[..sub.iter().position(|&b| b == 0).unwrap_or(sub.len()).min(128)];
    let tail = format!("'. Try {} HELP.", cmd.to_ascii_uppercase());
    Encoder::error_bytes(o, &[&b"ERR unknown subcommand '"[..], sub, tail.as_bytes()].concat());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_helpers_parse_what_the_encoder_writes() {
        let mut o = Vec::new();
        Encoder::int(&mut o, -17);
        assert_eq!(parse_int_reply(&o), Some(-17));
        o.clear();
        Encoder::bulk(&mut o, b"# Shard\r\nx:1\r\n");
        assert_eq!(bulk_payload(&o), b"# Shard\r\nx:1\r\n");
        assert_eq!(bulk_payload(b"+OK\r\n"), b"");
    }

    #[test]
    fn unknown_command_quotes_its_arguments() {
        let buf = b"FOO a b";
        let args = [Span { start: 0, end: 3 }, Span { start: 4, end: 5 }, Span { start: 6, end: 7 }];
        assert_eq!(
            unknown_command(buf, &args),
            b"ERR unknown command 'FOO', with args beginning with: 'a' 'b' "
        );
    }
}
