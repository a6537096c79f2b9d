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

// Pop and PopMany size their results by the messages, not by MaxLen: a
// queue of 16 MiB messages holding two bytes allocates about two bytes.
func TestBytesQueueLargeMaxLenSmallMessages(t *testing.T) {
	q, err := NewBytesQueue(8, MaxBytesQueueMessage)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for _, m := range []string{"hi", "there"} {
		if err := q.Push([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := q.PopMany(4096)
	if err != nil || len(got) != 2 || string(got[0]) != "hi" || string(got[1]) != "there" {
		t.Fatalf("PopMany: %q %v", got, err)
	}
	if cap(got[0]) != 2 {
		t.Fatalf("a 2-byte message keeps %d bytes", cap(got[0]))
	}
	q.Push([]byte("x"))
	m, err := q.Pop()
	if err != nil || string(m) != "x" || cap(m) != 1 {
		t.Fatalf("Pop: %q cap %d %v", m, cap(m), err)
	}
	// A message longer than the 64 KiB scratch still comes back whole,
	// through Pop and through PopMany (alone).
	big := make([]byte, 200<<10)
	for i := range big {
		big[i] = byte(i)
	}
	q.Push(big)
	q.Push(big)
	q.Push([]byte("after"))
	if m, err := q.Pop(); err != nil || len(m) != len(big) || m[12345] != big[12345] {
		t.Fatalf("big Pop: %d %v", len(m), err)
	}
	if got, err := q.PopMany(10); err != nil || len(got) != 1 || len(got[0]) != len(big) {
		t.Fatalf("big PopMany: %d %v", len(got), err)
	}
	if got, err := q.PopMany(10); err != nil || len(got) != 1 || string(got[0]) != "after" {
		t.Fatalf("after: %q %v", got, err)
	}
}

// PushMany reports the messages it pushed before a too-large one.
func TestBytesQueuePushManyCountsBeforeTooLarge(t *testing.T) {
	q, _ := NewBytesQueue(8, 4)
	defer q.Close()
	n, err := q.PushMany([][]byte{[]byte("a"), []byte("b"), []byte("toolong"), []byte("c")})
	if n != 2 || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("n=%d err=%v", n, err)
	}
	if l, _, _ := q.Len(); l != 2 {
		t.Fatalf("queued %d", l)
	}
	// Full before reaching the long one: the count says where it stopped.
	f, _ := NewBytesQueue(1, 4)
	defer f.Close()
	if n, err := f.PushMany([][]byte{[]byte("a"), []byte("b"), []byte("toolong")}); n != 1 || err != nil {
		t.Fatalf("full first: n=%d err=%v", n, err)
	}
}
