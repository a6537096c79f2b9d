//! Timers: a min-heap of deadlines per shard, fired by the shard's loop,
//! which also bounds its `io_uring_enter` wait by the nearest deadline.
//!
//! A dropped [`Sleep`] leaves its heap entry behind; it fires later as a
//! wake that its task ignores. Entries are small and bounded by the number of
//! sleeps started per deadline span.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::clock::{self, Nanos};

struct Entry {
    at: Nanos,
    seq: u64,
    waker: Waker,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// One shard's timers.
pub(crate) struct Timers {
    heap: RefCell<BinaryHeap<Reverse<Entry>>>,
    seq: std::cell::Cell<u64>,
}

impl Timers {
    pub(crate) fn new() -> Self {
        Self { heap: RefCell::new(BinaryHeap::new()), seq: std::cell::Cell::new(0) }
    }

    pub(crate) fn add(&self, at: Nanos, waker: Waker) {
        let seq = self.seq.get();
        self.seq.set(seq + 1);
        self.heap.borrow_mut().push(Reverse(Entry { at, seq, waker }));
    }

    /// The earliest deadline, if any.
    pub(crate) fn next(&self) -> Option<Nanos> {
        self.heap.borrow().peek().map(|e| e.0.at)
    }

    /// Wakes every timer due at `now`. Returns how many fired.
    pub(crate) fn fire(&self, now: Nanos) -> usize {
        let mut due = Vec::new();
        {
            let mut heap = self.heap.borrow_mut();
            while heap.peek().is_some_and(|e| e.0.at <= now) {
                if let Some(Reverse(e)) = heap.pop() {
                    due.push(e.waker);
                }
            }
        }
        let n = due.len();
        for w in due {
            w.wake();
        }
        n
    }
}

/// Completes at a deadline; made by [`sleep`](super::sleep) and
/// [`sleep_until`](super::sleep_until).
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    pub(crate) at: Nanos,
    pub(crate) registered: bool,
}

impl Sleep {
    /// The deadline (monotonic nanoseconds).
    pub fn deadline(&self) -> Nanos {
        self.at
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if clock::now() >= self.at {
            return Poll::Ready(());
        }
        if !self.registered {
            self.registered = true;
            super::shard::with_ctx(|c| c.timers.add(self.at, cx.waker().clone()));
        }
        Poll::Pending
    }
}
