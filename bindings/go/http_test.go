package resilience

import (
	"bufio"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func do(t *testing.T, h http.Handler, method, path, body string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestBreakerMiddleware(t *testing.T) {
	b := newBreaker(t, BreakerConfig{WindowSize: 4, MinimumCalls: 4, WaitInOpen: 30 * time.Second})
	var calls int64
	failing := true
	h := BreakerMiddleware(b, BreakerOptions{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		atomic.AddInt64(&calls, 1)
		if failing {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	for i := 0; i < 4; i++ {
		if rec := do(t, h, "GET", "/", "", nil); rec.Code != http.StatusBadGateway {
			t.Fatalf("call %d: %d", i, rec.Code)
		}
	}
	rec := do(t, h, "GET", "/", "", nil)
	if rec.Code != http.StatusServiceUnavailable || calls != 4 {
		t.Fatalf("open breaker: %d, handler ran %d times", rec.Code, calls)
	}
	if ra := rec.Header().Get("Retry-After"); ra != "30" {
		t.Fatalf("Retry-After %q", ra)
	}
	_, _ = b.TransitionTo(StateClosed)
	failing = false
	if rec := do(t, h, "GET", "/", "", nil); rec.Code != 200 || rec.Body.String() != "ok" {
		t.Fatalf("closed again: %d %q", rec.Code, rec.Body.String())
	}
	if m, _ := b.Metrics(); m.Calls != 1 || m.Failed != 0 {
		t.Fatalf("a 200 (implicit WriteHeader) must be a success: %+v", m)
	}
	// A forced-open breaker sends no Retry-After (no time is known).
	_, _ = b.TransitionTo(StateForcedOpen)
	if rec := do(t, h, "GET", "/", "", nil); rec.Code != 503 || rec.Header().Get("Retry-After") != "" {
		t.Fatalf("forced open: %d %q", rec.Code, rec.Header().Get("Retry-After"))
	}
}

func TestRetryAfterHeader(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "1", time.Millisecond: "1", time.Second: "1",
		1500 * time.Millisecond: "2", time.Hour: "3600", time.Duration(1<<63 - 1): ""} {
		if got := retryAfterHeader(d); got != want {
			t.Fatalf("%v: %q, want %q", d, got, want)
		}
	}
}

func idemHandler(t *testing.T, s *IdempotencyStore, opts IdempotencyOptions, h http.HandlerFunc) http.Handler {
	t.Helper()
	return IdempotencyMiddleware(s, opts)(h)
}

func TestIdempotencyMiddlewareReplays(t *testing.T) {
	s := newStore(t, IdempotencyConfig{})
	var calls int64
	h := idemHandler(t, s, IdempotencyOptions{}, func(w http.ResponseWriter, r *http.Request) {
		n := atomic.AddInt64(&calls, 1)
		body, _ := io.ReadAll(r.Body) // the middleware read it first; the handler still sees it
		w.Header().Set("X-Order", "42")
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "created "+string(body)+" #"+string(rune('0'+n)))
	})
	key := map[string]string{"Idempotency-Key": "abc"}
	first := do(t, h, "POST", "/orders", "pizza", key)
	if first.Code != 201 || first.Body.String() != "created pizza #1" || first.Header().Get(ReplayedHeader) != "" {
		t.Fatalf("first: %d %q", first.Code, first.Body.String())
	}
	second := do(t, h, "POST", "/orders", "pizza", key)
	if second.Code != 201 || second.Body.String() != "created pizza #1" || calls != 1 {
		t.Fatalf("replay: %d %q, handler ran %d times", second.Code, second.Body.String(), calls)
	}
	if second.Header().Get(ReplayedHeader) != "true" || second.Header().Get("X-Order") != "42" ||
		len(second.Header()["Set-Cookie"]) != 2 {
		t.Fatalf("replayed headers %v", second.Header())
	}
	// Same key, different body or path: 422.
	if rec := do(t, h, "POST", "/orders", "sushi", key); rec.Code != http.StatusUnprocessableEntity {
		t.Fatalf("other body: %d", rec.Code)
	}
	if rec := do(t, h, "POST", "/other", "pizza", key); rec.Code != http.StatusUnprocessableEntity {
		t.Fatalf("other path: %d", rec.Code)
	}
	// No key, or a safe method: straight through.
	do(t, h, "POST", "/orders", "pizza", nil)
	do(t, h, "GET", "/orders", "", key)
	if calls != 3 {
		t.Fatalf("pass-through calls: %d", calls)
	}
}

func TestIdempotencyMiddlewareInProgress(t *testing.T) {
	s := newStore(t, IdempotencyConfig{})
	entered, release := make(chan struct{}), make(chan struct{})
	h := idemHandler(t, s, IdempotencyOptions{Lease: 10 * time.Second}, func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "done")
	})
	key := map[string]string{"Idempotency-Key": "slow"}
	var wg sync.WaitGroup
	wg.Add(1)
	var first *httptest.ResponseRecorder
	go func() {
		defer wg.Done()
		first = do(t, h, "POST", "/", "x", key)
	}()
	<-entered
	rec := do(t, h, "POST", "/", "x", key)
	if rec.Code != http.StatusConflict {
		t.Fatalf("in progress: %d", rec.Code)
	}
	if ra, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || ra < 1 || ra > 10 {
		t.Fatalf("Retry-After %q", ra)
	}
	close(release)
	wg.Wait()
	if first.Code != 200 || first.Body.String() != "done" {
		t.Fatalf("first: %d %q", first.Code, first.Body.String())
	}
	if rec := do(t, h, "POST", "/", "x", key); rec.Code != 200 || rec.Body.String() != "done" {
		t.Fatalf("after: %d %q", rec.Code, rec.Body.String())
	}
}

func TestIdempotencyMiddlewareReleasesOnServerErrorAndPanic(t *testing.T) {
	s := newStore(t, IdempotencyConfig{})
	var calls int64
	h := idemHandler(t, s, IdempotencyOptions{}, func(w http.ResponseWriter, r *http.Request) {
		switch atomic.AddInt64(&calls, 1) {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			panic("handler bug")
		default:
			_, _ = io.WriteString(w, "third time lucky")
		}
	})
	key := map[string]string{"Idempotency-Key": "retry-me"}
	if rec := do(t, h, "PUT", "/", "", key); rec.Code != 503 {
		t.Fatalf("first: %d", rec.Code)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic swallowed")
			}
		}()
		do(t, h, "PUT", "/", "", key)
	}()
	if rec := do(t, h, "PUT", "/", "", key); rec.Code != 200 || rec.Body.String() != "third time lucky" {
		t.Fatalf("third: %d %q", rec.Code, rec.Body.String())
	}
	if rec := do(t, h, "PUT", "/", "", key); rec.Body.String() != "third time lucky" || calls != 3 {
		t.Fatalf("replay after success: %q, %d calls", rec.Body.String(), calls)
	}
}

