package resilience

/*
#include "rsl.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"time"
)

// IdempotencyConfig holds an idempotency store's settings; zero fields take
// the defaults in brackets.
type IdempotencyConfig struct {
	MaxBytes          uint64        // budget for all records [64 MiB]
	Retention         time.Duration // how long a completed response is replayed [24h]
	Shards            int           // a power of two in 1..4096 [16]
	MaxKeyLen         int           // longest key [255]
	MaxFingerprintLen int           // longest fingerprint [64]
	MaxResponseLen    int           // longest response [1 MiB]
}

// IdempotencyStats are a store's counters and occupancy. A replay of a
// response larger than 16 KiB takes two calls, and Replays counts both.
type IdempotencyStats struct {
	Started, Takeovers, Replays, InProgress, Mismatches, Full uint64
	Completed, CompleteFull, Abandoned, Evicted, Expired      uint64
	Records, InProgressRecords, BytesUsed                     uint64
}

// BeginState is the answer of Begin.
type BeginState int32

// Begin answers (RSL_IDEM_*).
const (
	// Started: the caller owns the new record; do the work, then Complete
	// or Abandon with the token.
	Started BeginState = C.RSL_IDEM_STARTED
	// InProgress: another caller owns the record; retry after RetryAfter.
	InProgress BeginState = C.RSL_IDEM_IN_PROGRESS
	// Completed: the request was already done; Response is what it stored.
	Completed BeginState = C.RSL_IDEM_COMPLETED
	// StartedTakeover: as Started, but a stale record (its owner's lease
	// ran out) was replaced: the earlier attempt may have done part of the
	// work.
	StartedTakeover BeginState = C.RSL_IDEM_STARTED_TAKEOVER
)

func (s BeginState) String() string {
	switch s {
	case Started:
		return "started"
	case InProgress:
		return "in-progress"
	case Completed:
		return "completed"
	case StartedTakeover:
		return "started-takeover"
	}
	return fmt.Sprintf("BeginState(%d)", int32(s))
}

// BeginResult is the answer of Begin.
type BeginResult struct {
	State      BeginState
	Token      uint64        // the owner token (Started, StartedTakeover)
	RetryAfter time.Duration // the lease time left (InProgress)
	Response   []byte        // the stored response, a copy (Completed)
}

// IdempotencyStore remembers requests by idempotency key: the first caller
// of a key owns it until it completes (the response is replayed to later
// callers for the retention time) or abandons it; a caller whose lease ran
// out can be taken over. Every method is safe for concurrent use except
// Close.
type IdempotencyStore struct {
	h *C.rsl_idem
}

// NewIdempotencyStore creates a store. ErrInvalidArg for inconsistent
// settings (Detail says which).
func NewIdempotencyStore(cfg IdempotencyConfig) (*IdempotencyStore, error) {
	c := C.rsl_idem_config_default()
	if cfg.Retention < 0 || cfg.Shards < 0 || cfg.MaxKeyLen < 0 || cfg.MaxFingerprintLen < 0 || cfg.MaxResponseLen < 0 {
		return nil, &Error{Op: "NewIdempotencyStore", Status: StatusInvalidArg, Detail: "negative setting"}
	}
	if cfg.MaxBytes != 0 {
		c.max_bytes = C.uint64_t(cfg.MaxBytes)
	}
	if cfg.Retention != 0 {
		c.retention_ns = C.uint64_t(cfg.Retention)
	}
	if cfg.Shards != 0 {
		c.shards = C.uint64_t(cfg.Shards)
	}
	if cfg.MaxKeyLen != 0 {
		c.max_key_len = C.uint64_t(cfg.MaxKeyLen)
	}
	if cfg.MaxFingerprintLen != 0 {
		c.max_fingerprint_len = C.uint64_t(cfg.MaxFingerprintLen)
	}
	if cfg.MaxResponseLen != 0 {
		c.max_response_len = C.uint64_t(cfg.MaxResponseLen)
	}
	s := &IdempotencyStore{}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st := C.rsl_idem_new(&c, &s.h); st != 0 {
		return nil, fail(st, "NewIdempotencyStore")
	}
	runtime.SetFinalizer(s, (*IdempotencyStore).Close)
	return s, nil
}

// Close frees the store and every record. Idempotent.
func (s *IdempotencyStore) Close() error {
	if s.h != nil {
		C.rsl_idem_free(s.h)
		s.h = nil
		runtime.SetFinalizer(s, nil)
	}
	return nil
}

// Begin claims key for the request identified by fingerprint (empty: only
// the key matters) with a lease, or answers from the key's record (see
// BeginState). Errors: ErrMismatch (the key was used with another
// fingerprint), ErrFull (in-progress records fill the budget: shed load),
// ErrInvalidArg (empty key, lease <= 0), ErrTooLarge (key or fingerprint
// above its limit).
func (s *IdempotencyStore) Begin(key, fingerprint []byte, lease time.Duration) (BeginResult, error) {
	r, err := s.begin(bytesPtr(key), len(key), fingerprint, lease, 0, "IdempotencyStore.Begin")
	runtime.KeepAlive(key)
	return r, err
}

func (s *IdempotencyStore) begin(kp *C.uint8_t, klen int, fp []byte, lease time.Duration, now uint64, op string) (BeginResult, error) {
	h := s.h
	if h == nil {
		return BeginResult{}, closedErr(op)
	}
	if lease <= 0 {
		return BeginResult{}, &Error{Op: op, Status: StatusInvalidArg, Detail: "lease must be > 0"}
	}
	sp := scratchPool.Get().(*[]byte)
	defer scratchPool.Put(sp)
	buf := *sp
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for {
		var state C.int32_t
		var token, retry C.uint64_t
		var n C.size_t
		var st C.rsl_status
		if now == 0 {
			st = C.rsl_idem_begin(h, kp, C.size_t(klen), bytesPtr(fp), C.size_t(len(fp)), nanos(lease),
				&state, &token, &retry, bytesPtr(buf), C.size_t(len(buf)), &n)
		} else {
			st = C.rsl_idem_begin_at(h, kp, C.size_t(klen), bytesPtr(fp), C.size_t(len(fp)), nanos(lease),
				C.uint64_t(now), &state, &token, &retry, bytesPtr(buf), C.size_t(len(buf)), &n)
		}
		runtime.KeepAlive(fp)
		runtime.KeepAlive(buf)
		runtime.KeepAlive(s)
		switch Status(st) {
		case StatusOK:
			r := BeginResult{State: BeginState(state), Token: uint64(token), RetryAfter: duration(retry)}
			if r.State == Completed {
				r.Response = make([]byte, int(n))
				copy(r.Response, buf[:n])
			}
			return r, nil
		case StatusBufferTooSmall:
			buf = make([]byte, int(n)) // replay: ask again with room for it
		case StatusMismatch:
			return BeginResult{}, ErrMismatch
		case StatusFull:
			return BeginResult{}, ErrFull
		default:
			return BeginResult{}, fail(st, op)
		}
	}
}

// Complete stores response (copied) as the answer for key, replayed for the
// retention time, if token owns the record. ErrNotFound (no live record),
// ErrNotOwner (another token owns it, or it is completed), ErrFull (no room:
// the record stays in progress; retry or abandon), ErrTooLarge.
func (s *IdempotencyStore) Complete(key []byte, token uint64, response []byte) error {
	err := s.complete(bytesPtr(key), len(key), token, response, "IdempotencyStore.Complete")
	runtime.KeepAlive(key)
	return err
}

func (s *IdempotencyStore) complete(kp *C.uint8_t, klen int, token uint64, response []byte, op string) error {
	h := s.h
	if h == nil {
		return closedErr(op)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_idem_complete(h, kp, C.size_t(klen), C.uint64_t(token), bytesPtr(response), C.size_t(len(response)))
	runtime.KeepAlive(response)
	runtime.KeepAlive(s)
	switch Status(st) {
	case StatusOK:
		return nil
	case StatusNotFound:
		return ErrNotFound
	case StatusFull:
		return ErrFull
	}
	return fail(st, op)
}

// Abandon releases key if token owns its in-progress record, so a retry
// starts afresh. ErrNotFound, ErrNotOwner as Complete.
func (s *IdempotencyStore) Abandon(key []byte, token uint64) error {
	err := s.abandon(bytesPtr(key), len(key), token, "IdempotencyStore.Abandon")
	runtime.KeepAlive(key)
	return err
}

func (s *IdempotencyStore) abandon(kp *C.uint8_t, klen int, token uint64, op string) error {
	h := s.h
	if h == nil {
		return closedErr(op)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_idem_abandon(h, kp, C.size_t(klen), C.uint64_t(token))
	runtime.KeepAlive(s)
	switch Status(st) {
	case StatusOK:
		return nil
	case StatusNotFound:
		return ErrNotFound
	}
	return fail(st, op)
}

// Sweep removes up to max records that are over and returns how many:
// completed records past their retention, and in-progress records whose
// lease ran out one retention period ago (until then a late Complete is
// accepted and the next Begin reports a takeover). Nothing sweeps by
// itself: call it from a ticker.
func (s *IdempotencyStore) Sweep(max int) (int, error) {
	h := s.h
	if h == nil {
		return 0, closedErr("IdempotencyStore.Sweep")
	}
	if max < 0 {
		max = 0
	}
	var n C.size_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_idem_sweep(h, C.size_t(max), &n)
	runtime.KeepAlive(s)
	if st != 0 {
		return 0, fail(st, "IdempotencyStore.Sweep")
	}
	return int(n), nil
}

// Stats returns the store's counters and occupancy.
func (s *IdempotencyStore) Stats() (IdempotencyStats, error) {
	h := s.h
	if h == nil {
		return IdempotencyStats{}, closedErr("IdempotencyStore.Stats")
	}
	var c C.rsl_idem_stats
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_idem_get_stats(h, &c)
	runtime.KeepAlive(s)
	if st != 0 {
		return IdempotencyStats{}, fail(st, "IdempotencyStore.Stats")
	}
	return IdempotencyStats{
		Started: uint64(c.started), Takeovers: uint64(c.takeovers), Replays: uint64(c.replays),
		InProgress: uint64(c.in_progress), Mismatches: uint64(c.mismatches), Full: uint64(c.full),
		Completed: uint64(c.completed), CompleteFull: uint64(c.complete_full),
		Abandoned: uint64(c.abandoned), Evicted: uint64(c.evicted), Expired: uint64(c.expired),
		Records: uint64(c.records), InProgressRecords: uint64(c.in_progress_records),
		BytesUsed: uint64(c.bytes_used),
	}, nil
}
