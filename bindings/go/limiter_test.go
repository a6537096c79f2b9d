package resilience

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newLimiter(t testing.TB, cfg LimiterConfig) *Limiter {
	t.Helper()
	l, err := NewLimiter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func newKeyed(t testing.TB, cfg KeyedLimiterConfig) *KeyedLimiter {
	t.Helper()
	l, err := NewKeyedLimiter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// slow: a burst of n, then one token an hour (nothing refills in a test).
func slow(n uint64) Quota { return Quota{MaxBurst: n - 1, Count: 1, Period: time.Hour} }

func TestLimiterDecisions(t *testing.T) {
	l := newLimiter(t, LimiterConfig{Quota: Quota{MaxBurst: 9, Count: 10, Period: time.Second}, Clock: ClockPrecise})
	now := monotonicNow()
	for i := 0; i < 10; i++ {
		d, err := l.acquireAt(1, now)
		if err != nil || !d.Allowed || d.Reason != ReasonAllowed || d.Limit != 10 || d.Remaining != uint64(9-i) ||
			d.RetryAfter != 0 || d.Err() != nil {
			t.Fatalf("take %d: %+v %v", i, d, err)
		}
	}
	d, _ := l.acquireAt(1, now)
	if d.Allowed || d.Reason != ReasonLimited || d.RetryAfter != 100*time.Millisecond || d.ResetAfter != time.Second {
		t.Fatalf("over the burst: %+v", d)
	}
	err := d.Err()
	if ra, ok := RetryAfter(err); !errors.Is(err, ErrRejected) || !ok || ra != 100*time.Millisecond {
		t.Fatalf("Decision.Err = %v", err)
	}
	if d, _ := l.acquireAt(1, now+uint64(100*time.Millisecond)); !d.Allowed {
		t.Fatalf("refilled token: %+v", d)
	}
	d, _ = l.acquireAt(11, now)
	if d.Allowed || d.Reason != ReasonExceedsLimit || d.RetryAfter != 0 {
		t.Fatalf("more than the limit: %+v", d)
	}
	if _, ok := RetryAfter(d.Err()); !ok {
		t.Fatal("a rejection always says RetryAfter (0 here)")
	}
	if err := l.Reset(); err != nil {
		t.Fatal(err)
	}
	p, _ := l.Peek(10)
	if !p.Allowed {
		t.Fatalf("Peek after Reset: %+v", p)
	}
	if p2, _ := l.Peek(10); !p2.Allowed {
		t.Fatal("Peek consumed tokens")
	}
	q, err := l.Quota()
	if err != nil || q != (Quota{MaxBurst: 9, Count: 10, Period: time.Second}) {
		t.Fatalf("Quota = %+v %v", q, err)
	}
	if !l.Allow() {
		t.Fatal("Allow")
	}
	if ReasonLimited.String() != "limited" || Reason(42).String() != "Reason(42)" {
		t.Fatal("reason names")
	}
	def := newLimiter(t, LimiterConfig{})
	if q, _ := def.Quota(); q != PerSecond(100) {
		t.Fatalf("default quota %+v", q)
	}
}

func TestLimiterBadArguments(t *testing.T) {
	for _, cfg := range []LimiterConfig{
		{Quota: Quota{Count: 0, Period: time.Second}}, {Quota: PerSecond(0)},
		{Quota: Quota{Count: 10, Period: 5}}, {Quota: Quota{Count: 1, Period: -time.Second}},
		{Quota: PerSecond(1), Clock: 9},
	} {
		_, err := NewLimiter(cfg)
		var e *Error
		if !errors.Is(err, ErrInvalidArg) || !errors.As(err, &e) || e.Detail == "" {
			t.Fatalf("%+v: %v", cfg, err)
		}
	}
}

func TestLimiterManyGoroutinesExactAccounting(t *testing.T) {
	l := newLimiter(t, LimiterConfig{Quota: slow(1000)})
	var allowed int64
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if l.Allow() {
					atomic.AddInt64(&allowed, 1)
				}
			}
		}()
	}
	wg.Wait()
	if allowed != 1000 {
		t.Fatalf("%d tokens granted from a bucket of 1000", allowed)
	}
}

