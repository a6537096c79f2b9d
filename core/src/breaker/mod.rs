//! Circuit breakers: lock-free state machines with count- and time-based
//! sliding windows.
