//! The N×N mesh: one SPSC ring from every shard to every other shard.
//!
//! A message is either a closure to run on the receiving shard or the
//! answer to a [`call`](super::call). Sending never blocks: when the ring to
//! a shard is full the message waits, in order, in a local backlog that the
//! shard's loop flushes on every turn. The backlog is bounded by its callers:
//! every message is a request from a task that then awaits its answer (so at
//! most one per waiting task) or an answer to such a request.
//!
//! Wake-ups follow [`super::wake`]: a sender writes the target's eventfd
//! only when the target sleeps (or is about to), so a busy shard costs its
//! senders no system call.

use std::any::Any;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::queue::spsc::{Consumer, Producer};

/// What travels over the mesh.
pub(crate) enum Msg {
    /// Run this closure on the receiving shard.
    Run(Box<dyn FnOnce() + Send>),
    /// The answer to call `slot` of the receiving shard.
    Reply { slot: usize, value: Box<dyn Any + Send> },
}

enum CallSlot {
    Waiting(Option<Waker>),
    Done(Box<dyn Any + Send>),
    /// The [`Call`] was dropped; discard the answer when it arrives.
    Orphaned,
}

/// One shard's ends of the mesh.
pub(crate) struct Mesh {
    id: usize,
    out: RefCell<Vec<Option<Producer<Msg>>>>,
    inbound: RefCell<Vec<Option<Consumer<Msg>>>>,
    backlog: RefCell<Vec<VecDeque<Msg>>>,
    to_wake: RefCell<Vec<bool>>,
    calls: RefCell<Vec<Option<CallSlot>>>,
    free_calls: RefCell<Vec<usize>>,
}

impl Mesh {
    pub(crate) fn new(
        id: usize,
        out: Vec<Option<Producer<Msg>>>,
        inbound: Vec<Option<Consumer<Msg>>>,
    ) -> Self {
        let n = out.len();
        Self {
            id,
            out: RefCell::new(out),
            inbound: RefCell::new(inbound),
            backlog: RefCell::new((0..n).map(|_| VecDeque::new()).collect()),
            to_wake: RefCell::new(vec![false; n]),
            calls: RefCell::new(Vec::new()),
            free_calls: RefCell::new(Vec::new()),
        }
    }

    /// Queues `msg` for shard `to` (never this shard).
    pub(crate) fn send(&self, to: usize, msg: Msg) {
        debug_assert_ne!(to, self.id);
        let mut backlog = self.backlog.borrow_mut();
        let queue = &mut backlog[to];
        if queue.is_empty() {
            if let Some(p) = self.out.borrow_mut()[to].as_mut() {
                match p.push(msg) {
                    Ok(()) => self.to_wake.borrow_mut()[to] = true,
                    Err(msg) => queue.push_back(msg),
                }
            }
        } else {
            queue.push_back(msg);
        }
    }

    /// Moves backlogged messages into rings with room, then wakes every
    /// shard that was sent something. Returns true if a backlog remains.
    pub(crate) fn flush(&self, wake: impl Fn(usize)) -> bool {
        let mut left = false;
        {
            let mut backlog = self.backlog.borrow_mut();
            let mut out = self.out.borrow_mut();
            let mut to_wake = self.to_wake.borrow_mut();
            for (to, queue) in backlog.iter_mut().enumerate() {
                let Some(p) = out[to].as_mut() else { continue };
                while let Some(msg) = queue.pop_front() {
                    if let Err(msg) = p.push(msg) {
                        queue.push_front(msg);
                        break;
                    }
                    to_wake[to] = true;
                }
                left |= !queue.is_empty();
            }
        }
        let mut to_wake = self.to_wake.borrow_mut();
        for (to, flag) in to_wake.iter_mut().enumerate() {
            if std::mem::take(flag) {
                wake(to);
            }
        }
        left
    }

    /// Messages waiting in this shard's backlog.
    pub(crate) fn backlog_len(&self) -> usize {
        self.backlog.borrow().iter().map(VecDeque::len).sum()
    }

    /// True when some inbound ring holds a message.
    pub(crate) fn has_inbound(&self) -> bool {
        self.inbound.borrow().iter().flatten().any(|c| !c.is_empty())
    }

