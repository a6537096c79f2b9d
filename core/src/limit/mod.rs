//! Rate limiting and concurrency control: token buckets (GCRA), keyed
//! limiters, bulkheads and adaptive concurrency limits.
