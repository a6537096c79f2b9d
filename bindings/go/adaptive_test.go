package resilience

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestAdaptiveLimiterFixedLimit(t *testing.T) {
	a, err := NewAdaptiveLimiter(AdaptiveConfig{InitialLimit: 3, MinLimit: 3, MaxLimit: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var toks []AdaptiveToken
	for i := 0; i < 3; i++ {
		tok, err := a.TryAcquire()
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	if _, err := a.TryAcquire(); err != ErrRejected {
		t.Fatalf("at the limit: %v", err)
	}
	if err := a.Execute(func() error { t.Fatal("ran at the limit"); return nil }); err != ErrRejected {
		t.Fatalf("Execute at the limit: %v", err)
	}
	s, _ := a.Stats()
	if s.Limit != 3 || s.InFlight != 3 || s.Rejected != 2 {
		t.Fatalf("stats %+v", s)
	}
	for i, tok := range toks {
		if err := a.RecordRTT(tok, AdaptiveSuccess, time.Millisecond); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if err := a.Record(toks[0], AdaptiveSuccess); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("record with nothing in flight: %v", err)
	}
	tok, _ := a.TryAcquire()
	if err := a.Record(tok, AdaptiveOutcome(7)); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("unknown outcome: %v", err)
	}
	if err := a.Record(AdaptiveToken{}, AdaptiveSuccess); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("a token never issued: %v", err)
	}
}

func TestAdaptiveLimiterBacksOffOnDrops(t *testing.T) {
	a, err := NewAdaptiveLimiter(AdaptiveConfig{InitialLimit: 50, MinLimit: 1, MaxLimit: 100, AIMDBackoff: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for i := 0; i < 5; i++ {
		err := a.Execute(func() error {
			time.Sleep(time.Millisecond) // drops count at most once per round trip
			return context.DeadlineExceeded
		})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		}
	}
	if l, _ := a.Limit(); l >= 50 {
		t.Fatalf("limit %d after drops", l)
	}
	before, _ := a.Limit()
	for i := 0; i < 200; i++ {
		_ = a.Execute(func() error { return nil })
	}
	if l, _ := a.Limit(); l <= before {
		t.Fatalf("limit %d did not grow from %d on successes", l, before)
	}
	if a.Outcome(errors.New("bad request")) != AdaptiveIgnored || a.Outcome(ErrRejected) != AdaptiveDropped {
		t.Fatal("default classification")
	}
}

func TestAdaptiveLimiterBadConfig(t *testing.T) {
	for i, cfg := range []AdaptiveConfig{
		{Algorithm: 9}, {MinLimit: 10, MaxLimit: 5}, {AIMDBackoff: 1.5}, {InitialLimit: -1},
		{Algorithm: Gradient, GradientTolerance: 0.5}, {Algorithm: Gradient, GradientSmoothing: 2},
	} {
		_, err := NewAdaptiveLimiter(cfg)
		var e *Error
		if !errors.Is(err, ErrInvalidArg) || !errors.As(err, &e) || e.Detail == "" {
			t.Fatalf("config %d: %v", i, err)
		}
	}
	g, err := NewAdaptiveLimiter(AdaptiveConfig{Algorithm: Gradient})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Execute(func() error { return nil }); err != nil {
		t.Fatal(err)
	}
}
