//! Breakers by name, with bounded memory: one breaker per endpoint.

use super::{CircuitBreaker, Config, ConfigError, State};
use crate::clock::{Clock, MonotonicClock};
use crate::hash::SeededState;
use crate::sync::{Arc, Mutex, Ordering};
use std::collections::HashMap;
use std::fmt;

/// Why [`Registry::get_or_create`] returned no breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryError {
    /// The registry holds `max_entries` breakers and none can be evicted.
    Full,
    /// The configuration for a new breaker is invalid.
    Config(ConfigError),
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::Full => f.write_str("breaker registry is full and no breaker is idle"),
            RegistryError::Config(e) => write!(f, "invalid breaker config: {e}"),
        }
    }
}

impl std::error::Error for RegistryError {}

impl From<ConfigError> for RegistryError {
    fn from(e: ConfigError) -> Self {
        RegistryError::Config(e)
    }
}

type Table<C> = HashMap<Box<[u8]>, Arc<CircuitBreaker<C>>, SeededState>;

/// Circuit breakers by name (any bytes), at most `max_entries` of them.
///
/// The registry is a control-plane structure (a mutex around a table keyed
/// with [`SeededState`]); the hot path is the `Arc<CircuitBreaker>` it hands
/// out, which callers keep.
///
/// **When full**, `get_or_create` of a new name evicts one *idle* breaker: one
/// in the closed state that nobody outside the registry holds (its `Arc` is
/// unshared), choosing the one closed for longest. Such a breaker carries
/// only a window of recent results, and losing it at worst delays one trip.
/// Open, half-open, forced-open, disabled and metrics-only breakers are never
/// evicted (their state is the point of having them); if no breaker is idle,
/// the call fails with [`RegistryError::Full`] instead of growing.
pub struct Registry<C: Clock + Clone = MonotonicClock> {
    map: Mutex<Table<C>>,
    max_entries: usize,
    clock: C,
}

impl<C: Clock + Clone> fmt::Debug for Registry<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").field("len", &self.len()).field("max_entries", &self.max_entries).finish()
    }
}

impl Registry<MonotonicClock> {
    /// An empty registry of at most `max_entries` breakers on the monotonic
    /// clock.
    pub fn new(max_entries: usize) -> Self {
        Self::with_clock(max_entries, MonotonicClock)
    }
}

impl<C: Clock + Clone> Registry<C> {
    /// An empty registry whose breakers read time from clones of `clock`.
    pub fn with_clock(max_entries: usize, clock: C) -> Self {
        Self { map: Mutex::new(HashMap::with_hasher(SeededState::new())), max_entries, clock }
    }

    /// The bound on the number of breakers.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// The number of breakers held.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no breaker is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The breaker named `name`, if there is one.
    pub fn get(&self, name: &[u8]) -> Option<Arc<CircuitBreaker<C>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    /// The breaker named `name`; created with `config` if there is none (an
    /// existing breaker keeps its own config). See the type's documentation
    /// for what happens when the registry is full.
    pub fn get_or_create(
        &self,
        name: &[u8],
        config: &Config,
    ) -> Result<Arc<CircuitBreaker<C>>, RegistryError> {
        // Declared before the guard so that an evicted breaker is dropped
        // after the lock is released: its state-change callbacks' captures
        // (a C host's `user_free`) may call back into the registry.
        let mut evicted = None;
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = map.get(name) {
            return Ok(b.clone());
        }
        let breaker = Arc::new(CircuitBreaker::with_clock(*config, self.clock.clone())?);
        if map.len() >= self.max_entries {
            let victim = map
                .iter()
                .filter(|(_, b)| Arc::strong_count(b) == 1 && b.state() == State::Closed)
                .min_by_key(|(_, b)| b.cold.state_since.load(Ordering::Relaxed))
                .map(|(k, _)| k.clone());
            match victim {
                Some(k) => evicted = map.remove(&k),
                None => return Err(RegistryError::Full),
            }
        }
        map.insert(name.into(), breaker.clone());
        drop(map);
        drop(evicted);
        Ok(breaker)
    }

    /// Removes the breaker named `name` and returns it. Holders of its `Arc`
    /// keep a working breaker; the next `get_or_create` makes a new one.
    pub fn remove(&self, name: &[u8]) -> Option<Arc<CircuitBreaker<C>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).remove(name)
    }

    /// The names held, in no particular order.
    pub fn names(&self) -> Vec<Box<[u8]>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
    }
}

#[cfg(all(test, not(resilience_loom)))]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn same_name_same_breaker() {
        let r = Registry::new(4);
        let cfg = Config::default();
        let a = r.get_or_create(b"users", &cfg).unwrap();
        let b = r.get_or_create(b"users", &cfg.count_window(3)).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(b.config().sliding_window, cfg.sliding_window, "the first config wins");
        assert_eq!(r.len(), 1);
        assert_eq!(
            r.get_or_create(b"bad", &cfg.minimum_calls(0)).unwrap_err(),
            RegistryError::Config(ConfigError::MinimumCalls)
        );
    }

    #[test]
    fn an_evicted_breaker_is_dropped_outside_the_lock() {
        struct OnDrop(std::sync::Weak<Registry>, Arc<std::sync::atomic::AtomicUsize>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                // Would deadlock if the registry's lock were still held.
                let len = self.0.upgrade().map_or(0, |r| r.len());
                self.1.store(len + 1, Ordering::SeqCst);
            }
        }
        let r = Arc::new(Registry::new(1));
        let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let b = r.get_or_create(b"a", &Config::default()).unwrap();
        let guard = OnDrop(Arc::downgrade(&r), seen.clone());
        b.on_state_change(move |_| {
            let _ = &guard;
        });
        drop(b);
        r.get_or_create(b"b", &Config::default()).unwrap();
        assert_eq!(seen.load(Ordering::SeqCst), 2, "dropped after the insert, with the lock free");
    }

    #[test]
    fn full_registry_evicts_only_idle_closed_breakers() {
        let clock = Arc::new(ManualClock::default());
        let r = Registry::with_clock(2, clock.clone());
        let cfg = Config::default();
        let held = r.get_or_create(b"held", &cfg).unwrap();
        let open = r.get_or_create(b"open", &cfg).unwrap();
        open.force_open();
        drop(open);
        // "held" is held outside, "open" is forced open: nothing to evict.
        assert_eq!(r.get_or_create(b"new", &cfg).unwrap_err(), RegistryError::Full);
        drop(held);
        let fresh = r.get_or_create(b"new", &cfg).unwrap();
        assert_eq!(fresh.state(), State::Closed);
        assert!(r.get(b"held").is_none(), "the idle closed breaker was evicted");
        assert!(r.get(b"open").is_some());
        assert_eq!(r.len(), 2);
        assert!(r.remove(b"open").is_some());
        assert_eq!(r.len(), 1);
    }
}
