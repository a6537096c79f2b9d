package resilience

/*
#include <stdlib.h>
#include "rsl.h"

// The acquire calls with the decision returned by value (a Go local passed
// by address would escape to the heap).
typedef struct { rsl_status st; rsl_decision d; } go_decision_ret;

static go_decision_ret go_limiter_acquire(const rsl_limiter *l, uint64_t n, uint64_t now, bool at, bool peek) {
	go_decision_ret r;
	r.st = peek ? (at ? rsl_limiter_peek_at(l, n, now, &r.d) : rsl_limiter_peek(l, n, &r.d))
	            : (at ? rsl_limiter_acquire_at(l, n, now, &r.d) : rsl_limiter_acquire(l, n, &r.d));
	return r;
}

static go_decision_ret go_keyed_acquire(const rsl_keyed_limiter *l, const uint8_t *key, size_t len,
                                        uint64_t n, uint64_t now, bool at) {
	go_decision_ret r;
	r.st = at ? rsl_keyed_limiter_acquire_at(l, key, len, n, now, &r.d)
	          : rsl_keyed_limiter_acquire(l, key, len, n, &r.d);
	return r;
}

// rsl_keyed_limiter_acquire_many over keys packed one after another (Go may
// not hand C an array of Go pointers: the pointer array is built here).
static rsl_status go_keyed_acquire_many(const rsl_keyed_limiter *l, const uint8_t *packed,
                                        const size_t *key_lens, size_t count, uint64_t n,
                                        rsl_decision *out) {
	enum { STACK_KEYS = 256 };
	const uint8_t *stack_ptrs[STACK_KEYS];
	const uint8_t **ptrs = stack_ptrs;
	if (count > STACK_KEYS) {
		ptrs = malloc(count * sizeof *ptrs);
		if (ptrs == NULL) return RSL_ERR_ALLOC;
	}
	size_t off = 0;
	for (size_t i = 0; i < count; i++) {
		ptrs[i] = packed == NULL ? NULL : packed + off;
		off += key_lens[i];
	}
	rsl_status st = rsl_keyed_limiter_acquire_many(l, ptrs, key_lens, count, n, out);
	if (ptrs != stack_ptrs) free(ptrs);
	return st;
}
*/
import "C"

import (
	"context"
	"fmt"
	"runtime"
	"time"
)

// Quota is a rate as redis-cell's CL.THROTTLE takes it: Count tokens per
// Period, in a bucket holding MaxBurst+1 tokens.
type Quota struct {
	MaxBurst uint64        // extra tokens beyond one the bucket holds when full
	Count    uint64        // tokens added per Period, >= 1
	Period   time.Duration // >= Count nanoseconds
}

// PerSecond is a quota of n tokens a second in a bucket of n.
func PerSecond(n uint64) Quota {
	if n == 0 {
		return Quota{Count: 0, Period: time.Second}
	}
	return Quota{MaxBurst: n - 1, Count: n, Period: time.Second}
}

func (q Quota) toC() C.rsl_quota {
	p := q.Period
	if p < 0 {
		p = 0
	}
	return C.rsl_quota{max_burst: C.uint64_t(q.MaxBurst), count: C.uint64_t(q.Count), period_ns: C.uint64_t(p)}
}

// Clock says which clock a limiter reads.
type Clock int32

// Clocks (RSL_LIMITER_CLOCK_*).
const (
	ClockAuto    Clock = C.RSL_LIMITER_CLOCK_AUTO    // coarse when the burst window is long enough, else precise
	ClockPrecise Clock = C.RSL_LIMITER_CLOCK_PRECISE // CLOCK_MONOTONIC (about 20 ns a read)
	ClockCoarse  Clock = C.RSL_LIMITER_CLOCK_COARSE  // CLOCK_MONOTONIC_COARSE (fast, kernel-tick steps)
)

// Reason says why a limiter decided as it did.
type Reason int32

