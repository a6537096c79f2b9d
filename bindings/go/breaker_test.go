package resilience

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var errBoom = errors.New("boom")

func newBreaker(t testing.TB, cfg BreakerConfig) *Breaker {
	t.Helper()
	b, err := NewBreaker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func smallBreaker() BreakerConfig {
	return BreakerConfig{WindowSize: 4, MinimumCalls: 4, FailureRateThreshold: 50, WaitInOpen: time.Minute,
		PermittedCallsInHalfOpen: 2}
}

func TestBreakerOpensAndRejectsWithRetryAfter(t *testing.T) {
	b := newBreaker(t, smallBreaker())
	for i := 0; i < 4; i++ {
		err := b.Execute(func() error {
			if i%2 == 0 {
				return errBoom
			}
			return nil
		})
		if (i%2 == 0) != errors.Is(err, errBoom) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if s, _ := b.State(); s != StateOpen {
		t.Fatalf("state %v after 50%% failures", s)
	}
	ran := false
	err := b.Execute(func() error { ran = true; return nil })
	if ran || !errors.Is(err, ErrRejected) {
		t.Fatalf("open breaker ran fn or said %v", err)
	}
	d, ok := RetryAfter(err)
	if !ok || d <= 50*time.Second || d > time.Minute {
		t.Fatalf("RetryAfter %v %v", d, ok)
	}
	m, err := b.Metrics()
	if err != nil || m.State != StateOpen || m.Calls != 4 || m.Failed != 2 || m.NotPermitted != 1 || m.FailureRate != 50 {
		t.Fatalf("metrics %+v %v", m, err)
	}
	if n, _ := b.TransitionsTo(StateOpen); n != 1 {
		t.Fatalf("TransitionsTo(open) = %d", n)
	}
}

func TestBreakerHalfOpenAndClose(t *testing.T) {
	b := newBreaker(t, smallBreaker())
	now := monotonicNow()
	for i := 0; i < 4; i++ {
		p, err := b.tryAcquireAt(now)
		if err != nil {
			t.Fatal(err)
		}
		_ = b.recordAt(p, Failure, time.Millisecond, now)
	}
	if _, err := b.tryAcquireAt(now + uint64(59*time.Second)); !errors.Is(err, ErrRejected) {
		t.Fatalf("still open: %v", err)
	}
	later := now + uint64(61*time.Second)
	p1, err1 := b.tryAcquireAt(later)
	p2, err2 := b.tryAcquireAt(later)
	_, err3 := b.tryAcquireAt(later)
	if err1 != nil || err2 != nil || !errors.Is(err3, ErrRejected) {
		t.Fatalf("half-open probes: %v %v %v", err1, err2, err3)
	}
	if d, _ := RetryAfter(err3); d != 0 {
		t.Fatalf("probes in flight: RetryAfter %v, want 0", d)
	}
	_ = b.recordAt(p1, Success, time.Millisecond, later)
	_ = b.recordAt(p2, Success, time.Millisecond, later)
	if s, _ := b.State(); s != StateClosed {
		t.Fatalf("state %v after passing probes", s)
	}
}

func TestBreakerStalePermitAndManualStates(t *testing.T) {
	b := newBreaker(t, BreakerConfig{})
	p, err := b.TryAcquire()
	if err != nil {
		t.Fatal(err)
	}
	gen, err := b.TransitionTo(StateForcedOpen)
	if err != nil || gen != p.Generation()+1 {
		t.Fatalf("TransitionTo = %d %v", gen, err)
	}
	if err := b.Record(p, Success, 0); err != ErrStale {
		t.Fatalf("stale permit: %v", err)
	}
	_, err = b.TryAcquire()
	if d, ok := RetryAfter(err); !errors.Is(err, ErrRejected) || !ok || d < time.Duration(1<<62) {
		t.Fatalf("forced open: %v %v", err, d)
	}
	if _, err := b.TransitionTo(StateDisabled); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		_ = b.Execute(func() error { return errBoom })
	}
	if s, _ := b.State(); s != StateDisabled {
		t.Fatalf("disabled breaker moved to %v", s)
	}
	if _, err := b.TransitionTo(BreakerState(42)); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("unknown state: %v", err)
	}
	if _, err := b.TransitionsTo(BreakerState(-1)); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("unknown state: %v", err)
	}
	p, _ = b.TryAcquire()
	if err := b.Record(p, Outcome(9), 0); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("unknown outcome: %v", err)
	}
	if StateHalfOpen.String() != "half-open" || BreakerState(9).String() != "BreakerState(9)" {
		t.Fatal("state names")
	}
}

