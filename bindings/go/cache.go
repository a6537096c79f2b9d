package resilience

/*
#include <stdlib.h>
#include "rsl.h"

// Looks up `count` keys packed one after another in `packed` (key i is
// key_lens[i] bytes) with one rsl_cache_get_many call. Go may not hand C an
// array of Go pointers, so the array of key pointers is built here, on the
// C stack (or the C heap for big batches).
static rsl_status go_cache_get_many(const rsl_cache *cache, const uint8_t *packed,
                                    const size_t *key_lens, size_t count, uint8_t *buf,
                                    size_t cap, size_t *offsets, size_t *lens, int32_t *statuses) {
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
	rsl_status st = rsl_cache_get_many(cache, ptrs, key_lens, count, buf, cap, offsets, lens, statuses);
	if (ptrs != stack_ptrs) free(ptrs);
	return st;
}

// rsl_cache_get / rsl_cache_contains with the out-parameters returned by
// value (a Go local passed by address would escape to the heap).
typedef struct { rsl_status st; size_t n; } go_cache_get_ret;
static go_cache_get_ret go_cache_get(const rsl_cache *c, const uint8_t *key, size_t key_len,
                                     uint8_t *buf, size_t cap) {
	go_cache_get_ret r = {0, 0};
	r.st = rsl_cache_get(c, key, key_len, buf, cap, &r.n);
	return r;
}
typedef struct { rsl_status st; bool present; } go_cache_contains_ret;
static go_cache_contains_ret go_cache_contains(const rsl_cache *c, const uint8_t *key, size_t key_len) {
	go_cache_contains_ret r = {0, false};
	r.st = rsl_cache_contains(c, key, key_len, &r.present);
	return r;
}
*/
import "C"

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// NoExpiry as a TTL: the entry never expires, whatever the cache's default.
const NoExpiry time.Duration = -1

// CacheConfig holds a cache's settings; the zero value gives the defaults.
type CacheConfig struct {
	// MaxEntries bounds the number of entries; 0: no count limit.
	MaxEntries uint64
	// MaxWeight bounds the bytes held (key + value lengths summed) in all,
	// split among the shards in shares that differ by at most one, so one
	// entry may weigh at most MaxWeight/shards (rounded down). 0: 64 MiB when MaxEntries is 0 too, else no weight
	// limit.
	MaxWeight uint64
	// DefaultTTL is the time to live of entries set without one; 0: never
	// expire.
	DefaultTTL time.Duration
	// Shards is a power of two up to 65536; 0: chosen from the CPU count.
	Shards int
}

// CacheStats are a cache's counters and occupancy.
type CacheStats struct {
	Hits, Misses, Inserts, Updates   uint64
	Evictions, Expirations, Rejected uint64
	Entries, Weight                  uint64
}

// Cache maps byte keys to byte values (rsl_cache): sharded, SIMD-probed,
// scan-resistant (S3-FIFO), with per-entry TTL and limits by count and by
// bytes. Values are copied in and out of the library. Every method is safe
// for concurrent use except Close, which must not run concurrently with
// other calls.
type Cache struct {
	h *C.rsl_cache
	// The length of the last value Get returned: the size Get allocates
	// before its one cgo call (a longer value costs a second call).
	sizeHint int32
}

// NewCache creates a cache. ErrInvalidArg for inconsistent settings (the
// error's Detail says which).
func NewCache(cfg CacheConfig) (*Cache, error) {
	c := C.rsl_cache_config_default()
	if cfg.MaxEntries != 0 || cfg.MaxWeight != 0 {
		c.max_entries = C.uint64_t(cfg.MaxEntries)
		c.max_weight = C.uint64_t(cfg.MaxWeight)
	}
	if cfg.DefaultTTL < 0 {
		return nil, &Error{Op: "NewCache", Status: StatusInvalidArg, Detail: "negative DefaultTTL"}
	}
	if cfg.Shards < 0 {
		return nil, &Error{Op: "NewCache", Status: StatusInvalidArg, Detail: "negative Shards"}
	}
	c.default_ttl_ns = C.uint64_t(cfg.DefaultTTL)
	c.shards = C.uint64_t(cfg.Shards)
	cache := &Cache{}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st := C.rsl_cache_new(&c, &cache.h); st != 0 {
		return nil, fail(st, "NewCache")
	}
	runtime.SetFinalizer(cache, (*Cache).Close)
	return cache, nil
}

