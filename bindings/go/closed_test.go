package resilience

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

// Every method of every type answers ErrClosed after Close (never a crash),
// and Close is idempotent.
func TestEveryMethodAfterClose(t *testing.T) {
	check := func(name string, err error) {
		t.Helper()
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("%s after Close: %v", name, err)
		}
	}
	q, _ := NewMPMC(4)
	q.Close()
	q.Close()
	check("MPMC.Push", q.Push(1))
	_, _, err := q.Pop()
	check("MPMC.Pop", err)
	_, err = q.PushMany([]uint64{1})
	check("MPMC.PushMany", err)
	_, err = q.PopMany(make([]uint64, 1))
	check("MPMC.PopMany", err)
	_, _, err = q.Len()
	check("MPMC.Len", err)

	p, c, _ := NewSPSC(4)
	p.Close()
	p.Close()
	c.Close()
	c.Close()
	check("Producer.Push", p.Push(1))
	_, err = p.PushMany([]uint64{1})
	check("Producer.PushMany", err)
	_, _, err = p.Len()
	check("Producer.Len", err)
	_, _, err = c.Pop()
	check("Consumer.Pop", err)
	_, err = c.PopMany(make([]uint64, 1))
	check("Consumer.PopMany", err)
	_, err = c.Len()
	check("Consumer.Len", err)

	ca, _ := NewCache(CacheConfig{})
	ca.Close()
	ca.Close()
	_, err = ca.Get([]byte("k"))
	check("Cache.Get", err)
	_, err = ca.GetString("k")
	check("Cache.GetString", err)
	_, _, err = ca.AppendGet(nil, []byte("k"))
	check("Cache.AppendGet", err)
	_, _, err = ca.AppendGetString(nil, "k")
	check("Cache.AppendGetString", err)
	check("Cache.Set", ca.Set([]byte("k"), nil))
	check("Cache.SetWithTTL", ca.SetWithTTL([]byte("k"), nil, time.Second))
	check("Cache.SetString", ca.SetString("k", nil, 0))
	_, err = ca.Delete([]byte("k"))
	check("Cache.Delete", err)
	_, err = ca.Contains([]byte("k"))
	check("Cache.Contains", err)
	_, _, err = ca.Len()
	check("Cache.Len", err)
	check("Cache.Clear", ca.Clear())
	_, err = ca.Sweep(1)
	check("Cache.Sweep", err)
	_, err = ca.Stats()
	check("Cache.Stats", err)
	var batch Batch
	batch.AddString("k")
	check("Cache.GetMany", ca.GetMany(&batch))

	b, _ := NewBreaker(BreakerConfig{})
	b.Close()
	b.Close()
	_, err = b.TryAcquire()
	check("Breaker.TryAcquire", err)
	check("Breaker.Record", b.Record(Permit{}, Success, 0))
	ran := false
	check("Breaker.Execute", b.Execute(func() error { ran = true; return nil }))
	if ran {
		t.Fatal("Execute ran fn on a closed breaker")
	}
	_, err = b.State()
	check("Breaker.State", err)
	_, err = b.TransitionTo(StateOpen)
	check("Breaker.TransitionTo", err)
	_, _, err = b.Poll()
	check("Breaker.Poll", err)
	_, err = b.Metrics()
	check("Breaker.Metrics", err)
	_, err = b.TransitionsTo(StateOpen)
	check("Breaker.TransitionsTo", err)
	check("Breaker.OnStateChange", b.OnStateChange(func(Transition) {}))

	r, _ := NewBreakerRegistry(4)
	r.Close()
	r.Close()
	_, err = r.Get("a", BreakerConfig{})
	check("BreakerRegistry.Get", err)
	_, err = r.Find("a")
	check("BreakerRegistry.Find", err)
	_, err = r.Remove("a")
	check("BreakerRegistry.Remove", err)
	_, err = r.Len()
	check("BreakerRegistry.Len", err)

	l, _ := NewLimiter(LimiterConfig{})
	l.Close()
	l.Close()
	_, err = l.Acquire(1)
	check("Limiter.Acquire", err)
	_, err = l.Peek(1)
	check("Limiter.Peek", err)
	if l.Allow() {
		t.Fatal("Limiter.Allow after Close")
	}
	check("Limiter.Reset", l.Reset())
	_, err = l.Quota()
	check("Limiter.Quota", err)
	check("Limiter.Wait", l.Wait(context.Background()))

	kl, _ := NewKeyedLimiter(KeyedLimiterConfig{})
	kl.Close()
	kl.Close()
	_, err = kl.Acquire([]byte("k"), 1)
	check("KeyedLimiter.Acquire", err)
	_, err = kl.AcquireString("k", 1)
	check("KeyedLimiter.AcquireString", err)
	if kl.Allow("k") {
		t.Fatal("KeyedLimiter.Allow after Close")
	}
	check("KeyedLimiter.Wait", kl.Wait(context.Background(), "k"))
	_, err = kl.AcquireMany(&batch, 1, nil)
	check("KeyedLimiter.AcquireMany", err)
	_, err = kl.Reclaim()
	check("KeyedLimiter.Reclaim", err)
	_, err = kl.Len()
	check("KeyedLimiter.Len", err)
	_, err = kl.Stats()
	check("KeyedLimiter.Stats", err)

	bh, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1, MaxWaiters: -1})
	bh.Close()
	bh.Close()
	check("Bulkhead.TryAcquire", bh.TryAcquire())
	check("Bulkhead.Acquire", bh.Acquire(context.Background()))
	check("Bulkhead.Release", bh.Release())
	check("Bulkhead.Execute", bh.Execute(context.Background(), func() error { ran = true; return nil }))
	_, err = bh.Stats()
	check("Bulkhead.Stats", err)

	ad, _ := NewAdaptiveLimiter(AdaptiveConfig{})
	ad.Close()
	ad.Close()
	_, err = ad.TryAcquire()
	check("AdaptiveLimiter.TryAcquire", err)
	check("AdaptiveLimiter.Record", ad.Record(AdaptiveToken{}, AdaptiveSuccess))
	check("AdaptiveLimiter.RecordRTT", ad.RecordRTT(AdaptiveToken{}, AdaptiveSuccess, 0))
	check("AdaptiveLimiter.Execute", ad.Execute(func() error { ran = true; return nil }))
	_, err = ad.Limit()
	check("AdaptiveLimiter.Limit", err)
	_, err = ad.Stats()
	check("AdaptiveLimiter.Stats", err)
	if ran {
		t.Fatal("Execute ran fn on a closed value")
	}

	s, _ := NewIdempotencyStore(IdempotencyConfig{})
	s.Close()
	s.Close()
	_, err = s.Begin([]byte("k"), nil, time.Second)
	check("IdempotencyStore.Begin", err)
	check("IdempotencyStore.Complete", s.Complete([]byte("k"), 1, nil))
	check("IdempotencyStore.Abandon", s.Abandon([]byte("k"), 1))
	_, err = s.Sweep(1)
	check("IdempotencyStore.Sweep", err)
	_, err = s.Stats()
	check("IdempotencyStore.Stats", err)
}