func TestBreakerExecutePanicCountsAsFailure(t *testing.T) {
	b := newBreaker(t, BreakerConfig{WindowSize: 2, MinimumCalls: 2})
	for i := 0; i < 2; i++ {
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("panic swallowed")
				}
			}()
			_ = b.Execute(func() error { panic("handler bug") })
		}()
	}
	if s, _ := b.State(); s != StateOpen {
		t.Fatalf("two panics should open the breaker, state %v", s)
	}
}

func TestBreakerClassifyAndSlowCalls(t *testing.T) {
	ignore := errors.New("client error")
	b := newBreaker(t, BreakerConfig{WindowSize: 10, MinimumCalls: 10, SlowCallDuration: time.Millisecond,
		SlowCallRateThreshold: 100,
		Classify: func(err error) Outcome {
			if errors.Is(err, ignore) {
				return Ignored
			}
			if err != nil {
				return Failure
			}
			return Success
		}})
	for i := 0; i < 5; i++ {
		_ = b.Execute(func() error { return ignore })
	}
	if m, _ := b.Metrics(); m.Calls != 0 {
		t.Fatalf("ignored calls counted: %+v", m)
	}
	for i := 0; i < 3; i++ {
		_ = b.Execute(func() error { time.Sleep(3 * time.Millisecond); return nil })
	}
	if m, _ := b.Metrics(); m.Calls != 3 || m.Slow != 3 || m.Failed != 0 {
		t.Fatalf("slow calls: %+v", m)
	}
}

func TestBreakerBadConfig(t *testing.T) {
	for i, cfg := range []BreakerConfig{
		{FailureRateThreshold: 150}, {SlowCallRateThreshold: -1}, {WindowSize: 70000},
		{PermittedCallsInHalfOpen: 5000}, {WindowType: 7}, {WaitInOpen: -time.Second},
		{MinimumCalls: -1}, {WindowType: TimeWindow, WindowSize: 4000},
	} {
		_, err := NewBreaker(cfg)
		var e *Error
		if !errors.Is(err, ErrInvalidArg) || !errors.As(err, &e) || e.Detail == "" {
			t.Fatalf("config %d: %v", i, err)
		}
	}
}

func TestBreakerManyGoroutinesExactAccounting(t *testing.T) {
	// Metrics-only: every call is recorded and the breaker never opens, so
	// the window must hold exactly what the goroutines did.
	const goroutines, per = 16, 500
	b := newBreaker(t, BreakerConfig{WindowSize: 65536, MinimumCalls: 1})
	if _, err := b.TransitionTo(StateMetricsOnly); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var failures int64
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				fail := (g*per+i)%7 == 0
				if fail {
					atomic.AddInt64(&failures, 1)
				}
				err := b.Execute(func() error {
					if fail {
						return errBoom
					}
					return nil
				})
				if fail != (err != nil) {
					t.Errorf("Execute = %v", err)
				}
			}
		}(g)
	}
	wg.Wait()
	m, err := b.Metrics()
	if err != nil || m.Calls != goroutines*per || m.Failed != uint64(failures) || m.State != StateMetricsOnly {
		t.Fatalf("metrics %+v (want %d calls, %d failed) %v", m, goroutines*per, failures, err)
	}
}