func TestIdempotencyMiddlewareLimits(t *testing.T) {
	s := newStore(t, IdempotencyConfig{MaxKeyLen: 16})
	var calls int64
	h := idemHandler(t, s, IdempotencyOptions{MaxBodyBytes: 8, MaxResponseBytes: 32,
		Scope: func(r *http.Request, key string) string { return r.Header.Get("X-User") + ":" + key }},
		func(w http.ResponseWriter, r *http.Request) {
			atomic.AddInt64(&calls, 1)
			_, _ = io.WriteString(w, strings.Repeat("z", 20))
			_, _ = io.WriteString(w, strings.Repeat("z", 20)) // 40 bytes: too large to store
		})
	if rec := do(t, h, "POST", "/", "123456789", map[string]string{"Idempotency-Key": "k"}); rec.Code != 413 {
		t.Fatalf("large body: %d", rec.Code)
	}
	if rec := do(t, h, "POST", "/", "", map[string]string{"Idempotency-Key": strings.Repeat("k", 40)}); rec.Code != 400 {
		t.Fatalf("long key: %d", rec.Code)
	}
	// A response above MaxResponseBytes is delivered but not stored.
	for i := 0; i < 2; i++ {
		rec := do(t, h, "POST", "/", "", map[string]string{"Idempotency-Key": "k", "X-User": "u1"})
		if rec.Code != 200 || rec.Body.Len() != 40 {
			t.Fatalf("big response: %d %d", rec.Code, rec.Body.Len())
		}
	}
	if calls != 2 {
		t.Fatalf("unstored response should run again: %d calls", calls)
	}
	st, _ := s.Stats()
	if st.Records != 0 || st.Abandoned != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestIdempotencyMiddlewareScope(t *testing.T) {
	s := newStore(t, IdempotencyConfig{})
	h := idemHandler(t, s, IdempotencyOptions{
		Scope: func(r *http.Request, key string) string { return r.Header.Get("X-User") + ":" + key }},
		func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.Header.Get("X-User")) })
	for _, user := range []string{"u1", "u2", "u1"} {
		rec := do(t, h, "POST", "/", "", map[string]string{"Idempotency-Key": "k", "X-User": user})
		if rec.Body.String() != user {
			t.Fatalf("user %s got %q: scopes leak", user, rec.Body.String())
		}
	}
	if st, _ := s.Stats(); st.Records != 2 || st.Replays != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestEncodeDecodeResponse(t *testing.T) {
	h := http.Header{"A": {"1", "2"}, "Empty": {}, "B": {""}}
	rec := EncodeResponse(418, h, []byte("teapot"))
	status, h2, body, err := DecodeResponse(rec)
	if err != nil || status != 418 || string(body) != "teapot" || len(h2) != 3 || h2.Get("A") != "1" ||
		len(h2["A"]) != 2 || len(h2["Empty"]) != 0 {
		t.Fatalf("round trip: %d %v %q %v", status, h2, body, err)
	}
	for _, bad := range [][]byte{nil, {0}, {0, 50, 0, 0, 0, 0}, {1, 144, 255, 255, 255, 255}, rec[:9]} {
		if _, _, _, err := DecodeResponse(bad); err == nil {
			t.Fatalf("%v decoded", bad)
		}
	}
}