// Reasons (RSL_REASON_*).
const (
	ReasonAllowed      Reason = C.RSL_REASON_ALLOWED       // the tokens were taken
	ReasonUntracked    Reason = C.RSL_REASON_UNTRACKED     // allowed untracked: the key table is full
	ReasonLimited      Reason = C.RSL_REASON_LIMITED       // denied: not enough tokens now; see RetryAfter
	ReasonExceedsLimit Reason = C.RSL_REASON_EXCEEDS_LIMIT // denied: more than the bucket ever holds
	ReasonTableFull    Reason = C.RSL_REASON_TABLE_FULL    // denied: the key table is full of live keys
)

func (r Reason) String() string {
	switch r {
	case ReasonAllowed:
		return "allowed"
	case ReasonUntracked:
		return "allowed untracked"
	case ReasonLimited:
		return "limited"
	case ReasonExceedsLimit:
		return "exceeds the limit"
	case ReasonTableFull:
		return "key table full"
	}
	return fmt.Sprintf("Reason(%d)", int32(r))
}

// Decision is a limiter's answer: redis-cell's five facts and a reason.
type Decision struct {
	Allowed    bool          // the tokens were granted
	Reason     Reason        // why
	Limit      uint64        // tokens in a full bucket
	Remaining  uint64        // tokens left after this decision
	RetryAfter time.Duration // when Reason is ReasonLimited: wait this long; else 0
	ResetAfter time.Duration // until the bucket is full again
}

// setDecision fills *out from *d field by field, in place (the batch
// calls' loop: no 48-byte temporary per key).
func setDecision(out *Decision, d *C.rsl_decision) {
	out.Allowed = bool(d.allowed)
	out.Reason = Reason(d.reason)
	out.Limit = uint64(d.limit)
	out.Remaining = uint64(d.remaining)
	out.ResetAfter = duration(d.reset_after_ns)
	out.RetryAfter = 0
	if d.retry_after_ns != C.RSL_RETRY_AFTER_NONE {
		out.RetryAfter = duration(d.retry_after_ns)
	}
}

func decision(d *C.rsl_decision) Decision {
	var out Decision
	setDecision(&out, d)
	return out
}

// Err is nil for an allowed decision, else an error matching ErrRejected
// that carries RetryAfter (0 when no wait can help: ReasonExceedsLimit,
// ReasonTableFull).
func (d Decision) Err() error {
	if d.Allowed {
		return nil
	}
	return &Error{Op: "rate limit", Status: StatusRejected, Detail: d.Reason.String(), RetryAfter: d.RetryAfter}
}

// LimiterConfig holds a token bucket's settings; a zero Quota is the
// default, 100 a second in a bucket of 100.
type LimiterConfig struct {
	Quota Quota
	Clock Clock
}

// Limiter is a token bucket (GCRA on one atomic word: lock-free, no
// allocation). Safe for concurrent use except Close.
type Limiter struct {
	h *C.rsl_limiter
}

// NewLimiter creates a full bucket. ErrInvalidArg for a bad quota (Detail
// says which) or clock.
func NewLimiter(cfg LimiterConfig) (*Limiter, error) {
	c := C.rsl_limiter_config_default()
	if cfg.Quota != (Quota{}) {
		c.quota = cfg.Quota.toC()
	}
	c.clock = C.int32_t(cfg.Clock)
	l := &Limiter{}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st := C.rsl_limiter_new(&c, &l.h); st != 0 {
		return nil, fail(st, "NewLimiter")
	}
	runtime.SetFinalizer(l, (*Limiter).Close)
	return l, nil
}

// Close frees the bucket. Idempotent.
func (l *Limiter) Close() error {
	if l.h != nil {
		C.rsl_limiter_free(l.h)
		l.h = nil
		runtime.SetFinalizer(l, nil)
	}
	return nil
}

