package resilience

/*
#include <stdint.h>
#include <time.h>
#include "rsl.h"

// Defined in breaker_export.go (//export); the handle is a runtime/cgo.Handle.
extern void goBreakerTransition(uintptr_t handle, struct rsl_breaker_transition *t);
extern void goBreakerUserFree(uintptr_t handle);

static void go_breaker_trampoline(void *user, const struct rsl_breaker_transition *t) {
	goBreakerTransition((uintptr_t)user, (struct rsl_breaker_transition *)t);
}

static void go_breaker_user_free(void *user) { goBreakerUserFree((uintptr_t)user); }

// The handle travels as an integer so Go never turns it into a pointer.
static rsl_status go_breaker_on_state_change(const rsl_breaker *b, uintptr_t handle) {
	return rsl_breaker_on_state_change(b, go_breaker_trampoline, (void *)handle, go_breaker_user_free);
}

// rsl_breaker_try_acquire[_at] with the out-parameters returned by value
// (Go locals passed by address would escape to the heap).
typedef struct { rsl_status st; uint64_t generation; uint64_t retry_ns; } go_acquire_ret;
static go_acquire_ret go_breaker_try_acquire(const rsl_breaker *b, uint64_t now, bool at) {
	go_acquire_ret r = {0, 0, 0};
	rsl_permit p = {0};
	r.st = at ? rsl_breaker_try_acquire_at(b, now, &p, &r.retry_ns) : rsl_breaker_try_acquire(b, &p, &r.retry_ns);
	r.generation = p.generation;
	return r;
}

static uint64_t go_monotonic_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
*/
import "C"

import (
	"fmt"
	"math"
	"runtime"
	"runtime/cgo"
	"time"
)

// monotonicNow is the library's clock: CLOCK_MONOTONIC nanoseconds.
func monotonicNow() uint64 { return uint64(C.go_monotonic_ns()) }

// BreakerState is a circuit breaker's state.
type BreakerState int32

// The breaker states (RSL_BREAKER_*).
const (
	StateClosed      BreakerState = C.RSL_BREAKER_CLOSED       // calls pass and are recorded
	StateOpen        BreakerState = C.RSL_BREAKER_OPEN         // calls are rejected until the wait is over
	StateHalfOpen    BreakerState = C.RSL_BREAKER_HALF_OPEN    // a few probe calls pass; their results decide
	StateDisabled    BreakerState = C.RSL_BREAKER_DISABLED     // calls pass, nothing recorded (by hand only)
	StateForcedOpen  BreakerState = C.RSL_BREAKER_FORCED_OPEN  // every call rejected (by hand only)
	StateMetricsOnly BreakerState = C.RSL_BREAKER_METRICS_ONLY // recorded, never opens
)

func (s BreakerState) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateOpen:
		return "open"
	case StateHalfOpen:
		return "half-open"
	case StateDisabled:
		return "disabled"
	case StateForcedOpen:
		return "forced-open"
	case StateMetricsOnly:
		return "metrics-only"
	}
	return fmt.Sprintf("BreakerState(%d)", int32(s))
}

// Outcome is the result of a call, as recorded by a breaker.
type Outcome int32

// Outcomes (RSL_OUTCOME_*).
const (
	Success Outcome = C.RSL_OUTCOME_SUCCESS // succeeded (still slow if it took too long)
	Failure Outcome = C.RSL_OUTCOME_FAILURE // failed
	Ignored Outcome = C.RSL_OUTCOME_IGNORED // not counted; a half-open probe slot is given back
)

// WindowType says what a breaker's sliding window counts.
type WindowType int32

// Window types.
const (
	CountWindow WindowType = C.RSL_BREAKER_WINDOW_COUNT // the last WindowSize calls
	TimeWindow  WindowType = C.RSL_BREAKER_WINDOW_TIME  // the calls of the last WindowSize seconds
)

// TransitionCause says why a breaker changed state.
type TransitionCause int32

// Transition causes (RSL_BREAKER_CAUSE_*).
const (
	CauseFailureRate     TransitionCause = C.RSL_BREAKER_CAUSE_FAILURE_RATE
	CauseSlowCallRate    TransitionCause = C.RSL_BREAKER_CAUSE_SLOW_CALL_RATE
	CauseWaitElapsed     TransitionCause = C.RSL_BREAKER_CAUSE_WAIT_ELAPSED
	CauseProbesPassed    TransitionCause = C.RSL_BREAKER_CAUSE_PROBES_PASSED
	CauseHalfOpenTimeout TransitionCause = C.RSL_BREAKER_CAUSE_HALF_OPEN_TIMEOUT
	CauseManual          TransitionCause = C.RSL_BREAKER_CAUSE_MANUAL
)

