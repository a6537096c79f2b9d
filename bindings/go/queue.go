package resilience

/*
#include "rsl.h"

// Out-parameters of Go locals would escape to the heap (cgo makes every
// pointer argument escape); these shims return them by value instead, so
// the hot calls allocate nothing.
typedef struct { rsl_status st; uint64_t value; } go_u64_ret;
typedef struct { rsl_status st; size_t n; } go_size_ret;

static go_u64_ret go_mpmc_pop(const rsl_mpmc *q) {
	go_u64_ret r = {0, 0};
	r.st = rsl_mpmc_pop(q, &r.value);
	return r;
}
static go_size_ret go_mpmc_push_many(const rsl_mpmc *q, const uint64_t *v, size_t len) {
	go_size_ret r = {0, 0};
	r.st = rsl_mpmc_push_many(q, v, len, &r.n);
	return r;
}
static go_size_ret go_mpmc_pop_many(const rsl_mpmc *q, uint64_t *v, size_t cap) {
	go_size_ret r = {0, 0};
	r.st = rsl_mpmc_pop_many(q, v, cap, &r.n);
	return r;
}
static go_u64_ret go_spsc_pop(rsl_spsc_consumer *c) {
	go_u64_ret r = {0, 0};
	r.st = rsl_spsc_pop(c, &r.value);
	return r;
}
static go_size_ret go_spsc_push_many(rsl_spsc_producer *p, const uint64_t *v, size_t len) {
	go_size_ret r = {0, 0};
	r.st = rsl_spsc_push_many(p, v, len, &r.n);
	return r;
}
static go_size_ret go_spsc_pop_many(rsl_spsc_consumer *c, uint64_t *v, size_t cap) {
	go_size_ret r = {0, 0};
	r.st = rsl_spsc_pop_many(c, v, cap, &r.n);
	return r;
}
*/
import "C"

import (
	"runtime"
	"unsafe"
)

// MaxQueueCapacity is the largest capacity the queue constructors accept.
const MaxQueueCapacity = C.RSL_QUEUE_MAX_CAPACITY

func u64Ptr(v []uint64) *C.uint64_t {
	if len(v) == 0 {
		return nil
	}
	return (*C.uint64_t)(unsafe.Pointer(&v[0]))
}

// MPMC is a bounded lock-free multi-producer multi-consumer queue of uint64
// payloads (rsl_mpmc). Every method is safe for concurrent use, except
// Close, which must not run concurrently with other calls on the queue.
// A full queue never blocks: Push answers ErrFull.
type MPMC struct {
	h *C.rsl_mpmc
}

// NewMPMC creates a queue holding at least capacity payloads (rounded up to
// a power of two). ErrInvalidArg if capacity is 0 or above MaxQueueCapacity.
func NewMPMC(capacity int) (*MPMC, error) {
	if capacity < 0 {
		return nil, &Error{Op: "NewMPMC", Status: StatusInvalidArg, Detail: "negative capacity"}
	}
	q := &MPMC{}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st := C.rsl_mpmc_new(C.size_t(capacity), &q.h); st != 0 {
		return nil, fail(st, "NewMPMC")
	}
	runtime.SetFinalizer(q, (*MPMC).Close)
	return q, nil
}

// Close frees the queue and what it still holds. Idempotent; later calls
// on the queue return ErrClosed.
func (q *MPMC) Close() error {
	if q.h != nil {
		C.rsl_mpmc_free(q.h)
		q.h = nil
		runtime.SetFinalizer(q, nil)
	}
	return nil
}