func TestBreakerOnStateChange(t *testing.T) {
	b := newBreaker(t, smallBreaker())
	var mu sync.Mutex
	var got []Transition
	if err := b.OnStateChange(func(tr Transition) {
		mu.Lock()
		got = append(got, tr)
		mu.Unlock()
		_, _ = b.State() // calling back into the breaker is allowed
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.OnStateChange(func(Transition) { panic("callback bug") }); err != nil {
		t.Fatal(err)
	}
	if err := b.OnStateChange(nil); !errors.Is(err, ErrNullArg) {
		t.Fatalf("nil callback: %v", err)
	}
	for i := 0; i < 4; i++ {
		_ = b.Execute(func() error { return errBoom })
	}
	_, _ = b.TransitionTo(StateClosed)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].From != StateClosed || got[0].To != StateOpen || got[0].Cause != CauseFailureRate ||
		got[1].To != StateClosed || got[1].Cause != CauseManual || got[1].Generation != got[0].Generation+1 {
		t.Fatalf("transitions %+v", got)
	}
	if d := time.Since(got[0].At); d < 0 || d > time.Minute {
		t.Fatalf("transition time %v ago", d)
	}
}

func TestBreakerPoll(t *testing.T) {
	cfg := smallBreaker()
	cfg.WaitInOpen = 20 * time.Millisecond
	cfg.AutomaticTransition = true
	b := newBreaker(t, cfg)
	if _, pending, err := b.Poll(); pending || err != nil {
		t.Fatalf("closed breaker has a timed transition: %v %v", pending, err)
	}
	_, _ = b.TransitionTo(StateOpen)
	next, pending, err := b.Poll()
	if !pending || err != nil || next > 20*time.Millisecond {
		t.Fatalf("Poll = %v %v %v", next, pending, err)
	}
	time.Sleep(next + 5*time.Millisecond)
	if _, _, err := b.Poll(); err != nil {
		t.Fatal(err)
	}
	if s, _ := b.State(); s != StateHalfOpen {
		t.Fatalf("automatic transition: %v", s)
	}
}

func TestBreakerRegistry(t *testing.T) {
	r, err := NewBreakerRegistry(2)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	a1, err := r.Get("a", smallBreaker())
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := r.Get("a", BreakerConfig{})
	_, _ = a1.TransitionTo(StateForcedOpen)
	if s, _ := a2.State(); s != StateForcedOpen {
		t.Fatal("two handles to one name are not the same breaker")
	}
	if n, _ := r.Len(); n != 1 {
		t.Fatalf("Len %d", n)
	}
	if _, err := r.Find("nope"); err != ErrNotFound {
		t.Fatalf("Find missing: %v", err)
	}
	f, err := r.Find("a")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	// The forced-open "a" is not idle: a third name does not fit.
	b, err := r.Get("b", BreakerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := r.Get("c", BreakerConfig{}); err != nil { // evicts idle "b"
		t.Fatalf("evicting an idle breaker: %v", err)
	}
	_, _ = a1.TransitionTo(StateClosed)
	held, _ := r.Get("c", BreakerConfig{})
	if _, err := r.Get("d", BreakerConfig{}); !errors.Is(err, ErrFull) {
		t.Fatalf("every breaker held by a handle: %v", err)
	}
	held.Close()
	if ok, err := r.Remove("a"); !ok || err != nil {
		t.Fatalf("Remove = %v %v", ok, err)
	}
	if ok, _ := r.Remove("a"); ok {
		t.Fatal("removed twice")
	}
	if s, err := a1.State(); err != nil || s != StateClosed {
		t.Fatal("a removed breaker's handles must keep working")
	}
	if _, err := r.Get("x", BreakerConfig{FailureRateThreshold: 500}); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("bad config: %v", err)
	}
	if _, err := NewBreakerRegistry(0); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("zero entries: %v", err)
	}
	if _, err := NewBreakerRegistry(-5); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("negative entries: %v", err)
	}
}

func TestForgottenBreakerHandleIsReleasedByTheFinalizer(t *testing.T) {
	r, _ := NewBreakerRegistry(1)
	defer r.Close()
	func() {
		b, err := r.Get("held", BreakerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		_ = b // dropped without Close
	}()
	// While the handle lives, "held" cannot be evicted; once the finalizer
	// frees it, a new name fits.
	for i := 0; i < 50; i++ {
		runtime.GC()
		b, err := r.Get(fmt.Sprintf("new%d", i), BreakerConfig{})
		if err == nil {
			b.Close()
			return
		}
		if !errors.Is(err, ErrFull) {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("the finalizer never released the forgotten handle")
}
