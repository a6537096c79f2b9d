package resilience

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func newStore(t testing.TB, cfg IdempotencyConfig) *IdempotencyStore {
	t.Helper()
	s, err := NewIdempotencyStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestIdempotencyLifecycle(t *testing.T) {
	s := newStore(t, IdempotencyConfig{})
	key, fp := []byte("order-1"), []byte("fp")
	r, err := s.Begin(key, fp, time.Minute)
	if err != nil || r.State != Started || r.Token == 0 {
		t.Fatalf("first Begin = %+v %v", r, err)
	}
	r2, err := s.Begin(key, fp, time.Minute)
	if err != nil || r2.State != InProgress || r2.RetryAfter <= 0 || r2.RetryAfter > time.Minute {
		t.Fatalf("second Begin = %+v %v", r2, err)
	}
	if _, err := s.Begin(key, []byte("other"), time.Minute); err != ErrMismatch {
		t.Fatalf("other fingerprint: %v", err)
	}
	if err := s.Complete(key, r.Token+1, []byte("x")); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("wrong token: %v", err)
	}
	if err := s.Complete(key, r.Token, []byte("response")); err != nil {
		t.Fatal(err)
	}
	r3, err := s.Begin(key, fp, time.Minute)
	if err != nil || r3.State != Completed || string(r3.Response) != "response" {
		t.Fatalf("replay = %+v %v", r3, err)
	}
	if err := s.Complete(key, r.Token, []byte("again")); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("complete twice: %v", err)
	}
	if err := s.Abandon([]byte("never"), 1); err != ErrNotFound {
		t.Fatalf("abandon unknown: %v", err)
	}
	if err := s.Complete([]byte("never"), 1, nil); err != ErrNotFound {
		t.Fatalf("complete unknown: %v", err)
	}
	st, err := s.Stats()
	if err != nil || st.Started != 1 || st.Replays != 1 || st.InProgress != 1 || st.Mismatches != 1 ||
		st.Completed != 1 || st.Records != 1 {
		t.Fatalf("stats %+v %v", st, err)
	}
	if Completed.String() != "completed" || BeginState(9).String() != "BeginState(9)" {
		t.Fatal("state names")
	}
}

func TestIdempotencyAbandonAndTakeover(t *testing.T) {
	s := newStore(t, IdempotencyConfig{})
	r, _ := s.Begin([]byte("k"), nil, time.Minute)
	if err := s.Abandon([]byte("k"), r.Token); err != nil {
		t.Fatal(err)
	}
	r2, err := s.Begin([]byte("k"), nil, 5*time.Millisecond)
	if err != nil || r2.State != Started {
		t.Fatalf("after abandon: %+v %v", r2, err)
	}
	time.Sleep(20 * time.Millisecond)
	r3, err := s.Begin([]byte("k"), nil, time.Minute)
	if err != nil || r3.State != StartedTakeover || r3.Token == r2.Token {
		t.Fatalf("takeover: %+v %v", r3, err)
	}
	if err := s.Complete([]byte("k"), r2.Token, []byte("late")); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("the old owner completes after a takeover: %v", err)
	}
}

func TestIdempotencyLargeResponseReplay(t *testing.T) {
	s := newStore(t, IdempotencyConfig{})
	big := bytes.Repeat([]byte("r"), 200<<10) // larger than the scratch buffer
	r, _ := s.Begin([]byte("big"), nil, time.Minute)
	if err := s.Complete([]byte("big"), r.Token, big); err != nil {
		t.Fatal(err)
	}
	r2, err := s.Begin([]byte("big"), nil, time.Minute)
	if err != nil || r2.State != Completed || !bytes.Equal(r2.Response, big) {
		t.Fatalf("replay of %d bytes: %v", len(r2.Response), err)
	}
}

func TestIdempotencyBadArguments(t *testing.T) {
	s := newStore(t, IdempotencyConfig{MaxKeyLen: 8, MaxResponseLen: 16})
	if _, err := s.Begin(nil, nil, time.Minute); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("empty key: %v", err)
	}
	if _, err := s.Begin([]byte("k"), nil, 0); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("zero lease: %v", err)
	}
	if _, err := s.Begin([]byte("k"), nil, -time.Second); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("negative lease: %v", err)
	}
	_, err := s.Begin([]byte(strings.Repeat("k", 9)), nil, time.Minute)
	var e *Error
	if !errors.Is(err, ErrTooLarge) || !errors.As(err, &e) || e.Detail == "" {
		t.Fatalf("long key: %v", err)
	}
	if _, err := s.Begin([]byte("k"), make([]byte, 65), time.Minute); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("long fingerprint: %v", err)
	}
	r, _ := s.Begin([]byte("k"), nil, time.Minute)
	if err := s.Complete([]byte("k"), r.Token, make([]byte, 17)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("long response: %v", err)
	}
	for _, cfg := range []IdempotencyConfig{{Shards: 3}, {Retention: -1}, {MaxKeyLen: -1}} {
		if _, err := NewIdempotencyStore(cfg); !errors.Is(err, ErrInvalidArg) {
			t.Fatalf("%+v: %v", cfg, err)
		}
	}
}

func TestIdempotencyRacingBeginsStartOnce(t *testing.T) {
	const goroutines, keys = 16, 50
	s := newStore(t, IdempotencyConfig{})
	var mu sync.Mutex
	started := map[string]int{}
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < keys; k++ {
				key := []byte{byte(k), 'k'}
				r, err := s.Begin(key, []byte("same"), time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if r.State == Started {
					mu.Lock()
					started[string(key)]++
					mu.Unlock()
					if err := s.Complete(key, r.Token, key); err != nil {
						t.Error(err)
					}
				} else if r.State == Completed && !bytes.Equal(r.Response, key) {
					t.Errorf("replayed %q for %q", r.Response, key)
				}
			}
		}()
	}
	wg.Wait()
	if len(started) != keys {
		t.Fatalf("%d keys started", len(started))
	}
	for k, n := range started {
		if n != 1 {
			t.Fatalf("key %q started %d times", k, n)
		}
	}
	st, _ := s.Stats()
	if st.Started != keys || st.Started+st.Replays+st.InProgress != goroutines*keys {
		t.Fatalf("stats %+v", st)
	}
}

func TestIdempotencySweep(t *testing.T) {
	s := newStore(t, IdempotencyConfig{Retention: 5 * time.Millisecond})
	r, _ := s.Begin([]byte("k"), nil, time.Minute)
	_ = s.Complete([]byte("k"), r.Token, []byte("v"))
	time.Sleep(20 * time.Millisecond)
	if n, err := s.Sweep(10); err != nil || n != 1 {
		t.Fatalf("Sweep = %d %v", n, err)
	}
	r2, _ := s.Begin([]byte("k"), nil, time.Minute)
	if r2.State != Started {
		t.Fatalf("after retention: %v", r2.State)
	}
}
