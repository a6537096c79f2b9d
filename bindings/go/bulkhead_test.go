package resilience

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newBulkhead(t testing.TB, cfg BulkheadConfig) *Bulkhead {
	t.Helper()
	b, err := NewBulkhead(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestBulkheadTryAcquireAndRelease(t *testing.T) {
	b := newBulkhead(t, BulkheadConfig{MaxConcurrent: 2})
	if b.TryAcquire() != nil || b.TryAcquire() != nil {
		t.Fatal("two permits")
	}
	if err := b.TryAcquire(); err != ErrRejected {
		t.Fatalf("third: %v", err)
	}
	if err := b.Acquire(context.Background()); err != ErrRejected {
		t.Fatalf("MaxWaiters 0 never waits: %v", err)
	}
	if b.Release() != nil || b.Release() != nil {
		t.Fatal("release")
	}
	if err := b.Release(); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("unmatched release: %v", err)
	}
	s, err := b.Stats()
	if err != nil || s.MaxConcurrent != 2 || s.InFlight != 0 || s.Rejected != 2 || s.InvalidReleases != 1 {
		t.Fatalf("stats %+v %v", s, err)
	}
	for _, cfg := range []BulkheadConfig{{MaxConcurrent: 0}, {MaxConcurrent: -1}, {MaxConcurrent: 1 << 33}} {
		if _, err := NewBulkhead(cfg); !errors.Is(err, ErrInvalidArg) {
			t.Fatalf("%+v: %v", cfg, err)
		}
	}
}

func TestBulkheadAcquireWaitsForRelease(t *testing.T) {
	b := newBulkhead(t, BulkheadConfig{MaxConcurrent: 1, MaxWaiters: -1})
	_ = b.TryAcquire()
	got := make(chan error)
	go func() { got <- b.Acquire(context.Background()) }()
	select {
	case err := <-got:
		t.Fatalf("Acquire did not wait: %v", err)
	case <-time.After(30 * time.Millisecond):
	}
	if s, _ := b.Stats(); s.Waiting != 1 {
		t.Fatalf("waiting %d", s.Waiting)
	}
	start := time.Now()
	_ = b.Release()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > retryPoll/2 {
		t.Logf("woken after %v (Release should wake at once; machine busy?)", d)
	}
	_ = b.Release()
}

func TestBulkheadAcquireCancellationAndWaiterBound(t *testing.T) {
	b := newBulkhead(t, BulkheadConfig{MaxConcurrent: 1, MaxWaiters: 2})
	_ = b.TryAcquire()
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() { errs <- b.Acquire(ctx) }()
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		if s, _ := b.Stats(); s.Waiting == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("waiters never queued")
		}
		time.Sleep(time.Millisecond)
	}
	if err := b.Acquire(context.Background()); !errors.Is(err, ErrFull) {
		t.Fatalf("third waiter: %v", err)
	}
	cancel()
	for i := 0; i < 2; i++ {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled waiter: %v", err)
		}
	}
	if s, _ := b.Stats(); s.Waiting != 0 || s.InFlight != 1 {
		t.Fatalf("after cancel: %+v", s)
	}
	tctx, tcancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer tcancel()
	if err := b.Acquire(tctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout: %v", err)
	}
}

func TestBulkheadManyGoroutinesExactAccounting(t *testing.T) {
	const limit, goroutines, per = 3, 16, 50
	b := newBulkhead(t, BulkheadConfig{MaxConcurrent: limit, MaxWaiters: -1})
	var running, maxSeen, done int64
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				err := b.Execute(context.Background(), func() error {
					n := atomic.AddInt64(&running, 1)
					for {
						m := atomic.LoadInt64(&maxSeen)
						if n <= m || atomic.CompareAndSwapInt64(&maxSeen, m, n) {
							break
						}
					}
					time.Sleep(50 * time.Microsecond)
					atomic.AddInt64(&running, -1)
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				atomic.AddInt64(&done, 1)
			}
		}()
	}
	wg.Wait()
	if done != goroutines*per || maxSeen > limit || maxSeen < 1 {
		t.Fatalf("done %d, max concurrent %d (limit %d)", done, maxSeen, limit)
	}
	if s, _ := b.Stats(); s.InFlight != 0 || s.Waiting != 0 {
		t.Fatalf("leftovers %+v", s)
	}
}

// A goroutine already waiting keeps its place: newcomers that time out
// around it never push it out with ErrFull, and it gets the next permit.
func TestBulkheadWaiterKeepsItsPlace(t *testing.T) {
	b, err := NewBulkhead(BulkheadConfig{MaxConcurrent: 1, MaxWaiters: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res <- b.Acquire(ctx)
	}()
	for {
		if st, _ := b.Stats(); st.Waiting == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	stop := make(chan struct{})
	var full int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Millisecond)
			if err := b.Acquire(ctx); errors.Is(err, ErrFull) {
				atomic.AddInt64(&full, 1)
			} else if err == nil {
				_ = b.Release()
			}
			cancel()
		}
	}()
	// Several retry polls (20 ms each) with newcomers pressing in.
	time.Sleep(150 * time.Millisecond)
	select {
	case err := <-res:
		t.Fatalf("the waiter gave up while waiting: %v", err)
	default:
	}
	if err := b.Release(); err != nil {
		t.Fatal(err)
	}
	if err := <-res; err != nil {
		t.Fatalf("the waiter did not get the permit: %v", err)
	}
	close(stop)
	wg.Wait()
	if atomic.LoadInt64(&full) == 0 {
		t.Fatal("newcomers were never refused: the waiter bound was not exercised")
	}
	_ = b.Release()
}
