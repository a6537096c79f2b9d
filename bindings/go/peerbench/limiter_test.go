package peerbench

import (
	"fmt"
	"sync"
	"testing"

	resilience "github.com/libresilience/libresilience/bindings/go"

	"golang.org/x/time/rate"
)

// A rate high enough that nothing is denied while timing: the benches
// measure the cost of a decision, not a sleep.
const perSecond = 1_000_000_000

var limiterKeys []string

func init() {
	for i := 0; i < nKeys; i++ {
		limiterKeys = append(limiterKeys, fmt.Sprintf("client:%d", i))
	}
}

func BenchmarkLimiterAllow(b *testing.B) {
	b.Run("ours", func(b *testing.B) {
		l, err := resilience.NewLimiter(resilience.LimiterConfig{Quota: resilience.PerSecond(perSecond)})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		if !l.Allow() {
			b.Fatal("denied")
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			l.Allow()
		}
	})
	b.Run("x-time-rate", func(b *testing.B) {
		l := rate.NewLimiter(perSecond, perSecond)
		if !l.Allow() {
			b.Fatal("denied")
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			l.Allow()
		}
	})
}

// The usual Go way to limit per key: a map of x/time/rate limiters under a
// mutex (with no eviction, which the keyed limiter does have).
type keyedRate struct {
	mu sync.Mutex
	m  map[string]*rate.Limiter
}

func (k *keyedRate) Allow(key string) bool {
	k.mu.Lock()
	l, ok := k.m[key]
	if !ok {
		l = rate.NewLimiter(perSecond, perSecond)
		k.m[key] = l
	}
	k.mu.Unlock()
	return l.Allow()
}

func newKeyedOurs(b *testing.B) *resilience.KeyedLimiter {
	l, err := resilience.NewKeyedLimiter(resilience.KeyedLimiterConfig{
		Quota: resilience.PerSecond(perSecond), MaxKeys: 4 * nKeys})
	if err != nil {
		b.Fatal(err)
	}
	for _, k := range limiterKeys {
		if !l.Allow(k) {
			b.Fatal("denied")
		}
	}
	return l
}

func newKeyedPeer(b *testing.B) *keyedRate {
	k := &keyedRate{m: map[string]*rate.Limiter{}}
	for _, key := range limiterKeys {
		if !k.Allow(key) {
			b.Fatal("denied")
		}
	}
	return k
}

func BenchmarkKeyedAllow(b *testing.B) {
	b.Run("ours", func(b *testing.B) {
		l := newKeyedOurs(b)
		defer l.Close()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			l.Allow(limiterKeys[i%nKeys])
		}
	})
	b.Run("x-time-rate-map", func(b *testing.B) {
		k := newKeyedPeer(b)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			k.Allow(limiterKeys[i%nKeys])
		}
	})
}

// ns/op is per key.
func BenchmarkKeyedAllowBatch64(b *testing.B) {
	b.Run("ours/AcquireMany", func(b *testing.B) {
		l := newKeyedOurs(b)
		defer l.Close()
		var batch resilience.Batch
		var out []resilience.Decision
		for j := 0; j < batchSize; j++ {
			batch.AddString(limiterKeys[j])
		}
		out, err := l.AcquireMany(&batch, 1, out)
		if err != nil || len(out) != batchSize || !out[batchSize-1].Allowed {
			b.Fatal("AcquireMany", err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i += batchSize {
			batch.Reset()
			base := i % (nKeys - batchSize)
			for j := 0; j < batchSize; j++ {
				batch.AddString(limiterKeys[base+j])
			}
			out, _ = l.AcquireMany(&batch, 1, out)
		}
	})
	b.Run("x-time-rate-map", func(b *testing.B) {
		k := newKeyedPeer(b)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i += batchSize {
			base := i % (nKeys - batchSize)
			for j := 0; j < batchSize; j++ {
				k.Allow(limiterKeys[base+j])
			}
		}
	})
}

func BenchmarkKeyedAllowParallel(b *testing.B) {
	b.Run("ours", func(b *testing.B) {
		l := newKeyedOurs(b)
		defer l.Close()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				l.Allow(limiterKeys[i%nKeys])
				i++
			}
		})
	})
	b.Run("ours/AcquireMany64", func(b *testing.B) {
		l := newKeyedOurs(b)
		defer l.Close()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			var batch resilience.Batch
			var out []resilience.Decision
			i := 0
			for pb.Next() {
				batch.AddString(limiterKeys[i%nKeys])
				i++
				if batch.Len() == batchSize {
					out, _ = l.AcquireMany(&batch, 1, out)
					batch.Reset()
				}
			}
		})
	})
	b.Run("x-time-rate-map", func(b *testing.B) {
		k := newKeyedPeer(b)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				k.Allow(limiterKeys[i%nKeys])
				i++
			}
		})
	})
}
