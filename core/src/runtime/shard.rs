//! Shards: the threads, their loop, and the functions tasks call on them.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use io_uring::{opcode, types};

use super::driver::Driver;
use super::executor::{Executor, JoinHandle, JoinState};
use super::mesh::{Call, Mesh, Msg};
use super::timer::{Sleep, Timers};
use super::wake::Parker;
use super::Error;
use crate::clock::{self, Nanos};
use crate::queue::spsc::Ring;
use crate::sync::{thread, Arc, AtomicBool, AtomicU64, AtomicUsize, CachePadded, Condvar, Mutex, Ordering};

/// How the runtime is laid out.
#[derive(Debug, Clone)]
pub struct Config {
    /// Number of shards (threads). Default: the number of CPUs.
    pub shards: usize,
    /// Pin shard `i` to CPU `i % CPUs`. Default: true.
    pub pin: bool,
    /// Submission queue entries per ring (a power of two). Default: 1024.
    pub ring_entries: u32,
    /// Capacity of each mesh ring (a power of two). Default: 1024. The mesh
    /// has `shards * (shards - 1)` rings, so with many shards each ring
    /// gets less (a power of two, at least 16) to keep the rings' slots
    /// within `MESH_BUDGET` (256 MiB). The floor wins beyond about 700
    /// shards: 1,024 shards take about 0.5 GiB of ring slots.
    pub mesh_capacity: usize,
    /// How long a shard with nothing to do polls for completions and
    /// messages before it sleeps in `io_uring_enter` (a sleep and a wake-up
    /// cost a context switch each). Zero never polls. Default: 0 (polling
    /// pays on dedicated cores; on a machine shared with the clients it takes
    /// their CPU).
    pub spin: Duration,
    /// How long a stopping shard waits for its tasks to finish. Default: 5 s.
    pub stop_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            shards: thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            pin: true,
            ring_entries: 1024,
            mesh_capacity: 1024,
            spin: Duration::ZERO,
            stop_grace: Duration::from_secs(5),
        }
    }
}

/// Bytes the mesh rings' slots may take before their capacity shrinks.
pub const MESH_BUDGET: usize = 256 << 20;

/// The capacity each of the `n * (n - 1)` mesh rings gets: `wanted`, halved
/// while the rings' slots would take more than [`MESH_BUDGET`], but never
/// below 16.
fn mesh_ring_capacity(n: usize, wanted: usize) -> usize {
    let rings = n.saturating_mul(n.saturating_sub(1)).max(1);
    let slot = std::mem::size_of::<Msg>().max(1);
    let mut cap = wanted.max(2).checked_next_power_of_two().unwrap_or(1 << 30);
    while cap > 16 && rings.saturating_mul(cap).saturating_mul(slot) > MESH_BUDGET {
        cap /= 2;
    }
    cap
}

/// Counters one shard keeps about itself (monotonic, relaxed).
#[derive(Debug, Default)]
pub struct ShardStats {
    /// Turns of the shard's loop.
    pub turns: AtomicU64,
    /// Task polls.
    pub polls: AtomicU64,
    /// io_uring completions reaped.
    pub completions: AtomicU64,
    /// Times the shard slept in `io_uring_enter`.
    pub parks: AtomicU64,
    /// Mesh messages received.
    pub mesh_received: AtomicU64,
    /// Eventfd wake-ups this shard sent to sleeping shards.
    pub wakeups_sent: AtomicU64,
    /// Tasks alive.
    pub tasks: AtomicU64,
}

/// A snapshot of every shard's counters, in shard order.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Per shard: turns, polls, completions, parks, mesh received, wake-ups sent, tasks.
    pub shards: Vec<[u64; 7]>,
}

fn bump(c: &AtomicU64, by: u64) {
    // Only the owning shard writes its counters: a load and a store suffice.
    c.store(c.load(Ordering::Relaxed) + by, Ordering::Relaxed);
}

struct WakeSlot {
    eventfd: OwnedFd,
    parker: Parker,
}

pub(crate) struct Shared {
    n: usize,
    stop: AtomicBool,
    /// Shards that, while stopping, have no task left. A shard exits when
    /// all are idle (another shard may still need it to answer a call).
    idle: AtomicUsize,
    wake: Vec<WakeSlot>,
    stats: Vec<CachePadded<ShardStats>>,
}