// Close frees the cache and every entry. Idempotent; later calls return
// ErrClosed.
func (c *Cache) Close() error {
	if c.h != nil {
		C.rsl_cache_free(c.h)
		c.h = nil
		runtime.SetFinalizer(c, nil)
	}
	return nil
}

// Scratch buffers for IdempotencyStore.Begin's response (Cache.Get sizes
// its result from a hint instead).
var scratchPool = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// Get returns a copy of key's value, or ErrNotFound (absent or expired).
func (c *Cache) Get(key []byte) ([]byte, error) {
	v, err := c.getNew(bytesPtr(key), len(key), "Cache.Get")
	runtime.KeepAlive(key)
	return v, err
}

// GetString is Get with a string key (not copied).
func (c *Cache) GetString(key string) ([]byte, error) {
	v, err := c.getNew(stringPtr(key), len(key), "Cache.GetString")
	runtime.KeepAlive(key)
	return v, err
}

func (c *Cache) getNew(kp *C.uint8_t, klen int, op string) ([]byte, error) {
	// Allocate the result up front, sized like the last value, and let C
	// copy straight into it: one allocation, no scratch buffer, no copy.
	hint := int(atomic.LoadInt32(&c.sizeHint))
	if hint < 16 {
		hint = 16
	}
	v, ok, err := c.appendGet(make([]byte, 0, hint), kp, klen, op)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotFound
	}
	if n := len(v); n > hint || n < hint/2 {
		if n > 1<<20 {
			n = 1 << 20
		}
		atomic.StoreInt32(&c.sizeHint, int32(n))
	}
	if spare := cap(v) - len(v); spare > len(v)+64 {
		// The hint came from a larger value: return an exactly sized copy,
		// so a small value never keeps a large buffer alive.
		v = append(make([]byte, 0, len(v)), v...)
	}
	return v, nil
}

// AppendGet appends key's value to dst and returns the extended slice;
// found is false (dst returned unchanged) when the key is absent. With
// enough spare capacity in dst it makes one cgo call and no allocation.
func (c *Cache) AppendGet(dst, key []byte) (out []byte, found bool, err error) {
	out, found, err = c.appendGet(dst, bytesPtr(key), len(key), "Cache.AppendGet")
	runtime.KeepAlive(key)
	return out, found, err
}

// AppendGetString is AppendGet with a string key.
func (c *Cache) AppendGetString(dst []byte, key string) (out []byte, found bool, err error) {
	out, found, err = c.appendGet(dst, stringPtr(key), len(key), "Cache.AppendGetString")
	runtime.KeepAlive(key)
	return out, found, err
}

func (c *Cache) appendGet(dst []byte, kp *C.uint8_t, klen int, op string) ([]byte, bool, error) {
	h := c.h
	if h == nil {
		return dst, false, closedErr(op)
	}
	// Found and absent carry no rsl_last_error detail, so the first try runs
	// without pinning the goroutine to its OS thread (that costs about 7 ns
	// a call); anything else is asked again on a pinned thread, where a
	// failure's detail is this call's own (a read changes nothing).
	spare := dst[len(dst):cap(dst)]
	r := C.go_cache_get(h, kp, C.size_t(klen), bytesPtr(spare), C.size_t(len(spare)))
	runtime.KeepAlive(spare)
	switch Status(r.st) {
	case StatusOK:
		runtime.KeepAlive(c)
		return dst[:len(dst)+int(r.n)], true, nil
	case StatusNotFound:
		runtime.KeepAlive(c)
		return dst, false, nil
	}
	return c.appendGetPinned(dst, kp, klen, op)
}