type httptestRecorder = httptest.ResponseRecorder

func serve(h http.Handler, remote, path string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", path, nil)
	req.RemoteAddr = remote
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// A 1xx interim response (103 Early Hints) is passed on; the final status
// is the one the breaker records and the idempotency store keeps.
func TestMiddlewaresLookPastInterimResponses(t *testing.T) {
	b := newBreaker(t, BreakerConfig{WindowSize: 4, MinimumCalls: 4, WaitInOpen: 30 * time.Second})
	h := BreakerMiddleware(b, BreakerOptions{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	for i := 0; i < 4; i++ {
		do(t, h, "GET", "/", "", nil)
	}
	if m, _ := b.Metrics(); m.Failed != 4 {
		t.Fatalf("the 500s after 103 were counted as %d failures", m.Failed)
	}
	s := newStore(t, IdempotencyConfig{})
	ih := idemHandler(t, s, IdempotencyOptions{}, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set("X-Final", "yes")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "made")
	})
	key := map[string]string{"Idempotency-Key": "hints"}
	do(t, ih, "POST", "/", "", key)
	replay := do(t, ih, "POST", "/", "", key)
	if replay.Code != http.StatusCreated || replay.Header().Get("X-Final") != "yes" || replay.Body.String() != "made" {
		t.Fatalf("replay: %d %v %q", replay.Code, replay.Header(), replay.Body.String())
	}
}

// Headers that outer middleware set (rate-limit counters) are not stored
// with the response: a replay shows the current request's values.
func TestIdempotencyReplayKeepsOuterHeaders(t *testing.T) {
	s := newStore(t, IdempotencyConfig{})
	n := 0
	inner := idemHandler(t, s, IdempotencyOptions{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Order", "42")
		w.WriteHeader(http.StatusCreated)
	})
	outer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(100-n))
		inner.ServeHTTP(w, r)
	})
	key := map[string]string{"Idempotency-Key": "outer"}
	do(t, outer, "POST", "/", "", key)
	replay := do(t, outer, "POST", "/", "", key)
	if replay.Header().Get("X-RateLimit-Remaining") != "98" || replay.Header().Get("X-Order") != "42" {
		t.Fatalf("replayed headers %v", replay.Header())
	}
}