    /// Takes up to `budget` messages from each inbound ring and handles them:
    /// closures run here, answers complete their calls. Returns the count.
    pub(crate) fn drain(&self, budget: usize, scratch: &mut Vec<Msg>) -> usize {
        let mut n = 0;
        let rings = self.inbound.borrow().len();
        for from in 0..rings {
            scratch.clear();
            if let Some(c) = self.inbound.borrow_mut()[from].as_mut() {
                c.pop_into(scratch, budget);
            }
            n += scratch.len();
            // Handle outside the borrow: a closure may send, spawn or call.
            for msg in scratch.drain(..) {
                match msg {
                    Msg::Run(f) => f(),
                    Msg::Reply { slot, value } => self.complete(slot, value),
                }
            }
        }
        n
    }

    fn complete(&self, slot: usize, value: Box<dyn Any + Send>) {
        let waker = {
            let mut calls = self.calls.borrow_mut();
            let Some(entry) = calls.get_mut(slot) else { return };
            match entry.take() {
                Some(CallSlot::Waiting(w)) => {
                    *entry = Some(CallSlot::Done(value));
                    w
                }
                Some(CallSlot::Orphaned) => {
                    drop(calls);
                    self.free_calls.borrow_mut().push(slot);
                    drop(value);
                    None
                }
                other => {
                    *entry = other;
                    None
                }
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn new_call(&self) -> usize {
        let mut calls = self.calls.borrow_mut();
        match self.free_calls.borrow_mut().pop() {
            Some(i) => {
                calls[i] = Some(CallSlot::Waiting(None));
                i
            }
            None => {
                calls.push(Some(CallSlot::Waiting(None)));
                calls.len() - 1
            }
        }
    }

    /// Starts a call: `f` will run on shard `to` and its answer come back here.
    pub(crate) fn call<R, F>(&self, to: usize, f: F) -> Call<R>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        let slot = self.new_call();
        let origin = self.id;
        self.send(
            to,
            Msg::Run(Box::new(move || {
                let value: Box<dyn Any + Send> = Box::new(f());
                super::shard::with_ctx(|c| c.mesh.send(origin, Msg::Reply { slot, value }));
            })),
        );
        Call { state: CallState::Remote(slot), _r: PhantomData }
    }
}

enum CallState<R> {
    Local(Option<R>),
    Remote(usize),
    Finished,
}

/// The answer of a closure run on another shard; made by [`call`](super::call).
///
/// Dropping it before the answer arrives does not stop the closure; its
/// answer is discarded.
#[must_use = "futures do nothing unless awaited"]
pub struct Call<R> {
    state: CallState<R>,
    _r: PhantomData<fn() -> R>,
}

// `Call` never pins its `R` (the answer is moved out as a value).
impl<R> Unpin for Call<R> {}

impl<R> Call<R> {
    pub(crate) fn ready(v: R) -> Self {
        Self { state: CallState::Local(Some(v)), _r: PhantomData }
    }
}

impl<R: 'static> Future for Call<R> {
    type Output = R;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        let this = self.get_mut();
        let slot = match &mut this.state {
            CallState::Local(v) => {
                let v = v.take();
                this.state = CallState::Finished;
                return match v {
                    Some(v) => Poll::Ready(v),
                    None => Poll::Pending,
                };
            }
            CallState::Remote(slot) => *slot,
            CallState::Finished => return Poll::Pending,
        };
        let done = super::shard::with_ctx(|c| {
            let mut calls = c.mesh.calls.borrow_mut();
            let entry = &mut calls[slot];
            match entry.take() {
                Some(CallSlot::Done(v)) => {
                    c.mesh.free_calls.borrow_mut().push(slot);
                    Some(v)
                }
                Some(CallSlot::Waiting(_)) => {
                    *entry = Some(CallSlot::Waiting(Some(cx.waker().clone())));
                    None
                }
                other => {
                    *entry = other;
                    None
                }
            }
        });
        match done {
            Some(v) => {
                this.state = CallState::Finished;
                match v.downcast::<R>() {
                    Ok(v) => Poll::Ready(*v),
                    // The slot was filled by the closure this call sent, which
                    // returns an `R`; another type cannot arrive.
                    Err(_) => unreachable!("mesh answer of the wrong type"),
                }
            }
            None => Poll::Pending,
        }
    }
}

impl<R> Drop for Call<R> {
    fn drop(&mut self) {
        if let CallState::Remote(slot) = self.state {
            super::shard::try_with_ctx(|c| {
                let mut calls = c.mesh.calls.borrow_mut();
                let entry = &mut calls[slot];
                match entry {
                    Some(CallSlot::Done(_)) => {
                        *entry = None;
                        c.mesh.free_calls.borrow_mut().push(slot);
                    }
                    Some(CallSlot::Waiting(_)) => *entry = Some(CallSlot::Orphaned),
                    _ => {}
                }
            });
        }
    }
}