// BreakerConfig holds a breaker's settings (Resilience4j's); zero fields
// take the defaults given in brackets.
type BreakerConfig struct {
	FailureRateThreshold     float32       // percent in (0, 100] at or above which it opens [50]
	SlowCallRateThreshold    float32       // percent in (0, 100] [100]
	SlowCallDuration         time.Duration // a call longer than this is slow [60s]
	WaitInOpen               time.Duration // time in open before probes [60s]
	MaxWaitInHalfOpen        time.Duration // back to open if probes take longer [0: wait for ever]
	PermittedCallsInHalfOpen int           // probes, 1..1023 [10]
	WindowType               WindowType    // CountWindow [default] or TimeWindow
	WindowSize               int           // calls (1..65536) or seconds (1..3600) [100]
	MinimumCalls             int           // calls before a rate is computed [100]
	AutomaticTransition      bool          // Poll moves open to half-open when the wait is over

	// Classify decides how Execute and the HTTP middleware record a call's
	// error (Go side only; nil: nil is Success, anything else Failure).
	Classify func(err error) Outcome
}

func (cfg *BreakerConfig) toC(op string) (C.rsl_breaker_config, error) {
	c := C.rsl_breaker_config_default()
	bad := func(what string) error {
		return &Error{Op: op, Status: StatusInvalidArg, Detail: "BreakerConfig: negative " + what}
	}
	if cfg.SlowCallDuration < 0 {
		return c, bad("SlowCallDuration")
	}
	if cfg.WaitInOpen < 0 {
		return c, bad("WaitInOpen")
	}
	if cfg.MaxWaitInHalfOpen < 0 {
		return c, bad("MaxWaitInHalfOpen")
	}
	if cfg.PermittedCallsInHalfOpen < 0 || cfg.PermittedCallsInHalfOpen > math.MaxUint32 {
		return c, bad("or huge PermittedCallsInHalfOpen")
	}
	if cfg.WindowSize < 0 || cfg.WindowSize > math.MaxUint32 {
		return c, bad("or huge WindowSize")
	}
	if cfg.MinimumCalls < 0 || cfg.MinimumCalls > math.MaxUint32 {
		return c, bad("or huge MinimumCalls")
	}
	if cfg.FailureRateThreshold != 0 {
		c.failure_rate_threshold = C.float(cfg.FailureRateThreshold)
	}
	if cfg.SlowCallRateThreshold != 0 {
		c.slow_call_rate_threshold = C.float(cfg.SlowCallRateThreshold)
	}
	if cfg.SlowCallDuration != 0 {
		c.slow_call_duration_threshold_ns = C.uint64_t(cfg.SlowCallDuration)
	}
	if cfg.WaitInOpen != 0 {
		c.wait_in_open_ns = C.uint64_t(cfg.WaitInOpen)
	}
	c.max_wait_in_half_open_ns = C.uint64_t(cfg.MaxWaitInHalfOpen)
	if cfg.PermittedCallsInHalfOpen != 0 {
		c.permitted_calls_in_half_open = C.uint32_t(cfg.PermittedCallsInHalfOpen)
	}
	c.window_type = C.int32_t(cfg.WindowType)
	if cfg.WindowSize != 0 {
		c.window_size = C.uint32_t(cfg.WindowSize)
	}
	if cfg.MinimumCalls != 0 {
		c.minimum_calls = C.uint32_t(cfg.MinimumCalls)
	}
	if cfg.AutomaticTransition {
		c.automatic_transition = 1
	}
	return c, nil
}

// Breaker is a circuit breaker (rsl_breaker): closed, open, half-open, plus
// forced-open, disabled and metrics-only. Every method is safe for
// concurrent use except Close, which must not run concurrently with other
// calls on this value (other *Breaker values for the same breaker, from a
// registry, are independent handles).
type Breaker struct {
	h        *C.rsl_breaker
	classify func(error) Outcome
}

// Permit is permission for one call; record it exactly once with Record.
type Permit struct {
	generation uint64
}

// Generation is the generation of the state that issued the permit.
func (p Permit) Generation() uint64 { return p.generation }

