package resilience

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestVersionAndABI(t *testing.T) {
	v := Version()
	if strings.Count(v, ".") != 2 {
		t.Fatalf("version %q is not MAJOR.MINOR.PATCH", v)
	}
	if ABIVersion() != HeaderABIVersion {
		t.Fatalf("ABI %d, header %d", ABIVersion(), HeaderABIVersion)
	}
	if Linkage != "static" && Linkage != "shared" {
		t.Fatalf("linkage %q", Linkage)
	}
}

func TestEverySentinelMapsItsStatus(t *testing.T) {
	codes := []Status{StatusNullArg, StatusInvalidArg, StatusBufferTooSmall, StatusTooLarge, StatusFull,
		StatusEmpty, StatusNotFound, StatusRejected, StatusTimeout, StatusNotOwner, StatusMismatch,
		StatusStale, StatusClosed, StatusIO, StatusIOUringUnavailable, StatusEngineState, StatusPanic,
		StatusAlloc, StatusInternal}
	seen := map[error]Status{}
	for _, c := range codes {
		s := sentinelFor(c)
		if s == nil {
			t.Fatalf("no sentinel for %d", c)
		}
		if prev, dup := seen[s]; dup {
			t.Fatalf("statuses %d and %d share a sentinel", prev, c)
		}
		seen[s] = c
		if got := s.(*sentinel).Status(); got != c {
			t.Fatalf("sentinel of %d says %d", c, got)
		}
		err := error(&Error{Op: "op", Status: c, Detail: "detail"})
		if !errors.Is(err, s) {
			t.Fatalf("errors.Is fails for %d", c)
		}
		wrapped := fmt.Errorf("context: %w", err)
		if !errors.Is(wrapped, s) || errors.Is(wrapped, ErrClosed) {
			t.Fatalf("wrapped errors.Is wrong for %d", c)
		}
		if !strings.Contains(err.Error(), "detail") || !strings.Contains(err.Error(), "op") {
			t.Fatalf("message %q lacks op or detail", err.Error())
		}
		if c.String() == "" || strings.Contains(c.String(), "unknown") {
			t.Fatalf("library does not name status %d: %q", c, c.String())
		}
	}
	if !errors.Is(closedErr("x"), ErrClosed) {
		t.Fatal("closedErr is not ErrClosed")
	}
	if sentinelFor(12345) != nil || (&Error{Status: 12345}).Unwrap() != nil {
		t.Fatal("unknown status has a sentinel")
	}
	if !strings.Contains((&Error{Op: "x", Status: 12345}).Error(), "12345") {
		t.Fatal("unknown status not shown")
	}
}

func TestRetryAfterHelper(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", &Error{Op: "x", Status: StatusRejected, RetryAfter: 3 * time.Second})
	if d, ok := RetryAfter(err); !ok || d != 3*time.Second {
		t.Fatalf("RetryAfter = %v %v", d, ok)
	}
	if _, ok := RetryAfter(ErrFull); ok {
		t.Fatal("RetryAfter on a plain sentinel")
	}
	if _, ok := RetryAfter(nil); ok {
		t.Fatal("RetryAfter on nil")
	}
}

func TestPanicInsideLibraryBecomesErrPanic(t *testing.T) {
	err := selfTestPanic()
	if !errors.Is(err, ErrPanic) {
		t.Fatalf("got %v", err)
	}
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(e.Detail, "deliberate panic") {
		t.Fatalf("detail lost: %v", err)
	}
}

func TestLastErrorDetailIsThisCallsDetail(t *testing.T) {
	// Failures with different details from many goroutines: each error
	// carries its own call's message (rsl_last_error is per OS thread, so
	// the binding must read it on the thread that failed).
	done := make(chan error, 16)
	for g := 0; g < 16; g++ {
		go func(g int) {
			for i := 0; i < 200; i++ {
				var err error
				var want string
				if (g+i)%2 == 0 {
					_, err = NewCache(CacheConfig{Shards: 3})
					want = "shard"
				} else {
					_, err = NewBreaker(BreakerConfig{FailureRateThreshold: 150})
					want = "failure"
				}
				var e *Error
				if !errors.As(err, &e) || !strings.Contains(strings.ToLower(e.Detail), want) {
					done <- fmt.Errorf("goroutine %d: %v lacks %q", g, err, want)
					return
				}
			}
			done <- nil
		}(g)
	}
	for g := 0; g < 16; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
