package resilience

/*
#include "rsl.h"

typedef struct { rsl_status st; size_t n; } go_bq_size_ret;

static go_bq_size_ret go_bytes_queue_pop(const rsl_bytes_queue *q, uint8_t *buf, size_t cap) {
	go_bq_size_ret r = {0, 0};
	r.st = rsl_bytes_queue_pop(q, buf, cap, &r.n);
	return r;
}
static go_bq_size_ret go_bytes_queue_push_many(const rsl_bytes_queue *q, const uint8_t *data, size_t data_len,
                                               const size_t *lens, size_t count) {
	go_bq_size_ret r = {0, 0};
	r.st = rsl_bytes_queue_push_many(q, data, data_len, lens, count, &r.n);
	return r;
}
static go_bq_size_ret go_bytes_queue_pop_many(const rsl_bytes_queue *q, uint8_t *buf, size_t buf_len,
                                              size_t *lens, size_t max_count) {
	go_bq_size_ret r = {0, 0};
	r.st = rsl_bytes_queue_pop_many(q, buf, buf_len, lens, max_count, &r.n);
	return r;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// MaxBytesQueueMessage is the largest maxLen NewBytesQueue accepts.
const MaxBytesQueueMessage = C.RSL_BYTES_QUEUE_MAX_LEN

// BytesQueue is a bounded lock-free multi-producer multi-consumer queue of
// byte messages of at most MaxLen bytes (rsl_bytes_queue). Messages are
// copied in and out. Every method is safe for concurrent use, except Close,
// which must not run concurrently with other calls on the queue.
type BytesQueue struct {
	h      *C.rsl_bytes_queue
	maxLen int
}

// NewBytesQueue creates a queue of at least capacity messages (rounded up to
// a power of two) of at most maxLen bytes. ErrInvalidArg if capacity is 0 or
// above MaxQueueCapacity, or maxLen above MaxBytesQueueMessage.
func NewBytesQueue(capacity, maxLen int) (*BytesQueue, error) {
	if capacity < 0 || maxLen < 0 {
		return nil, &Error{Op: "NewBytesQueue", Status: StatusInvalidArg, Detail: "negative size"}
	}
	q := &BytesQueue{maxLen: maxLen}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st := C.rsl_bytes_queue_new(C.size_t(capacity), C.size_t(maxLen), &q.h); st != 0 {
		return nil, fail(st, "NewBytesQueue")
	}
	runtime.SetFinalizer(q, (*BytesQueue).Close)
	return q, nil
}

// MaxLen is the longest message accepted, in bytes.
func (q *BytesQueue) MaxLen() int { return q.maxLen }

// Close frees the queue and what it still holds. Idempotent; later calls
// on the queue return ErrClosed.
func (q *BytesQueue) Close() error {
	if q.h != nil {
		C.rsl_bytes_queue_free(q.h)
		q.h = nil
		runtime.SetFinalizer(q, nil)
	}
	return nil
}

// Push copies msg into the queue; ErrFull (nothing added) when the queue is
// full, ErrTooLarge when msg is longer than MaxLen.
func (q *BytesQueue) Push(msg []byte) error {
	h := q.h
	if h == nil {
		return closedErr("BytesQueue.Push")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_bytes_queue_push(h, bytesPtr(msg), C.size_t(len(msg)))
	runtime.KeepAlive(msg)
	runtime.KeepAlive(q)
	if st == 0 {
		return nil
	}
	return answer(st, "BytesQueue.Push", StatusFull)
}

// PopInto copies the oldest message into buf and returns its length; ErrEmpty
// when the queue is empty, ErrBufferTooSmall (nothing consumed) when it does
// not fit (a buffer of MaxLen bytes always fits).
func (q *BytesQueue) PopInto(buf []byte) (int, error) {
	n, _, err := q.popInto(buf, "BytesQueue.PopInto")
	return n, err
}

// popInto is PopInto that also reports the length needed when buf is too
// small; op names the caller in errors.
func (q *BytesQueue) popInto(buf []byte, op string) (n, needed int, err error) {
	h := q.h
	if h == nil {
		return 0, 0, closedErr(op)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := C.go_bytes_queue_pop(h, bytesPtr(buf), C.size_t(len(buf)))
	runtime.KeepAlive(buf)
	runtime.KeepAlive(q)
	switch Status(r.st) {
	case StatusOK:
		return int(r.n), 0, nil
	case StatusBufferTooSmall:
		return 0, int(r.n), answer(r.st, op, StatusBufferTooSmall)
	}
	return 0, 0, answer(r.st, op, StatusEmpty)
}

// popScratch is the most Pop and PopMany read into at once before
// allocating for what they actually got: a queue's MaxLen (up to 16 MiB)
// says nothing about the messages in it.
const popScratch = 64 << 10

var popScratchPool = sync.Pool{New: func() any { b := make([]byte, popScratch); return &b }}

// Pop removes and returns the oldest message, in a slice of exactly its
// length; ErrEmpty when the queue is empty.
func (q *BytesQueue) Pop() ([]byte, error) {
	bp := popScratchPool.Get().(*[]byte)
	defer popScratchPool.Put(bp)
	buf := *bp
	if q.maxLen < len(buf) {
		buf = buf[:q.maxLen+1]
	}
	for {
		n, needed, err := q.popInto(buf, "BytesQueue.Pop")
		if err == nil {
			m := make([]byte, n)
			copy(m, buf)
			return m, nil
		}
		if !errors.Is(err, ErrBufferTooSmall) {
			return nil, err
		}
		// Longer than the scratch: a buffer of its size (another consumer
		// may take it first; then the next message is tried).
		buf = make([]byte, needed)
		if n, _, err := q.popInto(buf, "BytesQueue.Pop"); err == nil {
			return buf[:n:n], nil
		} else if !errors.Is(err, ErrBufferTooSmall) {
			return nil, err
		}
	}
}

// PushMany pushes msgs in order, stopping at the first that does not fit,
// and returns how many were pushed: one cgo call for the whole batch.
// ErrTooLarge at a message longer than MaxLen, with the count of the ones
// before it, which are pushed (unless the queue filled up first: then the
// count alone says where it stopped).
func (q *BytesQueue) PushMany(msgs [][]byte) (int, error) {
	h := q.h
	if h == nil {
		return 0, closedErr("BytesQueue.PushMany")
	}
	var tooLarge error
	for i, m := range msgs {
		if len(m) > q.maxLen {
			tooLarge = &Error{Op: "BytesQueue.PushMany", Status: StatusTooLarge,
				Detail: fmt.Sprintf("message %d is %d bytes, longer than MaxLen %d", i, len(m), q.maxLen)}
			msgs = msgs[:i]
			break
		}
	}
	if len(msgs) == 0 {
		return 0, tooLarge
	}
	total := 0
	for _, m := range msgs {
		total += len(m)
	}
	data := make([]byte, 0, total)
	lens := make([]C.size_t, len(msgs)+1)
	for i, m := range msgs {
		data = append(data, m...)
		lens[i] = C.size_t(len(m))
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := C.go_bytes_queue_push_many(h, bytesPtr(data), C.size_t(len(data)), &lens[0], C.size_t(len(msgs)))
	st, n := r.st, r.n
	runtime.KeepAlive(data)
	runtime.KeepAlive(lens)
	runtime.KeepAlive(q)
	if st != 0 {
		return 0, fail(st, "BytesQueue.PushMany")
	}
	if tooLarge != nil && int(n) == len(msgs) {
		return int(n), tooLarge
	}
	return int(n), nil
}

// PopMany removes up to max messages, oldest first, in one cgo call while
// they fit in 64 KiB together (a longer first message is popped alone); an
// empty slice when the queue is empty. The messages share one allocation
// of exactly their total size.
func (q *BytesQueue) PopMany(max int) ([][]byte, error) {
	h := q.h
	if h == nil {
		return nil, closedErr("BytesQueue.PopMany")
	}
	if max < 0 {
		return nil, &Error{Op: "BytesQueue.PopMany", Status: StatusInvalidArg, Detail: "negative max"}
	}
	if max == 0 {
		return [][]byte{}, nil
	}
	if max > popScratch {
		max = popScratch // at most this many messages fit anyway, unless empty ones
	}
	bp := popScratchPool.Get().(*[]byte)
	defer popScratchPool.Put(bp)
	buf := *bp
	lens := make([]C.size_t, max)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := C.go_bytes_queue_pop_many(h, (*C.uint8_t)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &lens[0], C.size_t(max))
	st, n := r.st, int(r.n)
	runtime.KeepAlive(buf)
	runtime.KeepAlive(lens)
	runtime.KeepAlive(q)
	if Status(st) == StatusBufferTooSmall {
		// The oldest message alone is longer than the scratch.
		m, err := q.Pop()
		if errors.Is(err, ErrEmpty) {
			return [][]byte{}, nil
		}
		if err != nil {
			return nil, err
		}
		return [][]byte{m}, nil
	}
	if st != 0 {
		return nil, fail(st, "BytesQueue.PopMany")
	}
	total := 0
	for i := 0; i < n; i++ {
		total += int(lens[i])
	}
	data := make([]byte, total)
	copy(data, buf)
	out := make([][]byte, n)
	at := 0
	for i := 0; i < n; i++ {
		l := int(lens[i])
		out[i] = data[at : at+l : at+l]
		at += l
	}
	return out, nil
}

// Len returns the approximate number of queued messages and the capacity.
func (q *BytesQueue) Len() (length, capacity int, err error) {
	h := q.h
	if h == nil {
		return 0, 0, closedErr("BytesQueue.Len")
	}
	var l, c C.size_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_bytes_queue_len(h, &l, &c)
	runtime.KeepAlive(q)
	if st != 0 {
		return 0, 0, fail(st, "BytesQueue.Len")
	}
	return int(l), int(c), nil
}
