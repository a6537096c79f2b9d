//! The thread-per-core engine: pinned shards, io_uring, a mesh of SPSC rings.
