package resilience

/*
#include "rsl.h"
*/
import "C"

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// BulkheadConfig holds a bulkhead's settings.
type BulkheadConfig struct {
	// MaxConcurrent is the number of permits, >= 1.
	MaxConcurrent int
	// MaxWaiters bounds the goroutines waiting in Acquire at once; one more
	// is refused with ErrFull at once. 0: Acquire never waits (it answers
	// ErrRejected at once, like TryAcquire); negative: no bound.
	MaxWaiters int
}

// BulkheadStats are a bulkhead's gauges and counters.
type BulkheadStats struct {
	MaxConcurrent   uint64 // the permits
	InFlight        uint64 // permits held now
	Waiting         uint64 // goroutines waiting in Acquire now
	Rejected        uint64 // tries refused: TryAcquire, and each failed try inside Acquire
	InvalidReleases uint64 // Release calls with no permit held
}

// Bulkhead limits how many calls run at once (a counting semaphore on one
// atomic word in the library). Goroutines that wait for a permit wait in
// Go, on a queue woken by Release, so a waiting goroutine never holds an
// OS thread and honours its context. Safe for concurrent use except Close,
// which must not run while calls or waiters are in it.
type Bulkhead struct {
	h          *C.rsl_bulkhead
	maxWaiters int

	waiting int32 // goroutines queued (read without mu by Release)
	mu      sync.Mutex
	queue   []*waiter // waiters in arrival order
}

// NewBulkhead creates a bulkhead. ErrInvalidArg if MaxConcurrent is not in
// 1..RSL_BULKHEAD_MAX.
func NewBulkhead(cfg BulkheadConfig) (*Bulkhead, error) {
	if cfg.MaxConcurrent < 0 {
		return nil, &Error{Op: "NewBulkhead", Status: StatusInvalidArg, Detail: "negative MaxConcurrent"}
	}
	b := &Bulkhead{maxWaiters: cfg.MaxWaiters}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// The library's own waiting (rsl_bulkhead_acquire_timeout) blocks an OS
	// thread and cannot see a context: it is not used.
	if st := C.rsl_bulkhead_new(C.uint64_t(cfg.MaxConcurrent), 0, &b.h); st != 0 {
		return nil, fail(st, "NewBulkhead")
	}
	runtime.SetFinalizer(b, (*Bulkhead).Close)
	return b, nil
}

// Close frees the bulkhead. Idempotent.
func (b *Bulkhead) Close() error {
	if b.h != nil {
		C.rsl_bulkhead_free(b.h)
		b.h = nil
		runtime.SetFinalizer(b, nil)
	}
	return nil
}

