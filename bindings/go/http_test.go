package resilience

import (
	"io"
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