// Push adds v; ErrFull (nothing added) when the queue is full.
func (q *MPMC) Push(v uint64) error {
	h := q.h
	if h == nil {
		return closedErr("MPMC.Push")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_mpmc_push(h, C.uint64_t(v))
	runtime.KeepAlive(q)
	if st == 0 {
		return nil
	}
	return answer(st, "MPMC.Push", StatusFull)
}

// Pop removes the oldest payload; ok is false when the queue is empty.
func (q *MPMC) Pop() (v uint64, ok bool, err error) {
	h := q.h
	if h == nil {
		return 0, false, closedErr("MPMC.Pop")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := C.go_mpmc_pop(h)
	st, out := r.st, r.value
	runtime.KeepAlive(q)
	switch Status(st) {
	case StatusOK:
		return uint64(out), true, nil
	case StatusEmpty:
		return 0, false, nil
	}
	return 0, false, fail(st, "MPMC.Pop")
}

// PushMany pushes values in order, stopping at the first that does not fit,
// and returns how many were pushed: one cgo call for the whole batch.
func (q *MPMC) PushMany(values []uint64) (int, error) {
	h := q.h
	if h == nil {
		return 0, closedErr("MPMC.PushMany")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := C.go_mpmc_push_many(h, u64Ptr(values), C.size_t(len(values)))
	st, n := r.st, r.n
	runtime.KeepAlive(values)
	runtime.KeepAlive(q)
	if st != 0 {
		return 0, fail(st, "MPMC.PushMany")
	}
	return int(n), nil
}

// PopMany pops up to len(dst) payloads into dst, oldest first, and returns
// how many (0 when empty): one cgo call for the whole batch.
func (q *MPMC) PopMany(dst []uint64) (int, error) {
	h := q.h
	if h == nil {
		return 0, closedErr("MPMC.PopMany")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := C.go_mpmc_pop_many(h, u64Ptr(dst), C.size_t(len(dst)))
	st, n := r.st, r.n
	runtime.KeepAlive(dst)
	runtime.KeepAlive(q)
	if st != 0 {
		return 0, fail(st, "MPMC.PopMany")
	}
	return int(n), nil
}

// Len returns the approximate number of queued payloads and the capacity.
func (q *MPMC) Len() (length, capacity int, err error) {
	h := q.h
	if h == nil {
		return 0, 0, closedErr("MPMC.Len")
	}
	var l, c C.size_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_mpmc_len(h, &l, &c)
	runtime.KeepAlive(q)
	if st != 0 {
		return 0, 0, fail(st, "MPMC.Len")
	}
	return int(l), int(c), nil
}

// Producer is the producing end of a wait-free single-producer
// single-consumer queue (rsl_spsc_producer). Use it from one goroutine at a
// time; it may be handed to another goroutine (through a channel, a mutex,
// any happens-before edge).
type Producer struct {
	h *C.rsl_spsc_producer
}

// Consumer is the consuming end of a single-producer single-consumer queue
// (rsl_spsc_consumer). Use it from one goroutine at a time.
type Consumer struct {
	h *C.rsl_spsc_consumer
}

// NewSPSC creates a single-producer single-consumer queue holding at least
// capacity payloads (rounded up to a power of two) and returns its two
// ends; the queue's memory is freed when both are closed.
func NewSPSC(capacity int) (*Producer, *Consumer, error) {
	if capacity < 0 {
		return nil, nil, &Error{Op: "NewSPSC", Status: StatusInvalidArg, Detail: "negative capacity"}
	}
	p, c := &Producer{}, &Consumer{}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st := C.rsl_spsc_new(C.size_t(capacity), &p.h, &c.h); st != 0 {
		return nil, nil, fail(st, "NewSPSC")
	}
	runtime.SetFinalizer(p, (*Producer).Close)
	runtime.SetFinalizer(c, (*Consumer).Close)
	return p, c, nil
}

// Close frees the producing end; the consumer can still drain what is
// queued. Idempotent.
func (p *Producer) Close() error {
	if p.h != nil {
		C.rsl_spsc_producer_free(p.h)
		p.h = nil
		runtime.SetFinalizer(p, nil)
	}
	return nil
}

// Push adds v: ErrFull when the queue is full, ErrDisconnected when it is
// full because the consumer was closed.
func (p *Producer) Push(v uint64) error {
	h := p.h
	if h == nil {
		return closedErr("Producer.Push")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_spsc_push(h, C.uint64_t(v))
	runtime.KeepAlive(p)
	switch Status(st) {
	case StatusOK:
		return nil
	case StatusFull:
		return ErrFull
	}
	return fail(st, "Producer.Push")
}

// PushMany pushes values in order and returns how many were pushed (fewer
// when the queue fills up); ErrDisconnected if not all fit because the
// consumer was closed.
func (p *Producer) PushMany(values []uint64) (int, error) {
	h := p.h
	if h == nil {
		return 0, closedErr("Producer.PushMany")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := C.go_spsc_push_many(h, u64Ptr(values), C.size_t(len(values)))
	st, n := r.st, r.n
	runtime.KeepAlive(values)
	runtime.KeepAlive(p)
	if st != 0 {
		return 0, fail(st, "Producer.PushMany")
	}
	return int(n), nil
}

// Len returns the number of queued payloads as the producer sees it, and the
// capacity.
func (p *Producer) Len() (length, capacity int, err error) {
	h := p.h
	if h == nil {
		return 0, 0, closedErr("Producer.Len")
	}
	var l, c C.size_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_spsc_producer_len(h, &l, &c)
	runtime.KeepAlive(p)
	if st != 0 {
		return 0, 0, fail(st, "Producer.Len")
	}
	return int(l), int(c), nil
}

// Close frees the consuming end (the queue's memory goes once the producer
// is closed too). Idempotent.
func (c *Consumer) Close() error {
	if c.h != nil {
		C.rsl_spsc_consumer_free(c.h)
		c.h = nil
		runtime.SetFinalizer(c, nil)
	}
	return nil
}

// Pop removes the oldest payload; ok is false when the queue is empty.
func (c *Consumer) Pop() (v uint64, ok bool, err error) {
	h := c.h
	if h == nil {
		return 0, false, closedErr("Consumer.Pop")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := C.go_spsc_pop(h)
	st, out := r.st, r.value
	runtime.KeepAlive(c)
	switch Status(st) {
	case StatusOK:
		return uint64(out), true, nil
	case StatusEmpty:
		return 0, false, nil
	}
	return 0, false, fail(st, "Consumer.Pop")
}

// PopMany pops up to len(dst) payloads into dst, oldest first, and returns
// how many.
func (c *Consumer) PopMany(dst []uint64) (int, error) {
	h := c.h
	if h == nil {
		return 0, closedErr("Consumer.PopMany")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := C.go_spsc_pop_many(h, u64Ptr(dst), C.size_t(len(dst)))
	st, n := r.st, r.n
	runtime.KeepAlive(dst)
	runtime.KeepAlive(c)
	if st != 0 {
		return 0, fail(st, "Consumer.PopMany")
	}
	return int(n), nil
}

// Len returns the number of queued payloads as the consumer sees it.
func (c *Consumer) Len() (int, error) {
	h := c.h
	if h == nil {
		return 0, closedErr("Consumer.Len")
	}
	var l C.size_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_spsc_consumer_len(h, &l)
	runtime.KeepAlive(c)
	if st != 0 {
		return 0, fail(st, "Consumer.Len")
	}
	return int(l), nil
}
