// Package resilience is the Go binding of libresilience: lock-free queues,
// a byte cache, circuit breakers, idempotency keys and rate limiters written
// once in Rust and called through its C ABI with cgo.
//
// Build the library, then use the package as any other:
//
//	cargo build --release -p resilience-ffi   # from the repository root
//	cd bindings/go && go test ./...
//
// The package links target/release/libresilience.a statically by default;
// build with -tags resilience_shared to link libresilience.so instead.
//
// # Conventions
//
// Constructors take a config struct whose zero fields mean "the default".
// Every handle type has Close, which frees the library object; it is
// idempotent, a finalizer calls it for handles that are dropped without it,
// and any call after it that returns an error returns one matching
// ErrClosed (calls that return no error answer as refused: Allow reports
// false; MaxLen, a setting kept in Go, still answers). Close must not
// run concurrently with other calls on the same value (the race detector
// reports it if it does).
//
// Every error from the library matches one sentinel with errors.Is: one per
// status code of the C ABI (ErrFull, ErrNotFound, ErrRejected, ...) plus
// ErrClosed. Calls that wait on a context return the context's error when
// it ends (context.Canceled, context.DeadlineExceeded), and DecodeResponse
// returns a plain error for bytes EncodeResponse did not make. Errors
// that carry more are *Error values: the operation, the status, the
// library's detail message and, for rejections, RetryAfter (see the
// RetryAfter function). Expected answers on hot paths (a cache miss, a
// full queue) are the bare sentinels and cost no allocation.
//
// A cgo call costs tens of nanoseconds, more than many of the operations
// themselves; the batch calls (Cache.GetMany, MPMC.PushMany / PopMany,
// Producer.PushMany, Consumer.PopMany) pay it once per batch.
package resilience
