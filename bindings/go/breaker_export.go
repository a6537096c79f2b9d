package resilience

// The Go side of breaker state-change callbacks. A file with //export may
// only declare things in its preamble, so the C trampolines live in
// breaker.go.

/*
#include <stdint.h>
#include "rsl.h"
*/
import "C"

import (
	"log"
	"runtime/cgo"
	"time"
)

//export goBreakerTransition
func goBreakerTransition(handle C.uintptr_t, t *C.struct_rsl_breaker_transition) {
	fn, ok := cgo.Handle(handle).Value().(func(Transition))
	if !ok {
		return
	}
	now := monotonicNow()
	at := time.Now()
	if ns := uint64(t.at_ns); ns <= now {
		at = at.Add(-time.Duration(now - ns))
	}
	tr := Transition{
		Generation: uint64(t.generation),
		From:       BreakerState(t.from),
		To:         BreakerState(t.to),
		Cause:      TransitionCause(t.cause),
		At:         at,
	}
	// A Go panic must not unwind through the library's frames.
	defer func() {
		if r := recover(); r != nil {
			log.Printf("resilience: breaker state-change callback panicked: %v", r)
		}
	}()
	fn(tr)
}

//export goBreakerUserFree
func goBreakerUserFree(handle C.uintptr_t) {
	cgo.Handle(handle).Delete()
}
