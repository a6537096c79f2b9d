package peerbench

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	resilience "github.com/libresilience/libresilience/bindings/go"

	"github.com/dgraph-io/ristretto"
	lru "github.com/hashicorp/golang-lru"
)

const (
	nKeys     = 10000
	valueSize = 32
	batchSize = 64
)

var (
	keys   [][]byte
	skeys  []string
	values [][]byte
)

func init() {
	for i := 0; i < nKeys; i++ {
		k := fmt.Sprintf("user:%08d", i)
		keys = append(keys, []byte(k))
		skeys = append(skeys, k)
		values = append(values, bytes.Repeat([]byte{byte(i)}, valueSize))
	}
}

func newOurs(b *testing.B) *resilience.Cache {
	c, err := resilience.NewCache(resilience.CacheConfig{MaxEntries: 4 * nKeys})
	if err != nil {
		b.Fatal(err)
	}
	for i := range keys {
		if err := c.Set(keys[i], values[i]); err != nil {
			b.Fatal(err)
		}
	}
	for i := range keys { // checked before timing
		v, err := c.Get(keys[i])
		if err != nil || !bytes.Equal(v, values[i]) {
			b.Fatalf("ours: key %d: %v", i, err)
		}
	}
	return c
}

func newLRU(b *testing.B) *lru.Cache {
	c, err := lru.New(4 * nKeys)
	if err != nil {
		b.Fatal(err)
	}
	for i := range keys {
		c.Add(skeys[i], values[i])
	}
	for i := range keys {
		v, ok := c.Get(skeys[i])
		if !ok || !bytes.Equal(v.([]byte), values[i]) {
			b.Fatalf("lru: key %d", i)
		}
	}
	return c
}

func newRistretto(b *testing.B) *ristretto.Cache {
	c, err := ristretto.NewCache(&ristretto.Config{NumCounters: 40 * nKeys, MaxCost: 4 * nKeys, BufferItems: 64})
	if err != nil {
		b.Fatal(err)
	}
	// Sets go through ristretto's buffers and may be dropped under
	// contention: retry until every key is readable.
	for round := 0; round < 100; round++ {
		missing := 0
		for i := range keys {
			if v, ok := c.Get(skeys[i]); !ok || !bytes.Equal(v.([]byte), values[i]) {
				missing++
				c.Set(skeys[i], values[i], 1)
			}
		}
		if missing == 0 {
			return c
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Fatal("ristretto never held every key")
	return nil
}

// Single reads: one call per key.
func BenchmarkCacheGet(b *testing.B) {
	b.Run("ours/Get", func(b *testing.B) {
		c := newOurs(b)
		defer c.Close()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := c.Get(keys[i%nKeys]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ours/AppendGet", func(b *testing.B) {
		c := newOurs(b)
		defer c.Close()
		buf := make([]byte, 0, 256)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, ok, _ := c.AppendGet(buf, keys[i%nKeys]); !ok {
				b.Fatal("miss")
			}
		}
	})
	b.Run("hashicorp-lru", func(b *testing.B) {
		c := newLRU(b)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, ok := c.Get(skeys[i%nKeys]); !ok {
				b.Fatal("miss")
			}
		}
	})
	b.Run("ristretto", func(b *testing.B) {
		c := newRistretto(b)
		defer c.Close()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			c.Get(skeys[i%nKeys]) // may miss: ristretto drops under load
		}
	})
}

// Batched reads: ns/op is per key. The peers have no batch call, so their
// per-key cost is the single call's.
func BenchmarkCacheGetBatch64(b *testing.B) {
	b.Run("ours/GetMany", func(b *testing.B) {
		c := newOurs(b)
		defer c.Close()
		var batch resilience.Batch
		for j := 0; j < batchSize; j++ {
			batch.Add(keys[j])
		}
		if err := c.GetMany(&batch); err != nil {
			b.Fatal(err)
		}
		for j := 0; j < batchSize; j++ {
			if v, ok := batch.Value(j); !ok || !bytes.Equal(v, values[j]) {
				b.Fatalf("batch key %d", j)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i += batchSize {
			batch.Reset()
			base := i % (nKeys - batchSize)
			for j := 0; j < batchSize; j++ {
				batch.Add(keys[base+j])
			}
			if err := c.GetMany(&batch); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hashicorp-lru", func(b *testing.B) {
		c := newLRU(b)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i += batchSize {
			base := i % (nKeys - batchSize)
			for j := 0; j < batchSize; j++ {
				c.Get(skeys[base+j])
			}
		}
	})
	b.Run("ristretto", func(b *testing.B) {
		c := newRistretto(b)
		defer c.Close()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i += batchSize {
			base := i % (nKeys - batchSize)
			for j := 0; j < batchSize; j++ {
				c.Get(skeys[base+j])
			}
		}
	})
}

// Reads from every core at once (b.RunParallel).
func BenchmarkCacheGetParallel(b *testing.B) {
	b.Run("ours/AppendGet", func(b *testing.B) {
		c := newOurs(b)
		defer c.Close()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, 0, 256)
			i := 0
			for pb.Next() {
				c.AppendGet(buf, keys[i%nKeys])
				i++
			}
		})
	})
	b.Run("ours/GetMany64", func(b *testing.B) {
		c := newOurs(b)
		defer c.Close()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			var batch resilience.Batch
			i := 0
			for pb.Next() {
				batch.Add(keys[i%nKeys])
				i++
				if batch.Len() == batchSize {
					c.GetMany(&batch)
					batch.Reset()
				}
			}
		})
	})
	b.Run("hashicorp-lru", func(b *testing.B) {
		c := newLRU(b)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				c.Get(skeys[i%nKeys])
				i++
			}
		})
	})
	b.Run("ristretto", func(b *testing.B) {
		c := newRistretto(b)
		defer c.Close()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				c.Get(skeys[i%nKeys])
				i++
			}
		})
	})
}

func BenchmarkCacheSet(b *testing.B) {
	b.Run("ours", func(b *testing.B) {
		c := newOurs(b)
		defer c.Close()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := c.Set(keys[i%nKeys], values[i%nKeys]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hashicorp-lru", func(b *testing.B) {
		c := newLRU(b)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			c.Add(skeys[i%nKeys], values[i%nKeys])
		}
	})
	b.Run("ristretto", func(b *testing.B) {
		c := newRistretto(b)
		defer c.Close()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			c.Set(skeys[i%nKeys], values[i%nKeys], 1)
		}
	})
}