func (l *Limiter) call(n uint64, now uint64, at, peek bool, op string) (Decision, error) {
	h := l.h
	if h == nil {
		return Decision{}, closedErr(op)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := C.go_limiter_acquire(h, C.uint64_t(n), C.uint64_t(now), C.bool(at), C.bool(peek))
	runtime.KeepAlive(l)
	if r.st != 0 {
		return Decision{}, fail(r.st, op)
	}
	return decision(&r.d), nil
}

// Acquire takes n tokens if they are there. A denial is a Decision with
// Allowed false (not an error); n = 0 takes nothing and reports the bucket.
func (l *Limiter) Acquire(n uint64) (Decision, error) {
	return l.call(n, 0, false, false, "Limiter.Acquire")
}

// Allow takes one token and reports whether it was there.
func (l *Limiter) Allow() bool {
	h := l.h
	if h == nil {
		return false
	}
	// rsl_limiter_check: the same grant as Acquire(1), without the decision.
	// No error detail is read, so the call needs no pinned OS thread.
	st := C.rsl_limiter_check(h, 1, nil)
	runtime.KeepAlive(l)
	return st == C.RSL_OK
}

// Peek reports what Acquire(n) would answer now, taking nothing.
func (l *Limiter) Peek(n uint64) (Decision, error) {
	return l.call(n, 0, false, true, "Limiter.Peek")
}

// Reset refills the bucket.
func (l *Limiter) Reset() error {
	h := l.h
	if h == nil {
		return closedErr("Limiter.Reset")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_limiter_reset(h)
	runtime.KeepAlive(l)
	if st != 0 {
		return fail(st, "Limiter.Reset")
	}
	return nil
}

// Quota returns the bucket's quota.
func (l *Limiter) Quota() (Quota, error) {
	h := l.h
	if h == nil {
		return Quota{}, closedErr("Limiter.Quota")
	}
	var q C.rsl_quota
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_limiter_get_quota(h, &q)
	runtime.KeepAlive(l)
	if st != 0 {
		return Quota{}, fail(st, "Limiter.Quota")
	}
	return Quota{MaxBurst: uint64(q.max_burst), Count: uint64(q.count), Period: duration(q.period_ns)}, nil
}

// Wait takes one token, sleeping until it is there or ctx is done.
func (l *Limiter) Wait(ctx context.Context) error { return l.WaitN(ctx, 1) }

// WaitN takes n tokens, sleeping until they are there. It returns ctx's
// error if ctx ends first, and at once an error matching ErrRejected (with
// RetryAfter) if ctx's deadline comes before the tokens would, or if n
// exceeds the bucket's limit.
func (l *Limiter) WaitN(ctx context.Context, n uint64) error {
	return wait(ctx, func() (Decision, error) { return l.call(n, 0, false, false, "Limiter.Wait") })
}

// wait retries acquire until it is allowed, sleeping RetryAfter between
// tries and respecting ctx.
func wait(ctx context.Context, acquire func() (Decision, error)) error {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, err := acquire()
		if err != nil {
			return err
		}
		if d.Allowed {
			return nil
		}
		if d.Reason != ReasonLimited { // no wait can help
			return d.Err()
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d.RetryAfter {
			e := d.Err().(*Error)
			e.Detail = "limited; the context's deadline comes first"
			return e
		}
		if timer == nil {
			timer = time.NewTimer(d.RetryAfter)
		} else {
			timer.Reset(d.RetryAfter)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
	}
}

// FullPolicy says what a keyed limiter does with a new key when its table
// is full of live keys.
type FullPolicy int32

// Full policies (RSL_FULL_POLICY_*).
const (
	FullDeny           FullPolicy = C.RSL_FULL_POLICY_DENY            // deny it (ReasonTableFull)
	FullAllowUntracked FullPolicy = C.RSL_FULL_POLICY_ALLOW_UNTRACKED // allow it untracked (ReasonUntracked)
)

// KeyedLimiterConfig holds a keyed limiter's settings; zero fields take the
// defaults in brackets.
type KeyedLimiterConfig struct {
	Quota      Quota      // every key's rate [100 a second in a bucket of 100]
	MaxKeys    int        // keys tracked at once [100000]
	Shards     int        // rounded up to a power of two [16 per CPU]
	FullPolicy FullPolicy // [FullDeny]
	Clock      Clock      // [ClockAuto]
}

// KeyedLimiterStats are a keyed limiter's counters.
type KeyedLimiterStats struct {
	Keys, Capacity, Reclaimed, Sweeps uint64
	DeniedFull, AllowedUntracked      uint64
	MemoryBytes                       uint64
}

// KeyedLimiter keeps a token bucket per byte key (a key whose bucket has
// refilled can be dropped without changing any answer, so memory stays
// bounded). Safe for concurrent use except Close.
type KeyedLimiter struct {
	h *C.rsl_keyed_limiter
}

// NewKeyedLimiter creates an empty keyed limiter. ErrInvalidArg for bad
// settings (Detail says which).
func NewKeyedLimiter(cfg KeyedLimiterConfig) (*KeyedLimiter, error) {
	c := C.rsl_keyed_limiter_config_default()
	if cfg.MaxKeys < 0 || cfg.Shards < 0 {
		return nil, &Error{Op: "NewKeyedLimiter", Status: StatusInvalidArg, Detail: "negative MaxKeys or Shards"}
	}
	if cfg.Quota != (Quota{}) {
		c.quota = cfg.Quota.toC()
	}
	if cfg.MaxKeys != 0 {
		c.max_keys = C.uint64_t(cfg.MaxKeys)
	}
	c.shards = C.uint64_t(cfg.Shards)
	c.full_policy = C.int32_t(cfg.FullPolicy)
	c.clock = C.int32_t(cfg.Clock)
	l := &KeyedLimiter{}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st := C.rsl_keyed_limiter_new(&c, &l.h); st != 0 {
		return nil, fail(st, "NewKeyedLimiter")
	}
	runtime.SetFinalizer(l, (*KeyedLimiter).Close)
	return l, nil
}

// Close frees the limiter and every key. Idempotent.
func (l *KeyedLimiter) Close() error {
	if l.h != nil {
		C.rsl_keyed_limiter_free(l.h)
		l.h = nil
		runtime.SetFinalizer(l, nil)
	}
	return nil
}

func (l *KeyedLimiter) acquire(kp *C.uint8_t, klen int, n uint64, now uint64, at bool, op string) (Decision, error) {
	h := l.h
	if h == nil {
		return Decision{}, closedErr(op)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := C.go_keyed_acquire(h, kp, C.size_t(klen), C.uint64_t(n), C.uint64_t(now), C.bool(at))
	runtime.KeepAlive(l)
	if r.st != 0 {
		return Decision{}, fail(r.st, op)
	}
	return decision(&r.d), nil
}

// Acquire takes n tokens from key's bucket if they are there. A denial is
// a Decision with Allowed false, not an error.
func (l *KeyedLimiter) Acquire(key []byte, n uint64) (Decision, error) {
	d, err := l.acquire(bytesPtr(key), len(key), n, 0, false, "KeyedLimiter.Acquire")
	runtime.KeepAlive(key)
	return d, err
}

// AcquireString is Acquire with a string key (not copied).
func (l *KeyedLimiter) AcquireString(key string, n uint64) (Decision, error) {
	d, err := l.acquire(stringPtr(key), len(key), n, 0, false, "KeyedLimiter.AcquireString")
	runtime.KeepAlive(key)
	return d, err
}

// Allow takes one token from key's bucket and reports whether it was there.
func (l *KeyedLimiter) Allow(key string) bool {
	h := l.h
	if h == nil {
		return false
	}
	// As Limiter.Allow: rsl_keyed_limiter_check, no pinned OS thread.
	st := C.rsl_keyed_limiter_check(h, stringPtr(key), C.size_t(len(key)), 1, nil)
	runtime.KeepAlive(key)
	runtime.KeepAlive(l)
	return st == C.RSL_OK
}

// Wait takes one token from key's bucket, sleeping until it is there; it
// returns ctx's error if ctx ends first, and at once an error matching
// ErrRejected (with RetryAfter) if ctx's deadline comes before the token
// would or no wait can help (the key table is full).
func (l *KeyedLimiter) Wait(ctx context.Context, key string) error {
	return l.WaitN(ctx, key, 1)
}

// WaitN is Wait for n tokens.
func (l *KeyedLimiter) WaitN(ctx context.Context, key string, n uint64) error {
	return wait(ctx, func() (Decision, error) {
		d, err := l.acquire(stringPtr(key), len(key), n, 0, false, "KeyedLimiter.Wait")
		runtime.KeepAlive(key)
		return d, err
	})
}

// AcquireMany takes n tokens from the bucket of every key in batch with one
// cgo call (and one clock read), appending one decision per key, in order,
// to dst[:0] and returning it. A key that appears twice is charged twice.
// Reuse batch and dst across calls: then it allocates nothing.
func (l *KeyedLimiter) AcquireMany(batch *Batch, n uint64, dst []Decision) ([]Decision, error) {
	h := l.h
	dst = dst[:0]
	if h == nil {
		return dst, closedErr("KeyedLimiter.AcquireMany")
	}
	if batch == nil {
		return dst, &Error{Op: "KeyedLimiter.AcquireMany", Status: StatusNullArg, Detail: "batch is nil"}
	}
	count := len(batch.klens)
	if count == 0 {
		return dst, nil
	}
	if cap(batch.decisions) < count {
		batch.decisions = make([]C.rsl_decision, count)
	}
	decs := batch.decisions[:count]
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.go_keyed_acquire_many(h, bytesPtr(batch.keys), &batch.klens[0], C.size_t(count), C.uint64_t(n), &decs[0])
	runtime.KeepAlive(batch)
	runtime.KeepAlive(l)
	if st != 0 {
		return dst, fail(st, "KeyedLimiter.AcquireMany")
	}
	if cap(dst) < count {
		dst = make([]Decision, count)
	}
	dst = dst[:count]
	for i := range decs {
		setDecision(&dst[i], &decs[i])
	}
	return dst, nil
}

// Reclaim drops every key whose bucket has refilled (no answer changes)
// and returns how many; a full table does it by itself.
func (l *KeyedLimiter) Reclaim() (int, error) {
	h := l.h
	if h == nil {
		return 0, closedErr("KeyedLimiter.Reclaim")
	}
	var n C.size_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_keyed_limiter_reclaim(h, &n)
	runtime.KeepAlive(l)
	if st != 0 {
		return 0, fail(st, "KeyedLimiter.Reclaim")
	}
	return int(n), nil
}

// Len returns the number of keys tracked.
func (l *KeyedLimiter) Len() (int, error) {
	h := l.h
	if h == nil {
		return 0, closedErr("KeyedLimiter.Len")
	}
	var n C.size_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_keyed_limiter_len(h, &n)
	runtime.KeepAlive(l)
	if st != 0 {
		return 0, fail(st, "KeyedLimiter.Len")
	}
	return int(n), nil
}

// Stats returns the limiter's counters.
func (l *KeyedLimiter) Stats() (KeyedLimiterStats, error) {
	h := l.h
	if h == nil {
		return KeyedLimiterStats{}, closedErr("KeyedLimiter.Stats")
	}
	var s C.rsl_keyed_limiter_stats
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_keyed_limiter_get_stats(h, &s)
	runtime.KeepAlive(l)
	if st != 0 {
		return KeyedLimiterStats{}, fail(st, "KeyedLimiter.Stats")
	}
	return KeyedLimiterStats{
		Keys: uint64(s.keys), Capacity: uint64(s.capacity), Reclaimed: uint64(s.reclaimed),
		Sweeps: uint64(s.sweeps), DeniedFull: uint64(s.denied_full),
		AllowedUntracked: uint64(s.allowed_untracked), MemoryBytes: uint64(s.memory_bytes),
	}, nil
}

// test hooks: the _at variants, for deterministic tests.

func (l *Limiter) acquireAt(n, now uint64) (Decision, error) {
	return l.call(n, now, true, false, "Limiter.Acquire")
}

func (l *KeyedLimiter) acquireAt(key string, n, now uint64) (Decision, error) {
	d, err := l.acquire(stringPtr(key), len(key), n, now, true, "KeyedLimiter.Acquire")
	runtime.KeepAlive(key)
	return d, err
}
