package resilience

import (
	"fmt"
	"testing"
	"time"
)

// The floor: one cgo call that does nothing (rsl_abi_version).
func BenchmarkCgoFloor(b *testing.B) {
	for i := 0; i < b.N; i++ {
		_ = ABIVersion()
	}
}

func BenchmarkBreakerTryAcquireRecord(b *testing.B) {
	br := newBreaker(b, BreakerConfig{})
	p, err := br.TryAcquire()
	if err != nil || br.Record(p, Success, time.Microsecond) != nil {
		b.Fatal("breaker refuses a call")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p, _ := br.TryAcquire()
		_ = br.Record(p, Success, time.Microsecond)
	}
}

func BenchmarkBreakerExecute(b *testing.B) {
	br := newBreaker(b, BreakerConfig{})
	fn := func() error { return nil }
	if br.Execute(fn) != nil {
		b.Fatal("breaker refuses a call")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = br.Execute(fn)
	}
}

func BenchmarkBreakerRejectOpen(b *testing.B) {
	br := newBreaker(b, BreakerConfig{})
	_, _ = br.TransitionTo(StateOpen)
	if _, err := br.TryAcquire(); err == nil {
		b.Fatal("open breaker permits")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, _ = br.TryAcquire()
	}
}

func BenchmarkIdempotencyReplay(b *testing.B) {
	s := newStore(b, IdempotencyConfig{})
	key, fp, resp := []byte("order-1"), []byte("fingerprint"), make([]byte, 256)
	r, _ := s.Begin(key, fp, time.Minute)
	_ = s.Complete(key, r.Token, resp)
	if r2, err := s.Begin(key, fp, time.Minute); err != nil || r2.State != Completed {
		b.Fatal("no replay")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, _ = s.Begin(key, fp, time.Minute)
	}
}

func BenchmarkIdempotencyBeginComplete(b *testing.B) {
	s := newStore(b, IdempotencyConfig{Retention: time.Millisecond})
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("key-%d", i))
	}
	resp := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := keys[i%len(keys)]
		r, err := s.Begin(k, nil, time.Minute)
		if err == nil && r.State != InProgress && r.State != Completed {
			_ = s.Complete(k, r.Token, resp)
		}
	}
}

func BenchmarkCacheAppendGetHit(b *testing.B) {
	c := newCache(b, CacheConfig{})
	key := []byte("user:00000001")
	_ = c.Set(key, make([]byte, 32))
	buf := make([]byte, 0, 64)
	if _, ok, _ := c.AppendGet(buf, key); !ok {
		b.Fatal("miss")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, _, _ = c.AppendGet(buf, key)
	}
}

func BenchmarkMPMCPushPop(b *testing.B) {
	q, _ := NewMPMC(1024)
	defer q.Close()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = q.Push(uint64(i))
		_, _, _ = q.Pop()
	}
}