func TestLimiterWait(t *testing.T) {
	l := newLimiter(t, LimiterConfig{Quota: Quota{Count: 50, Period: time.Second}, Clock: ClockPrecise}) // 1 per 20 ms
	ctx := context.Background()
	start := time.Now()
	for i := 0; i < 4; i++ {
		if err := l.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("4 tokens at 50/s in %v", d)
	}
	// A deadline before the next token: refused at once, with RetryAfter.
	hourly := newLimiter(t, LimiterConfig{Quota: slow(1)})
	_ = hourly.Allow()
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	start = time.Now()
	err := hourly.Wait(short)
	if d, ok := RetryAfter(err); !errors.Is(err, ErrRejected) || !ok || d < 59*time.Minute || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("deadline first: %v", err)
	}
	// Cancellation while waiting.
	minutely := newLimiter(t, LimiterConfig{Quota: Quota{Count: 1, Period: 300 * time.Millisecond}, Clock: ClockPrecise})
	_ = minutely.Allow()
	cctx, ccancel := context.WithCancel(ctx)
	go func() { time.Sleep(20 * time.Millisecond); ccancel() }()
	start = time.Now()
	if err := minutely.Wait(cctx); !errors.Is(err, context.Canceled) || time.Since(start) > 250*time.Millisecond {
		t.Fatalf("cancelled wait: %v after %v", err, time.Since(start))
	}
	if err := minutely.Wait(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait on a done context: %v", err)
	}
	// More than the bucket holds: no wait can help.
	if err := l.WaitN(ctx, 1000); !errors.Is(err, ErrRejected) {
		t.Fatalf("WaitN over the limit: %v", err)
	}
}

func TestKeyedLimiter(t *testing.T) {
	l := newKeyed(t, KeyedLimiterConfig{Quota: slow(3), MaxKeys: 100})
	for _, key := range []string{"alice", "bob", ""} {
		for i := 0; i < 3; i++ {
			if !l.Allow(key) {
				t.Fatalf("%q take %d", key, i)
			}
		}
		d, err := l.Acquire([]byte(key), 1)
		if err != nil || d.Allowed || d.Reason != ReasonLimited || d.RetryAfter < 59*time.Minute {
			t.Fatalf("%q over: %+v %v", key, d, err)
		}
	}
	if n, _ := l.Len(); n != 3 {
		t.Fatalf("Len %d", n)
	}
	st, err := l.Stats()
	if err != nil || st.Keys != 3 || st.Capacity < 100 {
		t.Fatalf("stats %+v %v", st, err)
	}
	if n, err := l.Reclaim(); err != nil || n != 0 {
		t.Fatalf("Reclaim of live keys = %d %v", n, err)
	}
	// A key whose bucket refilled is reclaimable without changing answers.
	fast := newKeyed(t, KeyedLimiterConfig{Quota: Quota{Count: 1000, Period: time.Millisecond}, Clock: ClockPrecise})
	_ = fast.Allow("k")
	time.Sleep(5 * time.Millisecond)
	if n, _ := fast.Reclaim(); n != 1 {
		t.Fatalf("Reclaim = %d", n)
	}
}

func TestKeyedLimiterTableFull(t *testing.T) {
	deny := newKeyed(t, KeyedLimiterConfig{Quota: slow(5), MaxKeys: 2, Shards: 1})
	_ = deny.Allow("a")
	_ = deny.Allow("b")
	d, _ := deny.AcquireString("c", 1)
	if d.Allowed || d.Reason != ReasonTableFull {
		t.Fatalf("deny policy: %+v", d)
	}
	if err := deny.Wait(context.Background(), "c"); !errors.Is(err, ErrRejected) {
		t.Fatalf("Wait on a full table: %v", err)
	}
	allow := newKeyed(t, KeyedLimiterConfig{Quota: slow(5), MaxKeys: 2, Shards: 1, FullPolicy: FullAllowUntracked})
	_ = allow.Allow("a")
	_ = allow.Allow("b")
	if d, _ := allow.AcquireString("c", 1); !d.Allowed || d.Reason != ReasonUntracked {
		t.Fatalf("allow-untracked policy: %+v", d)
	}
	if st, _ := allow.Stats(); st.AllowedUntracked != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// Allow takes exactly what Acquire(1) takes (it answers through
// rsl_limiter_check): a bucket of 5 on a slow refill grants 5, then nothing,
// and the tokens it took are gone for Acquire too.
func TestAllowTakesWhatAcquireTakes(t *testing.T) {
	l := newLimiter(t, LimiterConfig{Quota: slow(5)})
	for i := 0; i < 3; i++ {
		if !l.Allow() {
			t.Fatalf("Allow %d denied", i)
		}
	}
	if d, _ := l.Acquire(2); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after 3 Allow, Acquire(2): %+v", d)
	}
	if l.Allow() {
		t.Fatal("Allow on an empty bucket")
	}
	k := newKeyed(t, KeyedLimiterConfig{Quota: slow(2), MaxKeys: 1, Shards: 1})
	if !k.Allow("a") || !k.Allow("a") || k.Allow("a") {
		t.Fatal("keyed Allow: 2 tokens, then none")
	}
	if d, _ := k.AcquireString("a", 1); d.Allowed || d.Reason != ReasonLimited {
		t.Fatalf("keyed Acquire after Allow: %+v", d)
	}
	if k.Allow("b") {
		t.Fatal("keyed Allow on a full table with the deny policy")
	}
}

func TestKeyedLimiterBadArguments(t *testing.T) {
	for _, cfg := range []KeyedLimiterConfig{
		{Quota: PerSecond(0)}, {MaxKeys: -1}, {Shards: -2}, {FullPolicy: 5}, {Clock: -1},
		{Shards: 1 << 20},
	} {
		if _, err := NewKeyedLimiter(cfg); !errors.Is(err, ErrInvalidArg) {
			t.Fatalf("%+v: %v", cfg, err)
		}
	}
}

