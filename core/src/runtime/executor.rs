//! A single-threaded executor with a hand-written waker.
//!
//! Tasks live in a slab of boxed futures. A waker is one machine word that
//! names its task: shard id (16 bits), slot generation (24 bits) and slot
//! index (24 bits); it needs no allocation and no reference count. Waking
//! pushes the task onto its shard's ready queue through the shard's
//! thread-local context; a waker is only meaningful on its own shard (every
//! future of this runtime is shard-local), and a wake from any other thread,
//! or for a task that has finished, is ignored.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

type BoxFuture = Pin<Box<dyn Future<Output = ()>>>;

const IDX_BITS: u32 = 24;
const GEN_BITS: u32 = 24;
const IDX_MASK: usize = (1 << IDX_BITS) - 1;
const GEN_MASK: usize = (1 << GEN_BITS) - 1;
/// Most tasks alive at once on one shard.
pub(crate) const MAX_TASKS: usize = IDX_MASK;

struct TaskSlot {
    gen: usize,
    fut: Option<BoxFuture>,
    /// On the ready queue already (so a burst of wakes queues it once).
    queued: bool,
    alive: bool,
}

/// One shard's tasks and ready queue.
pub(crate) struct Executor {
    shard: usize,
    tasks: RefCell<Vec<TaskSlot>>,
    free: RefCell<Vec<usize>>,
    live: Cell<usize>,
    ready: RefCell<VecDeque<usize>>,
}

impl Executor {
    pub(crate) fn new(shard: usize) -> Self {
        Self {
            shard,
            tasks: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            live: Cell::new(0),
            ready: RefCell::new(VecDeque::new()),
        }
    }

    /// Tasks spawned and not finished.
    pub(crate) fn live(&self) -> usize {
        self.live.get()
    }

    /// True when some task is ready to run.
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.borrow().is_empty()
    }

    /// Adds a task and queues it to run. Returns false (dropping `fut`) when
    /// the shard already has [`MAX_TASKS`] tasks.
    pub(crate) fn spawn(&self, fut: BoxFuture) -> bool {
        let mut tasks = self.tasks.borrow_mut();
        let idx = match self.free.borrow_mut().pop() {
            Some(i) => i,
            None if tasks.len() < MAX_TASKS => {
                tasks.push(TaskSlot { gen: 0, fut: None, queued: false, alive: false });
                tasks.len() - 1
            }
            None => return false,
        };
        let slot = &mut tasks[idx];
        slot.gen = (slot.gen + 1) & GEN_MASK;
        slot.fut = Some(fut);
        slot.alive = true;
        slot.queued = true;
        self.live.set(self.live.get() + 1);
        self.ready.borrow_mut().push_back(idx);
        true
    }

    /// Queues the task named by a waker word, if it is this shard's and alive.
    pub(crate) fn wake(&self, word: usize) {
        let (shard, gen, idx) = unpack(word);
        if shard != self.shard {
            return;
        }
        let mut tasks = self.tasks.borrow_mut();
        if let Some(slot) = tasks.get_mut(idx) {
            if slot.alive && slot.gen == gen && !slot.queued {
                slot.queued = true;
                self.ready.borrow_mut().push_back(idx);
            }
        }
    }

    /// Polls up to `budget` ready tasks. Returns how many were polled.
    pub(crate) fn run_ready(&self, budget: usize) -> usize {
        let mut polled = 0;
        while polled < budget {
            let Some(idx) = self.ready.borrow_mut().pop_front() else { break };
            let (gen, fut) = {
                let mut tasks = self.tasks.borrow_mut();
                let slot = &mut tasks[idx];
                slot.queued = false;
                (slot.gen, slot.fut.take())
            };
            // A task that is being polled further up the stack has no future
            // in its slot; nothing to do then.
            let Some(mut fut) = fut else { continue };
            polled += 1;
            let waker = waker_for(pack(self.shard, gen, idx));
            let mut cx = Context::from_waker(&waker);
            let done = fut.as_mut().poll(&mut cx).is_ready();
            let mut tasks = self.tasks.borrow_mut();
            let slot = &mut tasks[idx];
            if done {
                slot.alive = false;
                slot.queued = false;
                drop(tasks);
                // Drop the finished future outside the borrow: its destructor
                // may spawn or wake.
                drop(fut);
                self.free.borrow_mut().push(idx);
                self.live.set(self.live.get() - 1);
            } else {
                slot.fut = Some(fut);
            }
        }
        polled
    }

    /// Drops every task (at shutdown), outside any borrow.
    pub(crate) fn clear(&self) {
        let futs: Vec<BoxFuture> = self.tasks.borrow_mut().iter_mut().filter_map(|s| s.fut.take()).collect();
        drop(futs);
        self.ready.borrow_mut().clear();
    }
}

fn pack(shard: usize, gen: usize, idx: usize) -> usize {
    (shard << (IDX_BITS + GEN_BITS)) | (gen << IDX_BITS) | idx
}

fn unpack(word: usize) -> (usize, usize, usize) {
    (word >> (IDX_BITS + GEN_BITS), (word >> IDX_BITS) & GEN_MASK, word & IDX_MASK)
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone_raw, wake_raw, wake_raw, drop_raw);

fn clone_raw(data: *const ()) -> RawWaker {
    RawWaker::new(data, &VTABLE)
}

fn wake_raw(data: *const ()) {
    super::shard::wake_word(data as usize);
}

fn drop_raw(_: *const ()) {}

fn waker_for(word: usize) -> Waker {
    // SAFETY: the data pointer is a plain integer that is never dereferenced;
    // clone/drop have no resources to manage and wake only reads the integer,
    // so every RawWaker contract (thread-safety included) holds trivially.
    unsafe { Waker::from_raw(RawWaker::new(word as *const (), &VTABLE)) }
}

/// Awaits the output of a task started with [`spawn`](super::spawn).
///
/// Dropping the handle detaches the task; it keeps running.
pub struct JoinHandle<T> {
    pub(crate) inner: Rc<JoinState<T>>,
}

pub(crate) struct JoinState<T> {
    pub(crate) value: RefCell<Option<T>>,
    pub(crate) waker: RefCell<Option<Waker>>,
    pub(crate) finished: Cell<bool>,
}

impl<T> JoinState<T> {
    pub(crate) fn new() -> Rc<Self> {
        Rc::new(Self { value: RefCell::new(None), waker: RefCell::new(None), finished: Cell::new(false) })
    }

    pub(crate) fn finish(&self, v: T) {
        *self.value.borrow_mut() = Some(v);
        self.finished.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
}

impl<T> JoinHandle<T> {
    /// True when the task has finished.
    pub fn is_finished(&self) -> bool {
        self.inner.finished.get()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if let Some(v) = self.inner.value.borrow_mut().take() {
            return Poll::Ready(v);
        }
        *self.inner.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;

    #[test]
    fn waker_words_round_trip() {
        for (s, g, i) in [(0, 0, 0), (1, 5, 7), (65535, GEN_MASK, IDX_MASK)] {
            assert_eq!(unpack(pack(s, g, i)), (s, g, i));
        }
    }

    #[test]
    fn stale_and_foreign_wakes_are_ignored() {
        let ex = Executor::new(3);
        assert!(ex.spawn(Box::pin(async {})));
        assert_eq!(ex.run_ready(10), 1);
        assert_eq!(ex.live(), 0);
        // The slot is free now: a wake for generation 1 must not queue it.
        ex.wake(pack(3, 1, 0));
        ex.wake(pack(4, 1, 0));
        assert!(!ex.has_ready());
    }
}
