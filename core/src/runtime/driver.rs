//! One shard's io_uring and the table of operations in flight.
//!
//! Every submitted operation owns a slot in `ops`; the slot index is the
//! SQE's `user_data`. A buffer the kernel reads or writes is moved into the
//! slot for the operation's lifetime, so it stays alive (and its heap address
//! stays put) until the completion arrives, even if the future that started
//! the operation is dropped first: the slot is then marked orphaned and freed
//! by the completion.

use std::cell::RefCell;
use std::io;
use std::task::Waker;

use io_uring::{opcode, squeue, types, IoUring};

use super::Error;

/// The state of an operation in flight.
enum OpState {
    /// Submitted; the waker (if any) is woken on completion.
    Waiting(Option<Waker>),
    /// Completed with this result (`cqe.res`: a count or a negated errno).
    Done(i32),
    /// The future was dropped; free the slot on completion.
    Orphaned,
}

struct OpSlot {
    state: OpState,
    /// Memory the kernel may touch until completion.
    buf: Option<Vec<u8>>,
    /// Cancelled (`IORING_OP_ASYNC_CANCEL`) when the runtime stops.
    cancel_on_stop: bool,
}

/// A tiny slab: slots are reused through a free list.
struct Slab<T> {
    slots: Vec<Option<T>>,
    free: Vec<usize>,
    len: usize,
}

impl<T> Slab<T> {
    const fn new() -> Self {
        Self { slots: Vec::new(), free: Vec::new(), len: 0 }
    }

    fn insert(&mut self, v: T) -> usize {
        self.len += 1;
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(v);
                i
            }
            None => {
                self.slots.push(Some(v));
                self.slots.len() - 1
            }
        }
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.slots.get_mut(i).and_then(Option::as_mut)
    }

    fn remove(&mut self, i: usize) -> Option<T> {
        let v = self.slots.get_mut(i).and_then(Option::take);
        if v.is_some() {
            self.len -= 1;
            self.free.push(i);
        }
        v
    }
}

/// `user_data` of SQEs whose completion nobody waits for (cancellations).
const IGNORED: u64 = u64::MAX;

/// One shard's ring plus its operations in flight.
pub(crate) struct Driver {
    ring: RefCell<IoUring>,
    ops: RefCell<Slab<OpSlot>>,
    /// Wakers of completions moved while submitting (see `push`).
    deferred_wakes: RefCell<Vec<Waker>>,
}

/// The result of a finished operation: `cqe.res` and the buffer it owned.
pub(crate) type Completion = (i32, Option<Vec<u8>>);

impl Driver {
    /// Creates a ring with `entries` submission slots.
    ///
    /// Tries `SINGLE_ISSUER | COOP_TASKRUN` (kernel 6.0) first, which suits a
    /// ring used by one thread, and falls back to a plain ring. Requires
    /// `IORING_FEAT_EXT_ARG` (kernel 5.11) for waits with a timeout.
    ///
    /// `RESILIENCE_URING` picks another setup, for the A/B measurements in
    /// README.md (`benches/uring-ab`): `plain` (no setup flags), `defer`
    /// (`SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG`, kernel 6.1) or
    /// `sqpoll` (a kernel thread polls the submission queue). Unset or
    /// anything else: the default.
    pub(crate) fn new(entries: u32) -> Result<Self, Error> {
        let choice = std::env::var("RESILIENCE_URING").unwrap_or_default();
        let mut b = IoUring::builder();
        match choice.as_str() {
            "plain" => &mut b,
            "defer" => b.setup_single_issuer().setup_defer_taskrun().setup_taskrun_flag(),
            "sqpoll" => b.setup_sqpoll(1000),
            _ => b.setup_single_issuer().setup_coop_taskrun().setup_taskrun_flag(),
        };
        let ring = match b.build(entries) {
            Ok(r) => r,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => IoUring::new(entries).map_err(setup_error)?,
            Err(e) => return Err(setup_error(e)),
        };
        if !ring.params().is_feature_ext_arg() {
            return Err(Error::Unavailable { reason: "the kernel lacks IORING_FEAT_EXT_ARG".into() });
        }
        Ok(Self { ring: RefCell::new(ring), ops: RefCell::new(Slab::new()), deferred_wakes: RefCell::new(Vec::new()) })
    }

    /// Queues `sqe` (its `user_data` is set here), owning `buf` until it
    /// completes. Returns the slot to poll with [`Driver::poll_op`].
    ///
    /// # Safety
    ///
    /// Every pointer in `sqe` must stay valid until the completion: it must
    /// point into `buf`'s heap allocation, or into memory that outlives the
    /// runtime, and every fd in it must be open when the SQE is submitted.
    pub(crate) unsafe fn submit(
        &self,
        sqe: squeue::Entry,
        buf: Option<Vec<u8>>,
        cancel_on_stop: bool,
    ) -> usize {
        let slot =
            self.ops.borrow_mut().insert(OpSlot { state: OpState::Waiting(None), buf, cancel_on_stop });
        let sqe = sqe.user_data(slot as u64);
        // SAFETY: the caller guarantees the SQE's pointers stay valid until
        // completion; the buffer they point into is now owned by the slot,
        // which is freed only after the completion is reaped.
        unsafe { self.push(&sqe) };
        slot
    }