// NewBreaker creates a closed breaker. ErrInvalidArg for a bad setting (the
// error's Detail says which).
func NewBreaker(cfg BreakerConfig) (*Breaker, error) {
	c, err := cfg.toC("NewBreaker")
	if err != nil {
		return nil, err
	}
	b := &Breaker{classify: cfg.Classify}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st := C.rsl_breaker_new(&c, &b.h); st != 0 {
		return nil, fail(st, "NewBreaker")
	}
	runtime.SetFinalizer(b, (*Breaker).Close)
	return b, nil
}

// Close releases this handle; the breaker itself lives on while a
// registry or another handle holds it. Idempotent.
func (b *Breaker) Close() error {
	if b.h != nil {
		C.rsl_breaker_free(b.h)
		b.h = nil
		runtime.SetFinalizer(b, nil)
	}
	return nil
}

func rejected(op string, retryNs C.uint64_t) error {
	return &Error{Op: op, Status: StatusRejected, RetryAfter: duration(retryNs)}
}

// TryAcquire asks to make a call now. On success record the permit with
// Record. A rejection (open, forced open, half-open with every probe out)
// is an *Error matching ErrRejected whose RetryAfter says when a call may
// pass again (0 in half-open with probes in flight; the maximum Duration
// when forced open).
func (b *Breaker) TryAcquire() (Permit, error) {
	h := b.h
	if h == nil {
		return Permit{}, closedErr("Breaker.TryAcquire")
	}
	return b.tryAcquire(h, 0, false)
}