func (b *Bulkhead) try(op string) (bool, error) {
	h := b.h
	if h == nil {
		return false, closedErr(op)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_bulkhead_try_acquire(h)
	runtime.KeepAlive(b)
	switch Status(st) {
	case StatusOK:
		return true, nil
	case StatusRejected:
		return false, nil
	}
	return false, fail(st, op)
}

// TryAcquire takes a permit if one is free now, without waiting: an error
// matching ErrRejected when every permit is taken. Pair each nil return
// with one Release.
func (b *Bulkhead) TryAcquire() error {
	ok, err := b.try("Bulkhead.TryAcquire")
	if err != nil {
		return err
	}
	if !ok {
		return ErrRejected
	}
	return nil
}

// retryPoll bounds how long a waiter sleeps without a wake-up before it
// tries again on its own: a safety net, not the mechanism (Release wakes
// waiters).
const retryPoll = 20 * time.Millisecond

// waiter is one goroutine queued in Acquire. It keeps its place in the queue
// from the moment it joins until it leaves with a permit, an error or its
// context's end, so waiters are served in arrival order and one already
// waiting is never turned away by MaxWaiters.
type waiter struct {
	ch    chan struct{} // one pending wake-up at most
	woken bool          // a wake-up was sent and not yet taken (under mu)
}

// Acquire takes a permit, waiting until one is released or ctx is done
// (then it returns ctx's error). Waiters are woken in arrival order. ErrFull
// if MaxWaiters goroutines are already waiting; with MaxWaiters 0 it never
// waits (ErrRejected). Pair each nil return with one Release.
func (b *Bulkhead) Acquire(ctx context.Context) error {
	if ok, err := b.try("Bulkhead.Acquire"); ok || err != nil {
		return err
	}
	if b.maxWaiters == 0 {
		return ErrRejected
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Join the queue before the next try, so a Release between that try
	// and the wait sees this waiter and wakes it.
	w := &waiter{ch: make(chan struct{}, 1)}
	b.mu.Lock()
	if b.maxWaiters > 0 && len(b.queue) >= b.maxWaiters {
		b.mu.Unlock()
		return ErrFull
	}
	b.queue = append(b.queue, w)
	atomic.AddInt32(&b.waiting, 1)
	b.mu.Unlock()
	timer := time.NewTimer(retryPoll)
	defer timer.Stop()
	for {
		ok, err := b.try("Bulkhead.Acquire")
		if ok || err != nil {
			b.leave(w)
			return err
		}
		select {
		case <-w.ch: // a permit was released: try again, keeping the place
			b.mu.Lock()
			w.woken = false
			b.mu.Unlock()
		case <-timer.C:
			timer.Reset(retryPoll)
		case <-ctx.Done():
			b.leave(w)
			return ctx.Err()
		}
	}
}

// leave takes w out of the queue; a wake-up it was sent and did not take is
// passed on to the next waiter, so none is lost.
func (b *Bulkhead) leave(w *waiter) {
	b.mu.Lock()
	for i, x := range b.queue {
		if x == w {
			b.queue = append(b.queue[:i], b.queue[i+1:]...)
			atomic.AddInt32(&b.waiting, -1)
			break
		}
	}
	passOn := w.woken
	b.mu.Unlock()
	if passOn {
		b.wakeOne()
	}
}

// wakeOne wakes the longest-waiting goroutine not already woken.
func (b *Bulkhead) wakeOne() {
	if atomic.LoadInt32(&b.waiting) == 0 {
		return
	}
	b.mu.Lock()
	for _, w := range b.queue {
		if !w.woken {
			w.woken = true
			w.ch <- struct{}{} // buffered: never blocks, one per woken spell
			break
		}
	}
	b.mu.Unlock()
}

// Release gives a permit back and wakes one waiter. ErrInvalidArg if no
// permit is held (an unmatched Release changes nothing).
func (b *Bulkhead) Release() error {
	h := b.h
	if h == nil {
		return closedErr("Bulkhead.Release")
	}
	runtime.LockOSThread()
	st := C.rsl_bulkhead_release(h)
	var err error
	if st != 0 {
		err = fail(st, "Bulkhead.Release")
	}
	runtime.UnlockOSThread()
	runtime.KeepAlive(b)
	if err == nil {
		b.wakeOne()
	}
	return err
}

// Execute runs fn holding a permit (Acquire, then Release when fn returns
// or panics), and returns fn's error or Acquire's.
func (b *Bulkhead) Execute(ctx context.Context, fn func() error) error {
	if err := b.Acquire(ctx); err != nil {
		return err
	}
	defer func() { _ = b.Release() }()
	return fn()
}

// Stats returns the bulkhead's gauges and counters.
func (b *Bulkhead) Stats() (BulkheadStats, error) {
	h := b.h
	if h == nil {
		return BulkheadStats{}, closedErr("Bulkhead.Stats")
	}
	var s C.rsl_bulkhead_stats
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_bulkhead_get_stats(h, &s)
	runtime.KeepAlive(b)
	if st != 0 {
		return BulkheadStats{}, fail(st, "Bulkhead.Stats")
	}
	return BulkheadStats{
		MaxConcurrent: uint64(s.max_concurrent), InFlight: uint64(s.in_flight),
		Waiting: uint64(atomic.LoadInt32(&b.waiting)), Rejected: uint64(s.rejected),
		InvalidReleases: uint64(s.invalid_releases),
	}, nil
}
