//! The sleep/wake handshake between a shard and the shards that send to it.
//!
//! A shard about to sleep calls [`Parker::prepare_park`] and then looks at
//! its inbound rings once more; it sleeps only if they are empty. A sender
//! pushes its message and then calls [`Parker::should_wake`]; if that says
//! so, it must wake the shard (the runtime writes the shard's eventfd).
//!
//! The two sides are Dekker's pattern: each writes its own location (the
//! ring's tail, the sleeping flag), issues a SeqCst fence, then reads the
//! other's. Of the two fences one comes first in the single total order of
//! SeqCst operations, so either the sleeper sees the message or the sender
//! sees the flag: a message is never left behind a sleeping shard, and a busy
//! shard (flag clear) costs its senders no system call. The swap clears the
//! flag, so of several senders only one writes the eventfd per sleep.
//! `core/tests/loom_runtime_wake.rs` checks this with loom.

use crate::sync::{fence, AtomicBool, CachePadded, Ordering};

/// One shard's sleeping flag.
#[derive(Debug, Default)]
pub struct Parker {
    sleeping: CachePadded<AtomicBool>,
}

impl Parker {
    /// A parker whose shard is awake.
    pub fn new() -> Self {
        Self::default()
    }

    /// Owner: announces that it is about to sleep. Afterwards the owner must
    /// check for messages once more, and sleep only if there are none.
    #[inline]
    pub fn prepare_park(&self) {
        self.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Owner: it is awake again (it found work, or its sleep ended).
    #[inline]
    pub fn unpark(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }

    /// Sender, after publishing a message: true when the owner sleeps or is
    /// about to, and must be woken by this sender.
    #[inline]
    pub fn should_wake(&self) -> bool {
        fence(Ordering::SeqCst);
        self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::AcqRel)
    }
}
