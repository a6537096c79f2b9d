package resilience_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	resilience "github.com/libresilience/libresilience/bindings/go"
)

func ExampleCache() {
	cache, err := resilience.NewCache(resilience.CacheConfig{MaxWeight: 64 << 20, DefaultTTL: time.Minute})
	if err != nil {
		panic(err)
	}
	defer cache.Close()
	_ = cache.SetString("user:1", []byte("ada"), 0)
	v, err := cache.GetString("user:1")
	fmt.Println(string(v), err)
	_, err = cache.GetString("user:2")
	fmt.Println(errors.Is(err, resilience.ErrNotFound))

	// One cgo call for many keys.
	var batch resilience.Batch
	batch.AddString("user:1")
	batch.AddString("user:2")
	_ = cache.GetMany(&batch)
	for i := 0; i < batch.Len(); i++ {
		v, ok := batch.Value(i)
		fmt.Printf("%d: %q %v\n", i, v, ok)
	}
	// Output:
	// ada <nil>
	// true
	// 0: "ada" true
	// 1: "" false
}

func ExampleBreaker_Execute() {
	breaker, _ := resilience.NewBreaker(resilience.BreakerConfig{
		WindowSize: 10, MinimumCalls: 10, FailureRateThreshold: 50, WaitInOpen: 30 * time.Second,
	})
	defer breaker.Close()
	for i := 0; i < 10; i++ {
		_ = breaker.Execute(func() error { return errors.New("upstream down") })
	}
	err := breaker.Execute(func() error { return nil })
	d, _ := resilience.RetryAfter(err)
	fmt.Println(errors.Is(err, resilience.ErrRejected), d > 29*time.Second)
	// Output: true true
}

func ExampleIdempotencyMiddleware() {
	store, _ := resilience.NewIdempotencyStore(resilience.IdempotencyConfig{Retention: 24 * time.Hour})
	defer store.Close()
	orders := 0
	handler := resilience.IdempotencyMiddleware(store, resilience.IdempotencyOptions{})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			orders++
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, "order #%d", orders)
		}))
	for i := 0; i < 2; i++ { // a client retrying the same request
		req := httptest.NewRequest("POST", "/orders", strings.NewReader(`{"pizza":1}`))
		req.Header.Set("Idempotency-Key", "7f3c")
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		fmt.Printf("%d %s replayed=%q\n", rec.Code, rec.Body.String(), rec.Header().Get("Idempotent-Replayed"))
	}
	// Output:
	// 201 order #1 replayed=""
	// 201 order #1 replayed="true"
}
