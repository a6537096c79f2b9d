package resilience

import (
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"testing"
)

func TestBytesQueueBasics(t *testing.T) {
	q, err := NewBytesQueue(3, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, c, _ := q.Len(); c != 4 || q.MaxLen() != 8 {
		t.Fatalf("capacity %d maxLen %d", c, q.MaxLen())
	}
	for _, m := range []string{"a", "", "12345678", "xy"} {
		if err := q.Push([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Push([]byte("z")); !errors.Is(err, ErrFull) {
		t.Fatalf("full: %v", err)
	}
	small := make([]byte, 0)
	if _, err := q.PopInto(small); !errors.Is(err, ErrEmpty) && err == nil {
		t.Fatal("expected an error")
	}
	for _, want := range []string{"a", "", "12345678", "xy"} {
		got, err := q.Pop()
		if err != nil || string(got) != want {
			t.Fatalf("got %q %v want %q", got, err, want)
		}
	}
	if _, err := q.Pop(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("empty: %v", err)
	}
	if err := q.Push([]byte("123456789")); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	q.Push([]byte("abcdef"))
	if _, err := q.PopInto(make([]byte, 2)); !errors.Is(err, ErrBufferTooSmall) {
		t.Fatalf("small: %v", err)
	}
	buf := make([]byte, 8)
	if n, err := q.PopInto(buf); err != nil || string(buf[:n]) != "abcdef" {
		t.Fatalf("%q %v", buf[:n], err)
	}
}

func TestBytesQueueBatches(t *testing.T) {
	q, _ := NewBytesQueue(4, 5)
	defer q.Close()
	n, err := q.PushMany([][]byte{[]byte("one"), []byte("two"), []byte("three"), {}, []byte("extra")})
	if err != nil || n != 4 {
		t.Fatalf("%d %v", n, err)
	}
	got, err := q.PopMany(10)
	if err != nil || len(got) != 4 || string(got[2]) != "three" || len(got[3]) != 0 {
		t.Fatalf("%q %v", got, err)
	}
	if got, _ := q.PopMany(10); len(got) != 0 {
		t.Fatalf("%q", got)
	}
	q.Close()
	if err := q.Push(nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed: %v", err)
	}
}

func TestBytesQueueConcurrent(t *testing.T) {
	q, _ := NewBytesQueue(16, 16)
	defer q.Close()
	const n = 5000
	var wg sync.WaitGroup
	for p := 0; p < 2; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				m := []byte(fmt.Sprintf("%d:%d", p, i))
				for q.Push(m) != nil {
					runtime.Gosched()
				}
			}
		}(p)
	}
	var got []string
	buf := make([]byte, 16)
	for len(got) < 2*n {
		k, err := q.PopInto(buf)
		if err != nil {
			runtime.Gosched()
			continue
		}
		got = append(got, string(buf[:k]))
	}
	wg.Wait()
	sort.Strings(got)
	var want []string
	for p := 0; p < 2; p++ {
		for i := 0; i < n; i++ {
			want = append(want, fmt.Sprintf("%d:%d", p, i))
		}
	}
	sort.Strings(want)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("at %d: %q != %q", i, got[i], want[i])
		}
	}
}