    /// Pushes one SQE, flushing the submission queue to the kernel if full.
    ///
    /// # Safety
    ///
    /// As for [`Driver::submit`].
    unsafe fn push(&self, sqe: &squeue::Entry) {
        let mut ring = self.ring.borrow_mut();
        loop {
            // SAFETY: forwarded from the caller's contract.
            if unsafe { ring.submission().push(sqe) }.is_ok() {
                return;
            }
            // Full: hand what is queued to the kernel to make room. If the
            // kernel refuses because completions are piling up (EBUSY), move
            // them into their slots (their wakers run at the next `reap`)
            // and try again.
            if let Err(e) = ring.submit() {
                if e.raw_os_error() == Some(libc::EBUSY) {
                    let mut wakers = self.deferred_wakes.borrow_mut();
                    Self::complete(&mut ring, &mut self.ops.borrow_mut(), &mut wakers);
                }
            }
        }
    }

    /// Polls the operation in `slot`: its result once done, registering
    /// `waker` otherwise.
    pub(crate) fn poll_op(&self, slot: usize, waker: &Waker) -> Option<Completion> {
        let mut ops = self.ops.borrow_mut();
        let op = ops.get_mut(slot)?;
        match &mut op.state {
            OpState::Done(res) => {
                let res = *res;
                let buf = ops.remove(slot).and_then(|s| s.buf);
                Some((res, buf))
            }
            OpState::Waiting(w) => {
                match w {
                    Some(old) if old.will_wake(waker) => {}
                    _ => *w = Some(waker.clone()),
                }
                None
            }
            OpState::Orphaned => None,
        }
    }

    /// The future of `slot` was dropped: free it now if done, else on completion.
    pub(crate) fn orphan(&self, slot: usize) {
        let mut ops = self.ops.borrow_mut();
        let done = match ops.get_mut(slot) {
            Some(op) => match op.state {
                OpState::Done(_) => true,
                _ => {
                    op.state = OpState::Orphaned;
                    false
                }
            },
            None => false,
        };
        if done {
            ops.remove(slot);
        }
    }

    /// Submits queued SQEs without waiting. Skips the system call when
    /// nothing is queued and the kernel has no completion work pending.
    pub(crate) fn submit_now(&self) -> io::Result<()> {
        let mut ring = self.ring.borrow_mut();
        {
            let sq = ring.submission();
            if sq.is_empty() && !sq.taskrun() && !sq.cq_overflow() {
                return Ok(());
            }
        }
        match ring.submit() {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EINTR | libc::EAGAIN)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// True when a completion is ready to reap, or the kernel has
    /// completion work waiting for our next system call. Reads shared
    /// memory only.
    pub(crate) fn has_events(&self) -> bool {
        let mut ring = self.ring.borrow_mut();
        if ring.submission().taskrun() {
            return true;
        }
        let empty = ring.completion().is_empty();
        !empty
    }

    /// Submits queued SQEs and waits for one completion, at most `timeout_ns`
    /// nanoseconds (`None`: no limit).
    pub(crate) fn submit_and_wait(&self, timeout_ns: Option<u64>) -> io::Result<()> {
        let ring = self.ring.borrow();
        let res = match timeout_ns {
            None => ring.submit_and_wait(1),
            Some(ns) => {
                let ts = types::Timespec::new().sec(ns / 1_000_000_000).nsec((ns % 1_000_000_000) as u32);
                let args = types::SubmitArgs::new().timespec(&ts);
                ring.submitter().submit_with_args(1, &args)
            }
        };
        match res {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Moves completions into their slots and wakes their tasks. Returns how
    /// many completions were reaped.
    pub(crate) fn reap(&self) -> usize {
        let mut wakers = std::mem::take(&mut *self.deferred_wakes.borrow_mut());
        let n = Self::complete(&mut self.ring.borrow_mut(), &mut self.ops.borrow_mut(), &mut wakers);
        for w in wakers {
            w.wake();
        }
        n
    }

    /// Moves every available completion into its slot, collecting the
    /// wakers to call (outside any borrow). Returns how many there were.
    fn complete(ring: &mut IoUring, ops: &mut Slab<OpSlot>, wakers: &mut Vec<Waker>) -> usize {
        let mut n = 0;
        for cqe in ring.completion() {
            n += 1;
            let slot = cqe.user_data();
            if slot == IGNORED {
                continue;
            }
            let slot = slot as usize;
            let orphaned = match ops.get_mut(slot) {
                Some(op) => match std::mem::replace(&mut op.state, OpState::Done(cqe.result())) {
                    OpState::Waiting(w) => {
                        wakers.extend(w);
                        false
                    }
                    OpState::Orphaned => true,
                    OpState::Done(_) => false,
                },
                None => false,
            };
            if orphaned {
                ops.remove(slot);
            }
        }
        n
    }

    /// Asks the kernel to cancel every operation marked `cancel_on_stop`.
    pub(crate) fn cancel_for_stop(&self) {
        let targets: Vec<u64> = {
            let ops = self.ops.borrow();
            (ops.slots.iter().enumerate())
                .filter(|(_, s)| s.as_ref().is_some_and(|s| s.cancel_on_stop))
                .map(|(i, _)| i as u64)
                .collect()
        };
        for t in targets {
            let sqe = opcode::AsyncCancel::new(t).build().user_data(IGNORED);
            // SAFETY: a cancellation carries no pointers or fds.
            unsafe { self.push(&sqe) };
        }
    }
}

fn setup_error(e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOSYS | libc::EPERM | libc::EACCES) => {
            let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").ok();
            let reason = match sysctl.as_deref().map(str::trim) {
                Some(v @ ("1" | "2")) => format!("io_uring_setup: {e}; kernel.io_uring_disabled = {v}"),
                _ => format!("io_uring_setup: {e}"),
            };
            Error::Unavailable { reason }
        }
        _ => Error::Io(e),
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Operations still in flight own buffers the kernel may write to
        // until it has torn the ring down; leak them rather than free memory
        // under the kernel's feet.
        let ops = std::mem::replace(self.ops.get_mut(), Slab::new());
        if ops.len > 0 {
            std::mem::forget(ops);
        }
    }
}
