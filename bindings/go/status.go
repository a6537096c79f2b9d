package resilience

/*
#include "rsl.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"time"
	"unsafe"
)

// Status is an rsl_status code of the C ABI. Codes are stable: 1-99 bad
// arguments, 100-199 capacity and state answers, 200-299 runtime and I/O,
// 900-999 internal failures.
type Status int32

// The status codes of the C ABI (rsl_status).
const (
	StatusOK                 Status = C.RSL_OK
	StatusNullArg            Status = C.RSL_ERR_NULL_ARG
	StatusInvalidArg         Status = C.RSL_ERR_INVALID_ARG
	StatusBufferTooSmall     Status = C.RSL_ERR_BUFFER_TOO_SMALL
	StatusTooLarge           Status = C.RSL_ERR_TOO_LARGE
	StatusFull               Status = C.RSL_ERR_FULL
	StatusEmpty              Status = C.RSL_ERR_EMPTY
	StatusNotFound           Status = C.RSL_ERR_NOT_FOUND
	StatusRejected           Status = C.RSL_ERR_REJECTED
	StatusTimeout            Status = C.RSL_ERR_TIMEOUT
	StatusNotOwner           Status = C.RSL_ERR_NOT_OWNER
	StatusMismatch           Status = C.RSL_ERR_MISMATCH
	StatusStale              Status = C.RSL_ERR_STALE
	StatusClosed             Status = C.RSL_ERR_CLOSED
	StatusIO                 Status = C.RSL_ERR_IO
	StatusIOUringUnavailable Status = C.RSL_ERR_IO_URING_UNAVAILABLE
	StatusEngineState        Status = C.RSL_ERR_ENGINE_STATE
	StatusPanic              Status = C.RSL_ERR_PANIC
	StatusAlloc              Status = C.RSL_ERR_ALLOC
	StatusInternal           Status = C.RSL_ERR_INTERNAL
)

// String returns the library's description of the code (rsl_status_str).
func (s Status) String() string {
	return C.GoString(C.rsl_status_str(C.int32_t(s)))
}

// sentinel is the type of the Err* values: one per status code, compared by
// identity with errors.Is.
type sentinel struct {
	status Status
	msg    string
}

func (s *sentinel) Error() string { return "resilience: " + s.msg }

// Status returns the rsl_status code the sentinel stands for (0 for
// ErrClosed, which is Go-side only).
func (s *sentinel) Status() Status { return s.status }

// One sentinel per status code; every error returned by this package is one
// of them or wraps one (test with errors.Is).
var (
	// ErrNullArg: a required pointer was NULL (RSL_ERR_NULL_ARG).
	ErrNullArg error = &sentinel{StatusNullArg, "null argument"}
	// ErrInvalidArg: an argument was out of range (RSL_ERR_INVALID_ARG).
	ErrInvalidArg error = &sentinel{StatusInvalidArg, "invalid argument"}
	// ErrBufferTooSmall: an output buffer was too small (RSL_ERR_BUFFER_TOO_SMALL).
	ErrBufferTooSmall error = &sentinel{StatusBufferTooSmall, "buffer too small"}
	// ErrTooLarge: a length exceeded its limit (RSL_ERR_TOO_LARGE).
	ErrTooLarge error = &sentinel{StatusTooLarge, "too large"}
	// ErrFull: the container is full, nothing was added (RSL_ERR_FULL).
	ErrFull error = &sentinel{StatusFull, "full"}
	// ErrEmpty: the container is empty (RSL_ERR_EMPTY).
	ErrEmpty error = &sentinel{StatusEmpty, "empty"}
	// ErrNotFound: the key was not found (RSL_ERR_NOT_FOUND).
	ErrNotFound error = &sentinel{StatusNotFound, "not found"}
	// ErrRejected: refused by policy: breaker open, limiter denied, bulkhead
	// full (RSL_ERR_REJECTED). From breakers and limiters it is an *Error
	// carrying RetryAfter; Bulkhead and AdaptiveLimiter return the bare
	// sentinel (a permit comes back when a call ends, not at a known time).
	ErrRejected error = &sentinel{StatusRejected, "rejected"}
	// ErrTimeout: a wait ran out of time (RSL_ERR_TIMEOUT).
	ErrTimeout error = &sentinel{StatusTimeout, "timeout"}
	// ErrNotOwner: the caller does not own the record (RSL_ERR_NOT_OWNER).
	ErrNotOwner error = &sentinel{StatusNotOwner, "not owner"}
	// ErrMismatch: same idempotency key, different request (RSL_ERR_MISMATCH).
	ErrMismatch error = &sentinel{StatusMismatch, "fingerprint mismatch"}
	// ErrStale: a permit from an earlier generation, nothing recorded (RSL_ERR_STALE).
	ErrStale error = &sentinel{StatusStale, "stale permit"}
	// ErrDisconnected: the other end of a queue was closed (RSL_ERR_CLOSED).
	ErrDisconnected error = &sentinel{StatusClosed, "other end closed"}
	// ErrIO: an I/O error (RSL_ERR_IO).
	ErrIO error = &sentinel{StatusIO, "i/o error"}
	// ErrIOUringUnavailable: io_uring is unavailable (RSL_ERR_IO_URING_UNAVAILABLE).
	ErrIOUringUnavailable error = &sentinel{StatusIOUringUnavailable, "io_uring unavailable"}
	// ErrEngineState: the engine is already running or stopped (RSL_ERR_ENGINE_STATE).
	ErrEngineState error = &sentinel{StatusEngineState, "engine state"}
	// ErrPanic: a panic inside the library was caught (RSL_ERR_PANIC).
	ErrPanic error = &sentinel{StatusPanic, "panic in library"}
	// ErrAlloc: memory could not be allocated (RSL_ERR_ALLOC).
	ErrAlloc error = &sentinel{StatusAlloc, "allocation failed"}
	// ErrInternal: an internal invariant failed (RSL_ERR_INTERNAL).
	ErrInternal error = &sentinel{StatusInternal, "internal error"}

	// ErrClosed: the Go value was closed with Close (no C status; the
	// handle is gone, so nothing reached the library).
	ErrClosed error = &sentinel{0, "use of closed handle"}
)

func sentinelFor(s Status) error {
	switch s {
	case StatusNullArg:
		return ErrNullArg
	case StatusInvalidArg:
		return ErrInvalidArg
	case StatusBufferTooSmall:
		return ErrBufferTooSmall
	case StatusTooLarge:
		return ErrTooLarge
	case StatusFull:
		return ErrFull
	case StatusEmpty:
		return ErrEmpty
	case StatusNotFound:
		return ErrNotFound
	case StatusRejected:
		return ErrRejected
	case StatusTimeout:
		return ErrTimeout
	case StatusNotOwner:
		return ErrNotOwner
	case StatusMismatch:
		return ErrMismatch
	case StatusStale:
		return ErrStale
	case StatusClosed:
		return ErrDisconnected
	case StatusIO:
		return ErrIO
	case StatusIOUringUnavailable:
		return ErrIOUringUnavailable
	case StatusEngineState:
		return ErrEngineState
	case StatusPanic:
		return ErrPanic
	case StatusAlloc:
		return ErrAlloc
	case StatusInternal:
		return ErrInternal
	}
	return nil
}

// Error is a failed call: the operation, the status code, the library's
// detail message (rsl_last_error) and, for rejections and in-progress
// answers, how long to wait before retrying. errors.Is(err, ErrXxx) matches
// the sentinel of its status.
type Error struct {
	Op         string        // the method, e.g. "Cache.Insert"
	Status     Status        // the rsl_status code
	Detail     string        // rsl_last_error at the time of the failure ("" for answers)
	RetryAfter time.Duration // wait before retrying; 0 if not applicable
}

func (e *Error) Error() string {
	msg := "resilience: " + e.Op + ": "
	if s, ok := e.Unwrap().(*sentinel); ok {
		msg += s.msg
	} else {
		msg += fmt.Sprintf("status %d", int32(e.Status))
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(" (retry after %v)", e.RetryAfter)
	}
	return msg
}

// Unwrap returns the sentinel of the status, so errors.Is works.
func (e *Error) Unwrap() error {
	if e.Status == StatusOK {
		return ErrClosed
	}
	return sentinelFor(e.Status)
}

// RetryAfter returns the retry-after duration carried by err (a rejection
// by a breaker, limiter or bulkhead, or an idempotency record in progress).
func RetryAfter(err error) (time.Duration, bool) {
	var e *Error
	if errors.As(err, &e) && (e.Status == StatusRejected || e.RetryAfter > 0) {
		return e.RetryAfter, true
	}
	return 0, false
}

// hasDetail reports whether the library sets rsl_last_error for a status:
// argument errors, ownership and disconnection failures, runtime and
// internal failures do; answers (full, empty, not found, rejected, stale,
// mismatch) do not, and their last-error text would be stale.
func hasDetail(s Status) bool {
	return (s > 0 && s < 100) || s == StatusNotOwner || s == StatusClosed || s >= 200
}

// fail builds the error for a nonzero status. It must run on the OS thread
// that made the failing call (the caller holds runtime.LockOSThread), because
// rsl_last_error is thread-local.
func fail(st C.rsl_status, op string) error {
	s := Status(st)
	e := &Error{Op: op, Status: s}
	if hasDetail(s) {
		e.Detail = C.GoString(C.rsl_last_error())
	}
	return e
}

// answer returns the bare sentinel for an expected answer (no allocation),
// or the full error for anything else.
func answer(st C.rsl_status, op string, expected Status) error {
	if Status(st) == expected {
		return sentinelFor(expected)
	}
	return fail(st, op)
}

// closedErr is the error of a call on a closed value: errors.Is(err, ErrClosed).
func closedErr(op string) error { return &Error{Op: op} }

// nanos converts a duration to unsigned nanoseconds (negative: 0).
func nanos(d time.Duration) C.uint64_t {
	if d < 0 {
		return 0
	}
	return C.uint64_t(d)
}

// duration converts library nanoseconds to a Duration, saturating.
func duration(ns C.uint64_t) time.Duration {
	if uint64(ns) > uint64(1<<63-1) {
		return time.Duration(1<<63 - 1)
	}
	return time.Duration(ns)
}

// bytesPtr returns a pointer to b's first byte, or nil when empty. The
// slice's memory holds no Go pointers, so cgo lets C read it during a call.
func bytesPtr(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0]))
}

// stringPtr returns a pointer to s's bytes without copying, or nil when
// empty. C only reads them.
func stringPtr(s string) *C.uint8_t {
	if len(s) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(*(**byte)(unsafe.Pointer(&s))))
}

// Version returns the library version "MAJOR.MINOR.PATCH" (rsl_version).
func Version() string { return C.GoString(C.rsl_version()) }

// ABIVersion returns the ABI version the linked library implements.
func ABIVersion() uint32 { return uint32(C.rsl_abi_version()) }

// HeaderABIVersion is RSL_ABI_VERSION of the header this package was built with.
const HeaderABIVersion = C.RSL_ABI_VERSION

func init() {
	if got := ABIVersion(); got != HeaderABIVersion {
		panic(fmt.Sprintf("resilience: libresilience implements ABI %d, this package was built for ABI %d",
			got, HeaderABIVersion))
	}
}

// selfTestPanic asks the library to panic inside its boundary; it must come
// back as ErrPanic (for tests: no panic crosses the C boundary).
func selfTestPanic() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st := C.rsl_selftest_panic(); st != 0 {
		return fail(st, "selftest")
	}
	return nil
}