// Handles dropped without Close are freed by their finalizers; churning
// many of them must neither crash nor leak without bound.
func TestFinalizersFreeForgottenHandles(t *testing.T) {
	for i := 0; i < 2000; i++ {
		q, _ := NewMPMC(16)
		_ = q.Push(1) // freed with a payload still queued
		p, c, _ := NewSPSC(16)
		_ = p.Push(1)
		_ = c
		ca, _ := NewCache(CacheConfig{MaxEntries: 64, Shards: 1})
		_ = ca.Set([]byte("k"), []byte("v"))
		b, _ := NewBreaker(BreakerConfig{})
		_ = b.OnStateChange(func(Transition) {}) // its cgo.Handle is deleted by the library's user_free
		s, _ := NewIdempotencyStore(IdempotencyConfig{Shards: 1})
		_, _ = s.Begin([]byte("k"), nil, time.Second)
		l, _ := NewLimiter(LimiterConfig{})
		_ = l.Allow()
		kl, _ := NewKeyedLimiter(KeyedLimiterConfig{MaxKeys: 16, Shards: 1})
		_ = kl.Allow("k")
		bh, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 2})
		_ = bh.TryAcquire() // freed with a permit still held
		ad, _ := NewAdaptiveLimiter(AdaptiveConfig{})
		_, _ = ad.TryAcquire()
		if i%500 == 0 {
			runtime.GC()
		}
	}
	runtime.GC()
	runtime.GC()
}