impl Shared {
    fn write_eventfd(&self, to: usize) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live local to an eventfd owned by
        // `self`, which outlives this call.
        let _ = unsafe { libc::write(self.wake[to].eventfd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Wakes shard `to` if it sleeps (see [`super::wake`]).
    fn wake(&self, from: usize, to: usize) {
        if self.wake[to].parker.should_wake() {
            self.write_eventfd(to);
            bump(&self.stats[from].wakeups_sent, 1);
        }
    }
}

/// Everything one shard owns; reachable from its tasks through a thread-local.
pub(crate) struct Ctx {
    pub(crate) id: usize,
    shared: Arc<Shared>,
    pub(crate) driver: Driver,
    pub(crate) exec: Executor,
    pub(crate) timers: Timers,
    pub(crate) mesh: Mesh,
    state: Rc<dyn Any>,
    stopping: Cell<bool>,
    stop_waiters: RefCell<Vec<Waker>>,
}

thread_local! {
    static CTX: RefCell<Option<Rc<Ctx>>> = const { RefCell::new(None) };
}

/// Runs `f` with the current shard's context.
///
/// # Panics
///
/// Outside a shard thread: the runtime's functions are for tasks.
pub(crate) fn with_ctx<R>(f: impl FnOnce(&Ctx) -> R) -> R {
    CTX.with(|c| f(c.borrow().as_ref().expect("resilience::runtime used outside a shard thread")))
}

/// Like [`with_ctx`], doing nothing outside a shard (for destructors).
pub(crate) fn try_with_ctx(f: impl FnOnce(&Ctx)) {
    CTX.with(|c| {
        if let Ok(c) = c.try_borrow() {
            if let Some(c) = c.as_ref() {
                f(c)
            }
        }
    })
}

pub(crate) fn wake_word(word: usize) {
    try_with_ctx(|c| c.exec.wake(word));
}

/// Starts a task on the current shard. Its output can be awaited through
/// the returned handle, or ignored (dropping the handle detaches the task).
///
/// # Panics
///
/// Outside a shard, or when the shard already runs 16 million tasks.
pub fn spawn<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
{
    let state = JoinState::new();
    let inner = state.clone();
    let ok = with_ctx(|c| {
        c.exec.spawn(Box::pin(async move {
            let v = fut.await;
            state.finish(v);
        }))
    });
    assert!(ok, "too many tasks on one shard");
    JoinHandle { inner }
}

/// The current shard's index, `0..shard_count()`.
pub fn shard_id() -> usize {
    with_ctx(|c| c.id)
}

/// The number of shards.
pub fn shard_count() -> usize {
    with_ctx(|c| c.shared.n)
}

/// Runs `f` with the current shard's state (made by `init` in
/// [`Runtime::start`]).
///
/// # Panics
///
/// If `S` is not the state type the runtime was started with.
pub fn with_state<S: 'static, R>(f: impl FnOnce(&S) -> R) -> R {
    with_ctx(|c| f(c.state.downcast_ref::<S>().expect("runtime state of another type")))
}

/// The current shard's state (made by `init` in [`Runtime::start`]).
///
/// # Panics
///
/// If `S` is not the state type the runtime was started with.
pub fn state<S: 'static>() -> Rc<S> {
    match with_ctx(|c| c.state.clone()).downcast::<S>() {
        Ok(s) => s,
        Err(_) => panic!("runtime state of another type"),
    }
}

/// A future that completes after `d`.
pub fn sleep(d: Duration) -> Sleep {
    sleep_until(clock::now().saturating_add(clock::nanos(d)))
}

/// A future that completes at monotonic time `at` (see [`crate::clock`]).
pub fn sleep_until(at: Nanos) -> Sleep {
    Sleep { at, registered: false }
}

/// Runs `f` on shard `to` and returns its answer here. On the current shard,
/// `f` runs at once.
///
/// # Panics
///
/// If `to >= shard_count()`.
pub fn call<R, F>(to: usize, f: F) -> Call<R>
where
    R: Send + 'static,
    F: FnOnce() -> R + Send + 'static,
{
    with_ctx(|c| {
        assert!(to < c.shared.n, "no shard {to}");
        if to == c.id {
            Call::ready(f())
        } else {
            c.mesh.call(to, f)
        }
    })
}