// Record records the result of the call p was issued for and how long it
// took. ErrStale if the state changed since p was issued (nothing recorded;
// not an error to act on). May change the state and run OnStateChange
// callbacks on this goroutine.
func (b *Breaker) Record(p Permit, outcome Outcome, took time.Duration) error {
	h := b.h
	if h == nil {
		return closedErr("Breaker.Record")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_breaker_record(h, C.rsl_permit{generation: C.uint64_t(p.generation)}, C.int32_t(outcome), nanos(took))
	runtime.KeepAlive(b)
	switch Status(st) {
	case StatusOK:
		return nil
	case StatusStale:
		return ErrStale
	}
	return fail(st, "Breaker.Record")
}

// Outcome classifies err as the breaker's Classify does.
func (b *Breaker) Outcome(err error) Outcome {
	if b.classify != nil {
		return b.classify(err)
	}
	if err != nil {
		return Failure
	}
	return Success
}

// Execute runs fn if the breaker permits a call, and records its outcome
// (classified by BreakerConfig.Classify) and duration. It returns fn's
// error, or the rejection (errors.Is(err, ErrRejected), with RetryAfter)
// without running fn. A panic in fn is recorded as a failure and goes on
// up.
func (b *Breaker) Execute(fn func() error) (err error) {
	p, err := b.TryAcquire()
	if err != nil {
		return err
	}
	start := time.Now()
	done := false
	defer func() {
		if !done { // fn panicked
			_ = b.Record(p, Failure, time.Since(start))
		}
	}()
	err = fn()
	done = true
	_ = b.Record(p, b.Outcome(err), time.Since(start)) // ErrStale is normal; closed: fn already ran
	return err
}

// State returns the current state (reading it never moves open to
// half-open).
func (b *Breaker) State() (BreakerState, error) {
	h := b.h
	if h == nil {
		return 0, closedErr("Breaker.State")
	}
	var s C.int32_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_breaker_state(h, &s)
	runtime.KeepAlive(b)
	if st != 0 {
		return 0, fail(st, "Breaker.State")
	}
	return BreakerState(s), nil
}

// TransitionTo moves the breaker to state to now, whatever its state,
// beginning a fresh instance of it (permits issued before become stale),
// and returns the new generation. Runs OnStateChange callbacks (cause
// CauseManual) on this goroutine. ErrInvalidArg for an unknown state.
func (b *Breaker) TransitionTo(to BreakerState) (uint64, error) {
	h := b.h
	if h == nil {
		return 0, closedErr("Breaker.TransitionTo")
	}
	var gen C.uint64_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_breaker_transition_to(h, C.int32_t(to), &gen)
	runtime.KeepAlive(b)
	if st != 0 {
		return 0, fail(st, "Breaker.TransitionTo")
	}
	return uint64(gen), nil
}

// Poll drives the timed transitions (a half-open state past its maximum
// wait re-opens; with AutomaticTransition an open state whose wait is over
// moves to half-open) and returns when to poll again, or pending false when
// no timed transition is pending. Call it from a timer.
func (b *Breaker) Poll() (next time.Duration, pending bool, err error) {
	h := b.h
	if h == nil {
		return 0, false, closedErr("Breaker.Poll")
	}
	var at C.uint64_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	now := C.go_monotonic_ns()
	st := C.rsl_breaker_poll_at(h, now, &at)
	runtime.KeepAlive(b)
	if st != 0 {
		return 0, false, fail(st, "Breaker.Poll")
	}
	if at == math.MaxUint64 {
		return 0, false, nil
	}
	if at <= now {
		return 0, true, nil
	}
	return time.Duration(at - now), true, nil
}

// BreakerMetrics is a snapshot of a breaker's metrics.
type BreakerMetrics struct {
	State        BreakerState
	Generation   uint64        // transitions since creation
	Calls        uint64        // calls in the current window (or finished probes)
	Failed       uint64        // of which failed
	Slow         uint64        // of which slow
	NotPermitted uint64        // calls rejected since creation
	TimeInState  time.Duration // since the current state was entered
	FailureRate  float32       // percent, or -1 below the minimum number of calls
	SlowCallRate float32       // percent, or -1 below the minimum number of calls
}

// Metrics returns a snapshot of the breaker's metrics.
func (b *Breaker) Metrics() (BreakerMetrics, error) {
	h := b.h
	if h == nil {
		return BreakerMetrics{}, closedErr("Breaker.Metrics")
	}
	var m C.rsl_breaker_metrics
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_breaker_get_metrics(h, &m)
	runtime.KeepAlive(b)
	if st != 0 {
		return BreakerMetrics{}, fail(st, "Breaker.Metrics")
	}
	return BreakerMetrics{
		State: BreakerState(m.state), Generation: uint64(m.generation), Calls: uint64(m.calls),
		Failed: uint64(m.failed), Slow: uint64(m.slow), NotPermitted: uint64(m.not_permitted),
		TimeInState: duration(m.time_in_state_ns), FailureRate: float32(m.failure_rate),
		SlowCallRate: float32(m.slow_call_rate),
	}, nil
}

// TransitionsTo returns how many times the breaker has entered state since
// it was created (a counter to poll instead of a callback).
func (b *Breaker) TransitionsTo(state BreakerState) (uint64, error) {
	h := b.h
	if h == nil {
		return 0, closedErr("Breaker.TransitionsTo")
	}
	var n C.uint64_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_breaker_transitions_to(h, C.int32_t(state), &n)
	runtime.KeepAlive(b)
	if st != 0 {
		return 0, fail(st, "Breaker.TransitionsTo")
	}
	return uint64(n), nil
}

// Transition is a state change, as given to an OnStateChange callback.
type Transition struct {
	Generation uint64 // of the new state: orders concurrent callbacks
	From, To   BreakerState
	Cause      TransitionCause
	At         time.Time // when it happened (wall clock, from the monotonic stamp)
}

// OnStateChange registers fn, called after every state change of the
// breaker (of every handle to it) on the goroutine that caused it, inside
// TryAcquire, Record, Execute, TransitionTo or Poll. Callbacks may run
// concurrently and out of order on different goroutines: order them by
// Generation. fn may call the breaker. Keep it short. A panic in fn is
// recovered (and logged): it must not unwind through the library.
// Callbacks cannot be unregistered; they live as long as the breaker, held
// from a GC root: a callback that refers to its own *Breaker keeps that
// handle reachable, so no finalizer will free it; Close such a breaker
// yourself.
func (b *Breaker) OnStateChange(fn func(Transition)) error {
	h := b.h
	if h == nil {
		return closedErr("Breaker.OnStateChange")
	}
	if fn == nil {
		return &Error{Op: "Breaker.OnStateChange", Status: StatusNullArg, Detail: "nil callback"}
	}
	handle := cgo.NewHandle(fn)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.go_breaker_on_state_change(h, C.uintptr_t(handle))
	runtime.KeepAlive(b)
	if st != 0 {
		handle.Delete() // on an error the library keeps nothing
		return fail(st, "Breaker.OnStateChange")
	}
	return nil
}

// BreakerRegistry holds named breakers, at most a fixed number; when full, a
// new name evicts an idle breaker (closed, held by no handle) or is refused
// with ErrFull. Safe for concurrent use except Close.
type BreakerRegistry struct {
	h *C.rsl_breaker_registry
}

// NewBreakerRegistry creates a registry of at most maxEntries breakers.
func NewBreakerRegistry(maxEntries int) (*BreakerRegistry, error) {
	if maxEntries < 0 {
		return nil, &Error{Op: "NewBreakerRegistry", Status: StatusInvalidArg, Detail: "negative maxEntries"}
	}
	r := &BreakerRegistry{}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st := C.rsl_breaker_registry_new(C.size_t(maxEntries), &r.h); st != 0 {
		return nil, fail(st, "NewBreakerRegistry")
	}
	runtime.SetFinalizer(r, (*BreakerRegistry).Close)
	return r, nil
}

// Close frees the registry and its references; *Breaker values obtained
// from it stay valid. Idempotent.
func (r *BreakerRegistry) Close() error {
	if r.h != nil {
		C.rsl_breaker_registry_free(r.h)
		r.h = nil
		runtime.SetFinalizer(r, nil)
	}
	return nil
}

// Get returns the breaker called name, creating it with cfg if there is
// none (an existing breaker keeps its own settings; cfg.Classify applies to
// the returned handle). The returned handle is a new reference: Close it
// when done (a finalizer does otherwise); while it is held, the breaker is
// never evicted.
func (r *BreakerRegistry) Get(name string, cfg BreakerConfig) (*Breaker, error) {
	h := r.h
	if h == nil {
		return nil, closedErr("BreakerRegistry.Get")
	}
	c, err := cfg.toC("BreakerRegistry.Get")
	if err != nil {
		return nil, err
	}
	b := &Breaker{classify: cfg.Classify}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_breaker_registry_get(h, stringPtr(name), C.size_t(len(name)), &c, &b.h)
	runtime.KeepAlive(name)
	runtime.KeepAlive(r)
	if st != 0 {
		return nil, fail(st, "BreakerRegistry.Get")
	}
	runtime.SetFinalizer(b, (*Breaker).Close)
	return b, nil
}

// Find returns the breaker called name without creating it (a new
// reference, as Get), or ErrNotFound.
func (r *BreakerRegistry) Find(name string) (*Breaker, error) {
	h := r.h
	if h == nil {
		return nil, closedErr("BreakerRegistry.Find")
	}
	b := &Breaker{}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_breaker_registry_find(h, stringPtr(name), C.size_t(len(name)), &b.h)
	runtime.KeepAlive(name)
	runtime.KeepAlive(r)
	switch Status(st) {
	case StatusOK:
		runtime.SetFinalizer(b, (*Breaker).Close)
		return b, nil
	case StatusNotFound:
		return nil, ErrNotFound
	}
	return nil, fail(st, "BreakerRegistry.Find")
}

// Remove takes the breaker called name out of the registry (handles to it
// keep working) and reports whether there was one.
func (r *BreakerRegistry) Remove(name string) (bool, error) {
	h := r.h
	if h == nil {
		return false, closedErr("BreakerRegistry.Remove")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_breaker_registry_remove(h, stringPtr(name), C.size_t(len(name)))
	runtime.KeepAlive(name)
	runtime.KeepAlive(r)
	switch Status(st) {
	case StatusOK:
		return true, nil
	case StatusNotFound:
		return false, nil
	}
	return false, fail(st, "BreakerRegistry.Remove")
}

// Len returns the number of breakers held.
func (r *BreakerRegistry) Len() (int, error) {
	h := r.h
	if h == nil {
		return 0, closedErr("BreakerRegistry.Len")
	}
	var n C.size_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_breaker_registry_len(h, &n)
	runtime.KeepAlive(r)
	if st != 0 {
		return 0, fail(st, "BreakerRegistry.Len")
	}
	return int(n), nil
}

// test hooks: the _at variants, for deterministic tests of timed behaviour.

func (b *Breaker) tryAcquireAt(now uint64) (Permit, error) {
	return b.tryAcquire(b.h, now, true)
}

func (b *Breaker) tryAcquire(h *C.rsl_breaker, now uint64, at bool) (Permit, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := C.go_breaker_try_acquire(h, C.uint64_t(now), C.bool(at))
	runtime.KeepAlive(b)
	switch Status(r.st) {
	case StatusOK:
		return Permit{uint64(r.generation)}, nil
	case StatusRejected:
		return Permit{}, rejected("Breaker.TryAcquire", r.retry_ns)
	}
	return Permit{}, fail(r.st, "Breaker.TryAcquire")
}

func (b *Breaker) recordAt(p Permit, o Outcome, took time.Duration, now uint64) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_breaker_record_at(b.h, C.rsl_permit{generation: C.uint64_t(p.generation)}, C.int32_t(o),
		nanos(took), C.uint64_t(now))
	runtime.KeepAlive(b)
	switch Status(st) {
	case StatusOK:
		return nil
	case StatusStale:
		return ErrStale
	}
	return fail(st, "Breaker.Record")
}
