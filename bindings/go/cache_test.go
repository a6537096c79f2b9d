package resilience

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"
)

func newCache(t testing.TB, cfg CacheConfig) *Cache {
	t.Helper()
	c, err := NewCache(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestCacheBasics(t *testing.T) {
	c := newCache(t, CacheConfig{})
	if _, err := c.Get([]byte("k")); err != ErrNotFound {
		t.Fatalf("miss: %v", err)
	}
	if err := c.Set([]byte("k"), []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if err := c.SetString("k", []byte("v2"), 0); err != nil {
		t.Fatal(err)
	}
	if v, err := c.GetString("k"); err != nil || string(v) != "v2" {
		t.Fatalf("GetString = %q %v", v, err)
	}
	if ok, err := c.Contains([]byte("k")); !ok || err != nil {
		t.Fatalf("Contains = %v %v", ok, err)
	}
	// Empty keys and values are fine.
	if err := c.Set(nil, nil); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get([]byte{}); err != nil || len(v) != 0 {
		t.Fatalf("empty key: %q %v", v, err)
	}
	if n, w, err := c.Len(); err != nil || n != 2 || w != 4 { // "k"+"v2", and the empty entry weighs 1
		t.Fatalf("Len = %d %d %v", n, w, err)
	}
	if ok, err := c.Delete([]byte("k")); !ok || err != nil {
		t.Fatalf("Delete = %v %v", ok, err)
	}
	if ok, err := c.Delete([]byte("k")); ok || err != nil {
		t.Fatalf("Delete again = %v %v", ok, err)
	}
	s, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.Hits != 2 || s.Misses != 1 || s.Inserts != 2 || s.Updates != 1 || s.Entries != 1 {
		t.Fatalf("stats %+v", s)
	}
	if err := c.Clear(); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := c.Len(); n != 0 {
		t.Fatalf("after Clear: %d", n)
	}
}

func TestCacheAppendGetGrowsAndReusesBuffer(t *testing.T) {
	c := newCache(t, CacheConfig{})
	big := bytes.Repeat([]byte("x"), 100<<10) // beyond the 16 KiB scratch
	if err := c.Set([]byte("big"), big); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get([]byte("big")); err != nil || !bytes.Equal(v, big) {
		t.Fatalf("Get big: %d %v", len(v), err)
	}
	dst := []byte("prefix:")
	out, ok, err := c.AppendGet(dst, []byte("big"))
	if err != nil || !ok || !bytes.Equal(out[:7], []byte("prefix:")) || !bytes.Equal(out[7:], big) {
		t.Fatalf("AppendGet grow: %d %v %v", len(out), ok, err)
	}
	_ = c.Set([]byte("s"), []byte("small"))
	buf := make([]byte, 0, 64)
	out, ok, err = c.AppendGetString(buf, "s")
	if err != nil || !ok || string(out) != "small" || &out[0] != &buf[:1][0] {
		t.Fatal("AppendGet did not reuse the spare capacity")
	}
	if out, ok, err := c.AppendGet(buf, []byte("absent")); ok || err != nil || len(out) != 0 {
		t.Fatal("absent key changed dst")
	}
	key := []byte("s")
	allocs := testing.AllocsPerRun(100, func() { _, _, _ = c.AppendGet(buf, key) })
	if allocs != 0 {
		t.Fatalf("AppendGet allocates %.1f times per call", allocs)
	}
}

// Get sizes its one allocation from the last value it returned: values that
// grow, shrink and vary must still come back whole and exact, and results
// must not share memory.
func TestCacheGetAcrossValueSizes(t *testing.T) {
	c := newCache(t, CacheConfig{})
	sizes := []int{0, 1, 15, 16, 17, 100, 5000, 3, 70000, 2, 2, 64, 1 << 20, 9}
	for i, n := range sizes {
		key := []byte(fmt.Sprintf("k%d", i))
		val := bytes.Repeat([]byte{byte('a' + i)}, n)
		if err := c.Set(key, val); err != nil {
			t.Fatal(err)
		}
	}
	var prev []byte
	for round := 0; round < 3; round++ {
		for i, n := range sizes {
			v, err := c.Get([]byte(fmt.Sprintf("k%d", i)))
			want := bytes.Repeat([]byte{byte('a' + i)}, n)
			if err != nil || !bytes.Equal(v, want) {
				t.Fatalf("round %d, size %d: got %d bytes, %v", round, n, len(v), err)
			}
			if len(prev) > 0 && len(v) > 0 && &prev[0] == &v[0] {
				t.Fatal("two Get results share memory")
			}
			// A small value never keeps a large buffer alive (the size hint
			// of the previous, larger value must not leak into its capacity).
			if cap(v) > 2*len(v)+64 {
				t.Fatalf("round %d, size %d: capacity %d", round, n, cap(v))
			}
			prev = v
		}
	}
	if _, err := c.Get([]byte("absent")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("absent: %v", err)
	}
}

func TestCacheTTL(t *testing.T) {
	c := newCache(t, CacheConfig{DefaultTTL: 20 * time.Millisecond})
	_ = c.Set([]byte("default"), []byte("1"))
	_ = c.SetWithTTL([]byte("never"), []byte("2"), NoExpiry)
	_ = c.SetWithTTL([]byte("long"), []byte("3"), time.Hour)
	time.Sleep(60 * time.Millisecond)
	if _, err := c.Get([]byte("default")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("default TTL: %v", err)
	}
	for _, k := range []string{"never", "long"} {
		if _, err := c.GetString(k); err != nil {
			t.Fatalf("%s expired: %v", k, err)
		}
	}
	if n, err := c.Sweep(100); err != nil || n > 1 {
		t.Fatalf("Sweep = %d %v", n, err)
	}
	if s, _ := c.Stats(); s.Expirations != 1 {
		t.Fatalf("expirations %d", s.Expirations)
	}
}

func TestCacheBadArguments(t *testing.T) {
	for _, cfg := range []CacheConfig{{Shards: 3}, {Shards: -1}, {DefaultTTL: -1}, {MaxEntries: 4, Shards: 64}} {
		_, err := NewCache(cfg)
		var e *Error
		if !errors.Is(err, ErrInvalidArg) || !errors.As(err, &e) || e.Detail == "" {
			t.Fatalf("%+v: %v", cfg, err)
		}
	}
	c := newCache(t, CacheConfig{MaxWeight: 1 << 10, Shards: 1})
	err := c.Set([]byte("k"), make([]byte, 2<<10))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("entry above the budget: %v", err)
	}
}

func TestCacheManyGoroutinesExactAccounting(t *testing.T) {
	const goroutines, keys, rounds = 8, 200, 20
	c := newCache(t, CacheConfig{})
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			buf := make([]byte, 0, 64)
			for r := 0; r < rounds; r++ {
				for k := 0; k < keys; k++ {
					key := fmt.Sprintf("g%d-k%d", g, k)
					if r == 0 {
						if err := c.SetString(key, []byte(key+"-v"), 0); err != nil {
							t.Error(err)
							return
						}
					}
					v, ok, err := c.AppendGetString(buf, key)
					if err != nil || !ok || string(v) != key+"-v" {
						t.Errorf("%s: %q %v %v", key, v, ok, err)
						return
					}
					if _, ok, _ := c.AppendGetString(buf, key+"-absent"); ok {
						t.Errorf("%s-absent found", key)
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	s, _ := c.Stats()
	if s.Hits != goroutines*keys*rounds || s.Misses != goroutines*keys*rounds || s.Entries != goroutines*keys {
		t.Fatalf("stats %+v", s)
	}
}

func TestCacheGetMany(t *testing.T) {
	c := newCache(t, CacheConfig{})
	model := map[string][]byte{}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 600; i++ {
		if i%3 == 0 {
			continue
		}
		size := rng.Intn(40)
		if i%50 == 1 {
			size = 5000 // larger than the batch's share of the buffer
		}
		v := make([]byte, size)
		rng.Read(v)
		k := fmt.Sprintf("key-%d", i)
		model[k] = v
		_ = c.SetString(k, v, 0)
	}
	_ = c.Set(nil, []byte("empty key"))
	model[""] = []byte("empty key")
	var b Batch
	for round := 0; round < 3; round++ { // reuse of the batch
		b.Reset()
		var keys []string
		n := []int{5, 300, 600}[round] // 300 and 600 pass the 256-key stack array
		for i := 0; i < n; i++ {
			k := fmt.Sprintf("key-%d", rng.Intn(700))
			if i == 2 {
				k = ""
			}
			keys = append(keys, k)
			b.AddString(k)
		}
		if err := c.GetMany(&b); err != nil {
			t.Fatal(err)
		}
		if b.Len() != n {
			t.Fatalf("Len %d", b.Len())
		}
		for i, k := range keys {
			v, ok := b.Value(i)
			want, present := model[k]
			if ok != present || !bytes.Equal(v, want) || b.Err(i) != nil {
				t.Fatalf("round %d key %q: got %v/%d bytes, want %v/%d", round, k, ok, len(v), present, len(want))
			}
		}
	}
	if _, ok := b.Value(-1); ok {
		t.Fatal("Value(-1)")
	}
	if _, ok := b.Value(1 << 20); ok {
		t.Fatal("Value out of range")
	}
	var empty Batch
	if err := c.GetMany(&empty); err != nil || empty.Len() != 0 {
		t.Fatal("empty batch")
	}
	// Empty keys only: the packed key buffer is empty (NULL pointers with
	// length 0 reach the library).
	var blanks Batch
	blanks.Add(nil)
	blanks.Add([]byte{})
	if err := c.GetMany(&blanks); err != nil {
		t.Fatal(err)
	}
	if v, ok := blanks.Value(1); !ok || string(v) != "empty key" {
		t.Fatalf("blank key: %q %v", v, ok)
	}
	allocs := testing.AllocsPerRun(50, func() { _ = c.GetMany(&b) })
	if allocs != 0 {
		t.Fatalf("GetMany with a reused batch allocates %.1f times", allocs)
	}
}

func TestCacheAgainstModel(t *testing.T) {
	// Random operations against a map (no eviction: the budget is large).
	c := newCache(t, CacheConfig{})
	model := map[string]string{}
	rng := rand.New(rand.NewSource(7))
	for i := 0; i < 20000; i++ {
		k := fmt.Sprintf("k%d", rng.Intn(64))
		switch rng.Intn(4) {
		case 0:
			v := strings.Repeat("v", rng.Intn(100))
			if err := c.SetString(k, []byte(v), 0); err != nil {
				t.Fatal(err)
			}
			model[k] = v
		case 1:
			got, err := c.GetString(k)
			want, ok := model[k]
			if ok != (err == nil) || string(got) != want {
				t.Fatalf("op %d Get %s = %q %v, want %q %v", i, k, got, err, want, ok)
			}
		case 2:
			ok, err := c.Delete([]byte(k))
			_, want := model[k]
			if err != nil || ok != want {
				t.Fatalf("op %d Delete %s = %v, want %v", i, k, ok, want)
			}
			delete(model, k)
		case 3:
			ok, _ := c.Contains([]byte(k))
			if _, want := model[k]; ok != want {
				t.Fatalf("op %d Contains %s = %v", i, k, ok)
			}
		}
	}
	if n, _, _ := c.Len(); n != len(model) {
		t.Fatalf("Len %d, model %d", n, len(model))
	}
}