/// The current shard's counters (see [`Stats`] for their order), or `None`
/// outside a shard thread.
pub fn local_stats() -> Option<[u64; 7]> {
    let mut out = None;
    try_with_ctx(|c| out = Some(snapshot(&c.shared.stats[c.id])));
    out
}

/// True once the runtime has been asked to stop.
pub fn stopping() -> bool {
    with_ctx(|c| c.stopping.get())
}

/// A future that completes when the runtime is asked to stop.
pub fn stopped() -> impl Future<Output = ()> {
    std::future::poll_fn(|cx| {
        with_ctx(|c| {
            if c.stopping.get() {
                Poll::Ready(())
            } else {
                c.stop_waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
    })
}

/// Lets the other ready tasks of this shard run before continuing.
pub fn yield_now() -> impl Future<Output = ()> {
    let mut yielded = false;
    std::future::poll_fn(move |cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
}

/// A running set of shards.
pub struct Runtime {
    shared: Arc<Shared>,
    threads: Vec<thread::JoinHandle<()>>,
}

/// Per-shard startup outcome, reported to [`Runtime::start`].
type Startup = Mutex<Vec<Option<Result<(), String>>>>;

impl Runtime {
    /// Starts `config.shards` shards. On each, `init(shard)` makes the shard's
    /// state (see [`with_state`]) and `main(shard)` is spawned as its first
    /// task. Returns once every shard runs, or the first shard's error
    /// ([`Error::Unavailable`] when io_uring is refused).
    pub fn start<S, I, M, F>(config: Config, init: I, main: M) -> Result<Runtime, Error>
    where
        S: 'static,
        I: Fn(usize) -> S + Send + Sync + 'static,
        M: Fn(usize) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + 'static,
    {
        super::probe()?;
        let n = config.shards.max(1);
        let mut wake = Vec::with_capacity(n);
        for _ in 0..n {
            // SAFETY: eventfd takes no pointers; the result is checked.
            let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
            if fd < 0 {
                return Err(Error::Io(std::io::Error::last_os_error()));
            }
            // SAFETY: `fd` is a fresh descriptor that nothing else owns.
            let eventfd = unsafe { OwnedFd::from_raw_fd(fd) };
            wake.push(WakeSlot { eventfd, parker: Parker::new() });
        }
        let shared = Arc::new(Shared {
            n,
            stop: AtomicBool::new(false),
            idle: AtomicUsize::new(0),
            wake,
            stats: (0..n).map(|_| CachePadded(ShardStats::default())).collect(),
        });

        // The mesh: ring (i -> j) has its producer on shard i, consumer on j.
        let mut outs: Vec<Vec<Option<_>>> = (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
        let mut ins: Vec<Vec<Option<_>>> = (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
        let capacity = mesh_ring_capacity(n, config.mesh_capacity);
        for (i, out) in outs.iter_mut().enumerate() {
            for (j, slot) in out.iter_mut().enumerate() {
                if i != j {
                    let (p, c) = Ring::<Msg>::try_new(capacity).map_err(|e| {
                        Error::Io(std::io::Error::new(
                            std::io::ErrorKind::OutOfMemory,
                            format!("the cross-shard mesh of {n} shards ({} rings): {e}", n * (n - 1)),
                        ))
                    })?;
                    *slot = Some(p);
                    ins[j][i] = Some(c);
                }
            }
        }

        let cores = if config.pin { core_affinity::get_core_ids().unwrap_or_default() } else { Vec::new() };
        let startup: Arc<(Startup, Condvar)> = Arc::new((Mutex::new(vec![None; n]), Condvar::new()));
        let init = Arc::new(init);
        let main = Arc::new(main);
        let mut threads = Vec::with_capacity(n);
        for (id, (out, inbound)) in outs.into_iter().zip(ins).enumerate() {
            let shared = shared.clone();
            let startup = startup.clone();
            let init = init.clone();
            let main = main.clone();
            let core = if cores.is_empty() { None } else { Some(cores[id % cores.len()]) };
            let cfg = config.clone();
            let handle = thread::Builder::new().name(format!("shard-{id}")).spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                let report = |r: Result<(), String>| {
                    let (lock, cv) = &*startup;
                    if let Ok(mut v) = lock.lock() {
                        v[id] = Some(r);
                    }
                    cv.notify_all();
                };
                let driver = match Driver::new(cfg.ring_entries) {
                    Ok(d) => d,
                    Err(e) => return report(Err(e.to_string())),
                };
                let ctx = Rc::new(Ctx {
                    id,
                    shared: shared.clone(),
                    driver,
                    exec: Executor::new(id),
                    timers: Timers::new(),
                    mesh: Mesh::new(id, out, inbound),
                    state: Rc::new(init(id)),
                    stopping: Cell::new(false),
                    stop_waiters: RefCell::new(Vec::new()),
                });
                CTX.with(|c| *c.borrow_mut() = Some(ctx.clone()));
                arm_eventfd(&ctx);
                spawn(main(id));
                report(Ok(()));
                run(&ctx, &cfg);
                ctx.exec.clear();
                CTX.with(|c| c.borrow_mut().take());
            })?;
            threads.push(handle);
        }

        let rt = Runtime { shared, threads };
        let (lock, cv) = &*startup;
        let mut v = lock.lock().map_err(|_| Error::Io(std::io::Error::other("shard panicked at start")))?;
        while v.iter().any(Option::is_none) {
            v = cv.wait(v).map_err(|_| Error::Io(std::io::Error::other("shard panicked at start")))?;
        }
        if let Some(Some(Err(e))) = v.iter().find(|r| matches!(r, Some(Err(_)))) {
            let e = e.clone();
            drop(v);
            rt.stop();
            rt.join();
            return Err(Error::Io(std::io::Error::other(e)));
        }
        drop(v);
        Ok(rt)
    }

    /// The number of shards.
    pub fn shards(&self) -> usize {
        self.shared.n
    }

    /// Asks every shard to stop: pending accepts and reads are cancelled,
    /// [`stopped`] futures complete, and each shard exits once its tasks
    /// have finished (or after `stop_grace`).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for i in 0..self.shared.n {
            self.shared.write_eventfd(i);
        }
    }

    /// True once [`Runtime::stop`] was called.
    pub fn is_stopping(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    /// Waits for every shard thread to exit.
    pub fn join(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// A snapshot of every shard's counters.
    pub fn stats(&self) -> Stats {
        Stats { shards: self.shared.stats.iter().map(|s| snapshot(s)).collect() }
    }
}

fn snapshot(s: &ShardStats) -> [u64; 7] {
    let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
    [
        l(&s.turns),
        l(&s.polls),
        l(&s.completions),
        l(&s.parks),
        l(&s.mesh_received),
        l(&s.wakeups_sent),
        l(&s.tasks),
    ]
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop();
            for t in self.threads.drain(..) {
                let _ = t.join();
            }
        }
    }
}

/// Keeps a read posted on the shard's eventfd, so that a write by another
/// shard (or by [`Runtime::stop`]) ends an `io_uring_enter` wait.
fn arm_eventfd(ctx: &Ctx) {
    let fd = ctx.shared.wake[ctx.id].eventfd.as_raw_fd();
    spawn(async move {
        loop {
            let mut buf = Vec::with_capacity(8);
            let sqe = opcode::Read::new(types::Fd(fd), buf.as_mut_ptr(), 8).build();
            // SAFETY: the SQE points into `buf`'s heap allocation, which the
            // slot owns until completion; the eventfd lives in `Shared`, which
            // outlives every shard thread.
            let slot = with_ctx(|c| unsafe { c.driver.submit(sqe, Some(buf), true) });
            let (res, _) = super::net::Op::new(slot).await;
            if res == -libc::ECANCELED || stopping() {
                break;
            }
        }
    });
}

fn run(ctx: &Ctx, cfg: &Config) {
    let stats = &ctx.shared.stats[ctx.id];
    let me = &ctx.shared.wake[ctx.id];
    let grace = clock::nanos(cfg.stop_grace);
    let spin = clock::nanos(cfg.spin);
    let mut stop_deadline: Option<Nanos> = None;
    let mut counted_idle = false;
    let mut scratch = Vec::new();
    loop {
        bump(&stats.turns, 1);
        let polled = ctx.exec.run_ready(512);
        let reaped = ctx.driver.reap();
        let received = ctx.mesh.drain(256, &mut scratch);
        let now = clock::now();
        let fired = ctx.timers.fire(now);
        let backlog = ctx.mesh.flush(|to| ctx.shared.wake(ctx.id, to));
        bump(&stats.polls, polled as u64);
        bump(&stats.completions, reaped as u64);
        bump(&stats.mesh_received, received as u64);
        stats.tasks.store(ctx.exec.live() as u64, Ordering::Relaxed);

        if stop_deadline.is_none() && ctx.shared.stop.load(Ordering::SeqCst) {
            stop_deadline = Some(now.saturating_add(grace));
            ctx.stopping.set(true);
            ctx.driver.cancel_for_stop();
            let waiters = std::mem::take(&mut *ctx.stop_waiters.borrow_mut());
            waiters.into_iter().for_each(Waker::wake);
            continue;
        }
        if let Some(deadline) = stop_deadline {
            if !counted_idle && ctx.exec.live() == 0 && ctx.mesh.backlog_len() == 0 {
                counted_idle = true;
                ctx.shared.idle.fetch_add(1, Ordering::SeqCst);
            }
            if (counted_idle && ctx.shared.idle.load(Ordering::SeqCst) == ctx.shared.n) || now >= deadline {
                break;
            }
            // Late operations (started after the stop) are cancelled too.
            ctx.driver.cancel_for_stop();
        }

        if ctx.exec.has_ready() || reaped > 0 || received > 0 || fired > 0 {
            if ctx.driver.submit_now().is_err() {
                break;
            }
            continue;
        }

        // Nothing to do: poll a little, then sleep until a completion, a
        // message or a timer.
        if spin > 0 && stop_deadline.is_none() {
            if ctx.driver.submit_now().is_err() {
                break;
            }
            let until = now.saturating_add(spin);
            let mut found = false;
            while clock::now() < until {
                if ctx.driver.has_events() || ctx.mesh.has_inbound() {
                    found = true;
                    break;
                }
                crate::sync::spin_loop();
            }
            if found {
                // Runs pending completion work in the kernel, if any.
                if ctx.driver.submit_now().is_err() {
                    break;
                }
                continue;
            }
        }
        let now = clock::now();
        let mut timeout = ctx.timers.next().map(|at| at.saturating_sub(now));
        if backlog {
            timeout = Some(timeout.map_or(50_000, |t| t.min(50_000)));
        }
        if stop_deadline.is_some() {
            timeout = Some(timeout.map_or(10_000_000, |t| t.min(10_000_000)));
        }
        me.parker.prepare_park();
        if ctx.mesh.has_inbound() || (stop_deadline.is_none() && ctx.shared.stop.load(Ordering::SeqCst)) {
            me.parker.unpark();
            continue;
        }
        bump(&stats.parks, 1);
        let r = ctx.driver.submit_and_wait(timeout);
        me.parker.unpark();
        if r.is_err() {
            break;
        }
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_mesh_shrinks_its_rings_to_fit_the_budget() {
        let slot = std::mem::size_of::<Msg>();
        assert_eq!(mesh_ring_capacity(1, 1024), 1024);
        assert_eq!(mesh_ring_capacity(2, 1024), 1024);
        assert_eq!(mesh_ring_capacity(2, 1000), 1024, "a power of two");
        for n in [2usize, 16, 64, 128, 256, 1024, 4096] {
            let cap = mesh_ring_capacity(n, 1024);
            assert!(cap.is_power_of_two() && (16..=1024).contains(&cap), "{n}: {cap}");
            let bytes = n * (n - 1) * cap * slot;
            assert!(cap == 16 || bytes <= MESH_BUDGET, "{n} shards: {bytes} bytes");
            assert!(cap == 1024 || n * (n - 1) * cap * 2 * slot > MESH_BUDGET, "{n}: shrank more than needed");
        }
        assert!(mesh_ring_capacity(1024, 1024) < 1024);
    }
}
