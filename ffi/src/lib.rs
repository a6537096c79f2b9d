//! The C ABI of libresilience: glue only (argument checks, conversions and
//! panic containment). Every piece of logic lives in the `resilience` crate.
//!
//! The exported surface is generated into `include/resilience.h` by cbindgen.