// appendGetPinned is appendGet's loop for values that do not fit (grow and
// ask again) and for failures, on a pinned OS thread.
func (c *Cache) appendGetPinned(dst []byte, kp *C.uint8_t, klen int, op string) ([]byte, bool, error) {
	h := c.h
	if h == nil {
		return dst, false, closedErr(op)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for {
		spare := dst[len(dst):cap(dst)]
		r := C.go_cache_get(h, kp, C.size_t(klen), bytesPtr(spare), C.size_t(len(spare)))
		st, n := r.st, r.n
		runtime.KeepAlive(spare)
		switch Status(st) {
		case StatusOK:
			runtime.KeepAlive(c)
			return dst[:len(dst)+int(n)], true, nil
		case StatusNotFound:
			runtime.KeepAlive(c)
			return dst, false, nil
		case StatusBufferTooSmall:
			// The value is n bytes; grow and ask again (it may have
			// changed in between, hence the loop).
			grown := make([]byte, len(dst), len(dst)+int(n)+int(n)/4)
			copy(grown, dst)
			dst = grown
		default:
			runtime.KeepAlive(c)
			return dst, false, fail(st, op)
		}
	}
}

func ttlNanos(ttl time.Duration) C.uint64_t {
	if ttl < 0 {
		return C.RSL_CACHE_TTL_NEVER
	}
	if ttl == 0 {
		return C.RSL_CACHE_TTL_DEFAULT
	}
	return C.uint64_t(ttl)
}

// Set stores a copy of key -> value with the cache's default TTL, replacing
// any value of key; it may evict other entries. ErrTooLarge when the entry
// weighs more than a shard's budget (any old value of key is removed too).
func (c *Cache) Set(key, value []byte) error {
	err := c.set(bytesPtr(key), len(key), value, 0, "Cache.Set")
	runtime.KeepAlive(key)
	return err
}

// SetWithTTL is Set with a time to live: 0 is the cache's default,
// NoExpiry (any negative value) never expires.
func (c *Cache) SetWithTTL(key, value []byte, ttl time.Duration) error {
	err := c.set(bytesPtr(key), len(key), value, ttl, "Cache.SetWithTTL")
	runtime.KeepAlive(key)
	return err
}

// SetString is SetWithTTL with a string key.
func (c *Cache) SetString(key string, value []byte, ttl time.Duration) error {
	err := c.set(stringPtr(key), len(key), value, ttl, "Cache.SetString")
	runtime.KeepAlive(key)
	return err
}

func (c *Cache) set(kp *C.uint8_t, klen int, value []byte, ttl time.Duration, op string) error {
	h := c.h
	if h == nil {
		return closedErr(op)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_cache_insert(h, kp, C.size_t(klen), bytesPtr(value), C.size_t(len(value)), ttlNanos(ttl))
	runtime.KeepAlive(value)
	runtime.KeepAlive(c)
	if st != 0 {
		return fail(st, op)
	}
	return nil
}

// Delete removes key and reports whether it was held (an entry past its TTL
// that no read or sweep has removed yet counts as held).
func (c *Cache) Delete(key []byte) (bool, error) {
	h := c.h
	if h == nil {
		return false, closedErr("Cache.Delete")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_cache_remove(h, bytesPtr(key), C.size_t(len(key)))
	runtime.KeepAlive(key)
	runtime.KeepAlive(c)
	switch Status(st) {
	case StatusOK:
		return true, nil
	case StatusNotFound:
		return false, nil
	}
	return false, fail(st, "Cache.Delete")
}

// Contains reports whether key has a live entry (not counted as a hit or a
// miss, not marked as used).
func (c *Cache) Contains(key []byte) (bool, error) {
	h := c.h
	if h == nil {
		return false, closedErr("Cache.Contains")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := C.go_cache_contains(h, bytesPtr(key), C.size_t(len(key)))
	st, present := r.st, r.present
	runtime.KeepAlive(key)
	runtime.KeepAlive(c)
	if st != 0 {
		return false, fail(st, "Cache.Contains")
	}
	return bool(present), nil
}

// Len returns the number of entries (expired ones not yet swept included)
// and the bytes they weigh.
func (c *Cache) Len() (entries int, weight uint64, err error) {
	h := c.h
	if h == nil {
		return 0, 0, closedErr("Cache.Len")
	}
	var n C.size_t
	var w C.uint64_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_cache_len(h, &n, &w)
	runtime.KeepAlive(c)
	if st != 0 {
		return 0, 0, fail(st, "Cache.Len")
	}
	return int(n), uint64(w), nil
}

// Clear removes every entry (the counters are kept).
func (c *Cache) Clear() error {
	h := c.h
	if h == nil {
		return closedErr("Cache.Clear")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_cache_clear(h)
	runtime.KeepAlive(c)
	if st != 0 {
		return fail(st, "Cache.Clear")
	}
	return nil
}

// Sweep removes up to max expired entries, resuming where the last sweep
// stopped, and returns how many. Nothing sweeps by itself: call it from a
// ticker.
func (c *Cache) Sweep(max int) (int, error) {
	h := c.h
	if h == nil {
		return 0, closedErr("Cache.Sweep")
	}
	if max < 0 {
		max = 0
	}
	var n C.size_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_cache_sweep(h, C.size_t(max), &n)
	runtime.KeepAlive(c)
	if st != 0 {
		return 0, fail(st, "Cache.Sweep")
	}
	return int(n), nil
}

// Stats returns the counters summed over the shards and the occupancy.
func (c *Cache) Stats() (CacheStats, error) {
	h := c.h
	if h == nil {
		return CacheStats{}, closedErr("Cache.Stats")
	}
	var s C.rsl_cache_stats
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.rsl_cache_get_stats(h, &s)
	runtime.KeepAlive(c)
	if st != 0 {
		return CacheStats{}, fail(st, "Cache.Stats")
	}
	return CacheStats{
		Hits: uint64(s.hits), Misses: uint64(s.misses), Inserts: uint64(s.inserts),
		Updates: uint64(s.updates), Evictions: uint64(s.evictions),
		Expirations: uint64(s.expirations), Rejected: uint64(s.rejections),
		Entries: uint64(s.entries), Weight: uint64(s.weight),
	}, nil
}

// Batch is a batch of keys for one cgo call: Cache.GetMany (which also
// keeps the values found in it) or KeyedLimiter.AcquireMany. Reuse one Batch
// (per goroutine) across calls: after the first few calls GetMany
// allocates nothing. The zero value is ready to use.
type Batch struct {
	keys   []byte // the keys, packed
	klens  []C.size_t
	buf    []byte // the values, packed
	offs   []C.size_t
	lens   []C.size_t
	status []C.int32_t
	n      int

	decisions []C.rsl_decision // KeyedLimiter.AcquireMany's scratch
}

// Reset empties the batch, keeping its memory.
func (b *Batch) Reset() {
	b.keys = b.keys[:0]
	b.klens = b.klens[:0]
	b.n = 0
}

// Add appends a key (copied) to look up.
func (b *Batch) Add(key []byte) {
	b.keys = append(b.keys, key...)
	b.klens = append(b.klens, C.size_t(len(key)))
}

// AddString appends a string key (copied) to look up.
func (b *Batch) AddString(key string) {
	b.keys = append(b.keys, key...)
	b.klens = append(b.klens, C.size_t(len(key)))
}

// Len returns the number of keys in the batch.
func (b *Batch) Len() int { return len(b.klens) }

// Value returns the value found for key i by the last GetMany, and whether
// it was found. The slice aliases the batch's memory: it is valid until the
// next GetMany or Reset on the batch; copy it to keep it.
func (b *Batch) Value(i int) ([]byte, bool) {
	if i < 0 || i >= b.n || b.status[i] != C.RSL_OK {
		return nil, false
	}
	off, n := int(b.offs[i]), int(b.lens[i])
	return b.buf[off : off+n : off+n], true
}

// Err returns nil if key i was found or absent (see Value), or the error
// of its lookup (a key above the size limit: ErrTooLarge).
func (b *Batch) Err(i int) error {
	if i < 0 || i >= b.n {
		return nil
	}
	switch Status(b.status[i]) {
	case StatusOK, StatusNotFound:
		return nil
	}
	return &Error{Op: "Cache.GetMany", Status: Status(b.status[i])}
}

// GetMany looks up every key of batch with one cgo call (the per-call cost
// of cgo is paid once per batch, not per key); read the results with
// batch.Value(i). Values larger than the space left in the batch's buffer
// are fetched one by one afterwards. The keys are looked up one by one in
// the library, not as one snapshot.
func (c *Cache) GetMany(batch *Batch) error {
	h := c.h
	if h == nil {
		return closedErr("Cache.GetMany")
	}
	if batch == nil {
		return &Error{Op: "Cache.GetMany", Status: StatusNullArg, Detail: "batch is nil"}
	}
	count := len(batch.klens)
	batch.n = 0
	if count == 0 {
		return nil
	}
	if cap(batch.offs) < count {
		batch.offs = make([]C.size_t, count)
		batch.lens = make([]C.size_t, count)
		batch.status = make([]C.int32_t, count)
	}
	batch.offs, batch.lens, batch.status = batch.offs[:count], batch.lens[:count], batch.status[:count]
	if cap(batch.buf) < 64*count {
		batch.buf = make([]byte, 64*count)
	}
	batch.buf = batch.buf[:cap(batch.buf)]
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.go_cache_get_many(h, bytesPtr(batch.keys), &batch.klens[0], C.size_t(count),
		bytesPtr(batch.buf), C.size_t(len(batch.buf)), &batch.offs[0], &batch.lens[0], &batch.status[0])
	runtime.KeepAlive(batch)
	if st != 0 {
		runtime.KeepAlive(c)
		return fail(st, "Cache.GetMany")
	}
	// The buffer's used part ends after the last value copied (values are
	// packed in key order); note whether any value did not fit.
	used, tooSmall := 0, false
	for i, s := range batch.status {
		if s == C.RSL_OK {
			used = int(batch.offs[i] + batch.lens[i])
		} else if s == C.RSL_ERR_BUFFER_TOO_SMALL {
			tooSmall = true
		}
	}
	if !tooSmall {
		batch.n = count
		runtime.KeepAlive(c)
		return nil
	}
	// Values that did not fit: fetch each on its own, after the others.
	koff := 0
	for i := 0; i < count; i++ {
		klen := int(batch.klens[i])
		if batch.status[i] == C.RSL_ERR_BUFFER_TOO_SMALL {
			var kp *C.uint8_t
			if klen > 0 {
				kp = (*C.uint8_t)(unsafe.Pointer(&batch.keys[koff]))
			}
			v, ok, err := c.appendGet(batch.buf[:used], kp, klen, "Cache.GetMany")
			if err != nil {
				runtime.KeepAlive(batch)
				return err
			}
			batch.buf = v[:cap(v)]
			if ok {
				batch.status[i] = C.RSL_OK
				batch.offs[i] = C.size_t(used)
				batch.lens[i] = C.size_t(len(v) - used)
				used = len(v)
			} else {
				batch.status[i] = C.RSL_ERR_NOT_FOUND
				batch.offs[i], batch.lens[i] = 0, 0
			}
		}
		koff += klen
	}
	batch.n = count
	runtime.KeepAlive(batch)
	runtime.KeepAlive(c)
	return nil
}
