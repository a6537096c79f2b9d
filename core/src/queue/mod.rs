//! Bounded lock-free ring buffers: [`spsc`] (wait-free, one producer and one
//! consumer) and [`mpmc`] (per-slot sequence numbers), plus a watermark helper
//! for backpressure.