// "No limit" as MaxInt64 still reads the body (it overflowed to nothing).
func TestIdempotencyUnlimitedBody(t *testing.T) {
	s := newStore(t, IdempotencyConfig{})
	h := idemHandler(t, s, IdempotencyOptions{MaxBodyBytes: math.MaxInt64}, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_, _ = io.WriteString(w, "got:"+string(body))
	})
	key := map[string]string{"Idempotency-Key": "big"}
	if rec := do(t, h, "POST", "/", "payload", key); rec.Body.String() != "got:payload" {
		t.Fatalf("first: %q", rec.Body.String())
	}
	if rec := do(t, h, "POST", "/", "other", key); rec.Code != http.StatusUnprocessableEntity {
		t.Fatalf("another body under the same key: %d", rec.Code)
	}
}

// hijackRecorder is a ResponseRecorder that can be hijacked.
type hijackRecorder struct {
	*httptest.ResponseRecorder
	hijacked bool
}

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h.hijacked = true
	a, b := net.Pipe()
	_ = b.Close()
	return a, bufio.NewReadWriter(bufio.NewReader(a), bufio.NewWriter(a)), nil
}

// Upgrades work behind both middlewares; a hijacked response is not stored.
func TestMiddlewaresPassHijackThrough(t *testing.T) {
	b := newBreaker(t, BreakerConfig{})
	s := newStore(t, IdempotencyConfig{})
	calls := 0
	h := BreakerMiddleware(b, BreakerOptions{})(idemHandler(t, s, IdempotencyOptions{}, func(w http.ResponseWriter, r *http.Request) {
		calls++
		hj, ok := w.(http.Hijacker)
		if !ok {
			t.Error("the middlewares hide http.Hijacker")
			return
		}
		c, _, err := hj.Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		_ = c.Close()
	}))
	for i := 0; i < 2; i++ {
		req := httptest.NewRequest("POST", "/ws", nil)
		req.Header.Set("Idempotency-Key", "up")
		rec := &hijackRecorder{ResponseRecorder: httptest.NewRecorder()}
		h.ServeHTTP(rec, req)
		if !rec.hijacked {
			t.Fatalf("request %d was not hijacked", i)
		}
	}
	if calls != 2 {
		t.Fatalf("a hijacked response was stored and replayed: %d calls", calls)
	}
	// Without support underneath, Hijack answers ErrNotSupported.
	sw := &statusWriter{ResponseWriter: httptest.NewRecorder()}
	if _, _, err := sw.Hijack(); !errors.Is(err, http.ErrNotSupported) {
		t.Fatalf("%v", err)
	}
}

// A closed breaker is a server error, not "circuit breaker open".
func TestBreakerMiddlewareOnAClosedBreaker(t *testing.T) {
	b := newBreaker(t, BreakerConfig{})
	h := BreakerMiddleware(b, BreakerOptions{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	_ = b.Close()
	if rec := do(t, h, "GET", "/", "", nil); rec.Code != http.StatusInternalServerError {
		t.Fatalf("%d %q", rec.Code, rec.Body.String())
	}
}

func TestNilBatchIsAnError(t *testing.T) {
	c := newCache(t, CacheConfig{MaxEntries: 16})
	if err := c.GetMany(nil); !errors.Is(err, ErrNullArg) {
		t.Fatalf("GetMany(nil): %v", err)
	}
	l, err := NewKeyedLimiter(KeyedLimiterConfig{Quota: PerSecond(10)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.AcquireMany(nil, 1, nil); !errors.Is(err, ErrNullArg) {
		t.Fatalf("AcquireMany(nil): %v", err)
	}
}
