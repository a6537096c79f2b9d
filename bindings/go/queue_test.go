package resilience

import (
	"errors"
	"runtime"
	"sync"
	"testing"
)

func TestMPMCBasics(t *testing.T) {
	q, err := NewMPMC(3)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, c, _ := q.Len(); c != 4 {
		t.Fatalf("capacity %d, want 4 (rounded up)", c)
	}
	for i := uint64(0); i < 4; i++ {
		if err := q.Push(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Push(9); err != ErrFull {
		t.Fatalf("push on full: %v", err)
	}
	if n, _, _ := q.Len(); n != 4 {
		t.Fatalf("len %d", n)
	}
	for i := uint64(0); i < 4; i++ {
		v, ok, err := q.Pop()
		if err != nil || !ok || v != i {
			t.Fatalf("pop %d: %v %v %v", i, v, ok, err)
		}
	}
	if _, ok, err := q.Pop(); ok || err != nil {
		t.Fatalf("pop on empty: %v %v", ok, err)
	}
	// Batches: push stops at the first that does not fit.
	n, err := q.PushMany([]uint64{1, 2, 3, 4, 5, 6})
	if err != nil || n != 4 {
		t.Fatalf("PushMany = %d %v", n, err)
	}
	dst := make([]uint64, 3)
	if n, err := q.PopMany(dst); err != nil || n != 3 || dst[0] != 1 || dst[2] != 3 {
		t.Fatalf("PopMany = %d %v %v", n, err, dst)
	}
	if n, err := q.PopMany(dst); err != nil || n != 1 || dst[0] != 4 {
		t.Fatalf("PopMany = %d %v %v", n, err, dst)
	}
	if n, err := q.PushMany(nil); n != 0 || err != nil {
		t.Fatalf("PushMany(nil) = %d %v", n, err)
	}
	if n, err := q.PopMany(nil); n != 0 || err != nil {
		t.Fatalf("PopMany(nil) = %d %v", n, err)
	}
}

func TestQueueBadArguments(t *testing.T) {
	for _, c := range []int{0, -1, MaxQueueCapacity + 1} {
		if _, err := NewMPMC(c); !errors.Is(err, ErrInvalidArg) {
			t.Fatalf("NewMPMC(%d): %v", c, err)
		}
		if _, _, err := NewSPSC(c); !errors.Is(err, ErrInvalidArg) {
			t.Fatalf("NewSPSC(%d): %v", c, err)
		}
	}
}

func TestMPMCManyGoroutinesExactAccounting(t *testing.T) {
	const producers, consumers, per = 4, 4, 20000
	q, err := NewMPMC(256)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			batch := make([]uint64, 0, 16)
			for i := 0; i < per; {
				if p%2 == 0 { // half the producers push one by one
					if q.Push(uint64(p*per+i)) == nil {
						i++
					} else {
						runtime.Gosched()
					}
					continue
				}
				batch = batch[:0]
				for j := i; j < per && len(batch) < 16; j++ {
					batch = append(batch, uint64(p*per+j))
				}
				n, err := q.PushMany(batch)
				if err != nil {
					t.Error(err)
					return
				}
				i += n
				if n == 0 {
					runtime.Gosched()
				}
			}
		}(p)
	}
	seen := make([][]uint64, consumers)
	var total sync.WaitGroup
	var mu sync.Mutex
	count := 0
	for c := 0; c < consumers; c++ {
		total.Add(1)
		go func(c int) {
			defer total.Done()
			buf := make([]uint64, 8)
			for {
				mu.Lock()
				finished := count == producers*per
				mu.Unlock()
				if finished {
					return
				}
				var got []uint64
				if c%2 == 0 {
					if v, ok, _ := q.Pop(); ok {
						got = []uint64{v}
					}
				} else {
					n, _ := q.PopMany(buf)
					got = buf[:n]
				}
				if len(got) == 0 {
					runtime.Gosched()
					continue
				}
				seen[c] = append(seen[c], got...)
				mu.Lock()
				count += len(got)
				mu.Unlock()
			}
		}(c)
	}
	wg.Wait()
	total.Wait()
	hits := make([]int, producers*per)
	for _, s := range seen {
		for _, v := range s {
			hits[v]++
		}
	}
	for v, h := range hits {
		if h != 1 {
			t.Fatalf("value %d popped %d times", v, h)
		}
	}
	// Per-producer FIFO order as seen by each consumer.
	for c, s := range seen {
		last := make([]int64, producers)
		for i := range last {
			last[i] = -1
		}
		for _, v := range s {
			p := int(v) / per
			if int64(v) <= last[p] {
				t.Fatalf("consumer %d saw producer %d out of order", c, p)
			}
			last[p] = int64(v)
		}
	}
}

func TestSPSCOrderAcrossGoroutines(t *testing.T) {
	const n = 100000
	p, c, err := NewSPSC(64)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		defer p.Close()
		batch := make([]uint64, 0, 32)
		for i := 0; i < n; {
			if i%3 == 0 {
				if p.Push(uint64(i)) == nil {
					i++
				} else {
					runtime.Gosched()
				}
				continue
			}
			batch = batch[:0]
			for j := i; j < n && len(batch) < 32; j++ {
				batch = append(batch, uint64(j))
			}
			k, err := p.PushMany(batch)
			if err != nil {
				t.Error(err)
				return
			}
			i += k
			if k == 0 {
				runtime.Gosched()
			}
		}
	}()
	next := uint64(0)
	buf := make([]uint64, 16)
	for next < n {
		var got []uint64
		if next%2 == 0 {
			if v, ok, err := c.Pop(); err != nil {
				t.Fatal(err)
			} else if ok {
				got = []uint64{v}
			}
		} else {
			k, err := c.PopMany(buf)
			if err != nil {
				t.Fatal(err)
			}
			got = buf[:k]
		}
		if len(got) == 0 {
			runtime.Gosched()
		}
		for _, v := range got {
			if v != next {
				t.Fatalf("got %d, want %d", v, next)
			}
			next++
		}
	}
	if l, err := c.Len(); err != nil || l != 0 {
		t.Fatalf("Len = %d %v", l, err)
	}
}

func TestSPSCDisconnected(t *testing.T) {
	p, c, err := NewSPSC(2)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, capacity, _ := p.Len(); capacity != 2 {
		t.Fatalf("capacity %d", capacity)
	}
	_ = p.Push(1)
	_ = p.Push(2)
	if err := p.Push(3); err != ErrFull {
		t.Fatalf("full: %v", err)
	}
	c.Close()
	if err := p.Push(3); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("after consumer closed: %v", err)
	}
	if _, err := p.PushMany([]uint64{3}); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("PushMany after consumer closed: %v", err)
	}
	// The consumer can still drain after the producer is gone.
	p2, c2, _ := NewSPSC(4)
	_ = p2.Push(7)
	p2.Close()
	if v, ok, err := c2.Pop(); v != 7 || !ok || err != nil {
		t.Fatalf("drain: %v %v %v", v, ok, err)
	}
	c2.Close()
}