func TestKeyedLimiterManyGoroutinesExactAccounting(t *testing.T) {
	const keys, burst = 20, 50
	l := newKeyed(t, KeyedLimiterConfig{Quota: slow(burst)})
	granted := make([]int64, keys)
	var wg sync.WaitGroup
	for g := 0; g < 12; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			var batch Batch
			var out []Decision
			for round := 0; round < 10; round++ {
				if g%2 == 0 { // half the goroutines one key at a time
					for k := 0; k < keys; k++ {
						if l.Allow(fmt.Sprint("key-", k)) {
							atomic.AddInt64(&granted[k], 1)
						}
					}
					continue
				}
				batch.Reset()
				for k := 0; k < keys; k++ {
					batch.AddString(fmt.Sprint("key-", k))
				}
				var err error
				out, err = l.AcquireMany(&batch, 1, out)
				if err != nil || len(out) != keys {
					t.Errorf("AcquireMany: %d %v", len(out), err)
					return
				}
				for k, d := range out {
					if d.Allowed {
						atomic.AddInt64(&granted[k], 1)
					}
				}
			}
		}(g)
	}
	wg.Wait()
	for k, n := range granted {
		if n != burst {
			t.Fatalf("key %d: %d granted, burst %d", k, n, burst)
		}
	}
}

func TestKeyedAcquireManyMatchesSingleCalls(t *testing.T) {
	a := newKeyed(t, KeyedLimiterConfig{Quota: slow(3)})
	b := newKeyed(t, KeyedLimiterConfig{Quota: slow(3)})
	var batch Batch
	keys := []string{"x", "y", "x", "", "x", "x", "z"}
	for i := 0; i < 300; i++ { // past the 256-key stack array of the C helper
		keys = append(keys, fmt.Sprint(i%7))
	}
	for _, k := range keys {
		batch.AddString(k)
	}
	out, err := a.AcquireMany(&batch, 1, nil)
	if err != nil || len(out) != len(keys) {
		t.Fatal(err)
	}
	for i, k := range keys {
		d, _ := b.AcquireString(k, 1)
		if d.Allowed != out[i].Allowed || d.Remaining != out[i].Remaining || d.Reason != out[i].Reason {
			t.Fatalf("key %d %q: batch %+v, single %+v", i, k, out[i], d)
		}
	}
	var empty Batch
	if out, err := a.AcquireMany(&empty, 1, out); err != nil || len(out) != 0 {
		t.Fatal("empty batch")
	}
	allocs := testing.AllocsPerRun(20, func() { out, _ = a.AcquireMany(&batch, 1, out) })
	if allocs != 0 {
		t.Fatalf("AcquireMany with reused batch and slice allocates %.1f times", allocs)
	}
}

func TestRateLimitMiddleware(t *testing.T) {
	l := newKeyed(t, KeyedLimiterConfig{Quota: Quota{MaxBurst: 1, Count: 1, Period: 10 * time.Second}})
	var calls int64
	h := RateLimitMiddleware(l, RateLimitOptions{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		atomic.AddInt64(&calls, 1)
	}))
	from := func(addr string) *httptestRecorder { return serve(h, addr, "/") }
	r1, r2, r3 := from("10.0.0.1:1000"), from("10.0.0.1:2000"), from("10.0.0.1:3000")
	if r1.Code != 200 || r2.Code != 200 || r3.Code != http.StatusTooManyRequests || calls != 2 {
		t.Fatalf("codes %d %d %d, calls %d", r1.Code, r2.Code, r3.Code, calls)
	}
	if r1.Header().Get("X-RateLimit-Limit") != "2" || r1.Header().Get("X-RateLimit-Remaining") != "1" {
		t.Fatalf("headers %v", r1.Header())
	}
	ra, err := strconv.Atoi(r3.Header().Get("Retry-After"))
	if err != nil || ra < 9 || ra > 10 {
		t.Fatalf("Retry-After %q", r3.Header().Get("Retry-After"))
	}
	if r := from("10.0.0.2:1000"); r.Code != 200 {
		t.Fatalf("another client: %d", r.Code)
	}
	// Cost: a request costing more than the bucket can never pass.
	costly := RateLimitMiddleware(l, RateLimitOptions{
		Key:  func(r *http.Request) string { return "global" },
		Cost: func(r *http.Request) uint64 { return 5 },
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	if r := serve(costly, "1.2.3.4:5", "/"); r.Code != 429 || r.Header().Get("Retry-After") != "" {
		t.Fatalf("cost above the limit: %d %q", r.Code, r.Header().Get("Retry-After"))
	}
	if ClientIP(&http.Request{RemoteAddr: "not-an-addr"}) != "not-an-addr" {
		t.Fatal("ClientIP fallback")
	}
}
