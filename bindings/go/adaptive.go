package resilience

/*
#include "rsl.h"

typedef struct { rsl_status st; rsl_adaptive_token t; } go_adaptive_ret;
static go_adaptive_ret go_adaptive_try_acquire(const rsl_adaptive *a) {
	go_adaptive_ret r;
	r.st = rsl_adaptive_try_acquire(a, &r.t);
	return r;
}
*/
import "C"

import (
	"context"
	"errors"
	"runtime"
	"time"
)

// AdaptiveAlgorithm picks how an adaptive limiter moves its limit.
type AdaptiveAlgorithm int32

// Algorithms (RSL_ADAPTIVE_*), as in Netflix's concurrency-limits.
const (
	AIMD     AdaptiveAlgorithm = C.RSL_ADAPTIVE_AIMD     // additive increase, multiplicative decrease
	Gradient AdaptiveAlgorithm = C.RSL_ADAPTIVE_GRADIENT // no-load latency against observed latency
)

// AdaptiveOutcome is what a call admitted by an adaptive limiter did.
type AdaptiveOutcome int32

// Adaptive outcomes (RSL_ADAPTIVE_*).
const (
	AdaptiveSuccess AdaptiveOutcome = C.RSL_ADAPTIVE_SUCCESS // succeeded: its round trip is a sample
	AdaptiveDropped AdaptiveOutcome = C.RSL_ADAPTIVE_DROPPED // timed out or refused by an overloaded service
	AdaptiveIgnored AdaptiveOutcome = C.RSL_ADAPTIVE_IGNORED // says nothing about the service
)

// AdaptiveConfig holds an adaptive limiter's settings; zero fields take the
// defaults in brackets (Netflix's).
type AdaptiveConfig struct {
	Algorithm    AdaptiveAlgorithm // [AIMD]
	InitialLimit int               // [20]
	MinLimit     int               // [20]
	MaxLimit     int               // [200]

	AIMDBackoff float64       // factor on a drop, in (0, 1) [0.9]
	AIMDTimeout time.Duration // a slower sample counts as a drop [5s]

	GradientSmoothing     float64 // weight of a new estimate, in (0, 1] [0.2]
	GradientTolerance     float64 // >= 1 [1.5]
	GradientQueueSize     int     // headroom added to each estimate [4]
	GradientDropBackoff   float64 // factor on a drop, in (0, 1] [0.9]
	GradientProbeInterval int     // samples between no-load probes [20000]

	// Classify maps Execute's error to an outcome (Go side only). nil:
	// success for nil; dropped for context.DeadlineExceeded and ErrRejected
	// (an overloaded dependency); ignored for anything else.
	Classify func(err error) AdaptiveOutcome
}

// AdaptiveStats are an adaptive limiter's gauges and counters.
type AdaptiveStats struct {
	Limit, InFlight, Rejected uint64
}

// AdaptiveToken is permission for one call; give it back exactly once with
// Record.
type AdaptiveToken struct {
	start, inflight uint64
}

// AdaptiveLimiter is a concurrency limit that moves with the latency and
// drops it observes (AIMD or gradient). Safe for concurrent use except
// Close.
type AdaptiveLimiter struct {
	h        *C.rsl_adaptive
	classify func(error) AdaptiveOutcome
}

// NewAdaptiveLimiter creates an adaptive limiter. ErrInvalidArg for a
// setting out of range (Detail says which).
func NewAdaptiveLimiter(cfg AdaptiveConfig) (*AdaptiveLimiter, error) {
	c := C.rsl_adaptive_config_default()
	if cfg.InitialLimit < 0 || cfg.MinLimit < 0 || cfg.MaxLimit < 0 || cfg.GradientQueueSize < 0 ||
		cfg.GradientProbeInterval < 0 || cfg.GradientProbeInterval > 1<<32-1 || cfg.AIMDTimeout < 0 {
		return nil, &Error{Op: "NewAdaptiveLimiter", Status: StatusInvalidArg, Detail: "negative or huge setting"}
	}
	c.algorithm = C.int32_t(cfg.Algorithm)
	if cfg.InitialLimit != 0 {
		c.initial_limit = C.uint64_t(cfg.InitialLimit)
	}
	if cfg.MinLimit != 0 {
		c.min_limit = C.uint64_t(cfg.MinLimit)
	}
	if cfg.MaxLimit != 0 {
		c.max_limit = C.uint64_t(cfg.MaxLimit)
	}
	if cfg.AIMDBackoff != 0 {
		c.aimd_backoff = C.double(cfg.AIMDBackoff)
	}
	if cfg.AIMDTimeout != 0 {
		c.aimd_timeout_ns = C.uint64_t(cfg.AIMDTimeout)
	}
	if cfg.GradientSmoothing != 0 {
		c.gradient_smoothing = C.double(cfg.GradientSmoothing)
	}
	if cfg.GradientTolerance != 0 {
		c.gradient_tolerance = C.double(cfg.GradientTolerance)
	}
	if cfg.GradientQueueSize != 0 {
		c.gradient_queue_size = C.uint64_t(cfg.GradientQueueSize)
	}
	if cfg.GradientDropBackoff != 0 {
		c.gradient_drop_backoff = C.double(cfg.GradientDropBackoff)
	}
	if cfg.GradientProbeInterval != 0 {
		c.gradient_probe_interval = C.uint32_t(cfg.GradientProbeInterval)
	}
	a := &AdaptiveLimiter{classify: cfg.Classify}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st := C.rsl_adaptive_new(&c, &a.h); st != 0 {
		return nil, fail(st, "NewAdaptiveLimiter")
	}
	runtime.SetFinalizer(a, (*AdaptiveLimiter).Close)
	return a, nil
}

// Close frees the limiter (tokens still out become meaningless).
// Idempotent.
func (a *AdaptiveLimiter) Close() error {
	if a.h != nil {
		C.rsl_adaptive_free(a.h)
		a.h = nil
		runtime.SetFinalizer(a, nil)
	}
	return nil
}

// TryAcquire admits one call if fewer than the current limit are in
// flight; ErrRejected (bare) at the limit.
func (a *AdaptiveLimiter) TryAcquire() (AdaptiveToken, error) {
	h := a.h
	if h == nil {
		return AdaptiveToken{}, closedErr("AdaptiveLimiter.TryAcquire")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := C.go_adaptive_try_acquire(h)
	runtime.KeepAlive(a)
	switch Status(r.st) {
	case StatusOK:
		return AdaptiveToken{start: uint64(r.t.start_ns), inflight: uint64(r.t.inflight)}, nil
	case StatusRejected:
		return AdaptiveToken{}, ErrRejected
	}
	return AdaptiveToken{}, fail(r.st, "AdaptiveLimiter.TryAcquire")
}

// Record gives t back with the call's outcome; its round trip is measured
// from t's admission to now.
func (a *AdaptiveLimiter) Record(t AdaptiveToken, outcome AdaptiveOutcome) error {
	return a.record(t, outcome, C.RSL_ADAPTIVE_RTT_MEASURE)
}

// RecordRTT is Record with a round-trip time measured by the caller.
func (a *AdaptiveLimiter) RecordRTT(t AdaptiveToken, outcome AdaptiveOutcome, rtt time.Duration) error {
	return a.record(t, outcome, nanos(rtt))
}

func (a *AdaptiveLimiter) record(t AdaptiveToken, outcome AdaptiveOutcome, rtt C.uint64_t) error {
	h := a.h
	if h == nil {
		return closedErr("AdaptiveLimiter.Record")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_adaptive_record(h, C.rsl_adaptive_token{start_ns: C.uint64_t(t.start), inflight: C.uint64_t(t.inflight)},
		C.int32_t(outcome), rtt)
	runtime.KeepAlive(a)
	if st != 0 {
		return fail(st, "AdaptiveLimiter.Record")
	}
	return nil
}

// Outcome classifies err as the limiter's Classify does.
func (a *AdaptiveLimiter) Outcome(err error) AdaptiveOutcome {
	if a.classify != nil {
		return a.classify(err)
	}
	switch {
	case err == nil:
		return AdaptiveSuccess
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, ErrRejected):
		return AdaptiveDropped
	}
	return AdaptiveIgnored
}

// Execute runs fn if the limiter admits it (else returns ErrRejected
// without running it) and records its outcome and round trip. A panic in
// fn is recorded as ignored and goes on up.
func (a *AdaptiveLimiter) Execute(fn func() error) error {
	t, err := a.TryAcquire()
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			_ = a.Record(t, AdaptiveIgnored)
		}
	}()
	err = fn()
	done = true
	_ = a.Record(t, a.Outcome(err))
	return err
}

// Limit returns the current limit.
func (a *AdaptiveLimiter) Limit() (int, error) {
	s, err := a.Stats()
	return int(s.Limit), err
}

// Stats returns the current limit, the calls in flight and the refusals.
func (a *AdaptiveLimiter) Stats() (AdaptiveStats, error) {
	h := a.h
	if h == nil {
		return AdaptiveStats{}, closedErr("AdaptiveLimiter.Stats")
	}
	var s C.rsl_adaptive_stats
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_adaptive_get_stats(h, &s)
	runtime.KeepAlive(a)
	if st != 0 {
		return AdaptiveStats{}, fail(st, "AdaptiveLimiter.Stats")
	}
	return AdaptiveStats{Limit: uint64(s.limit), InFlight: uint64(s.in_flight), Rejected: uint64(s.rejected)}, nil
}
