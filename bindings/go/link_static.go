//go:build !resilience_shared && !resilience_system

package resilience

// Static linking (the default): the archive built by
// `cargo build --release -p resilience-ffi`, plus the system libraries that
// `cargo rustc --release -p resilience-ffi --crate-type staticlib -- --print native-static-libs`
// lists for it. Build with `-tags resilience_shared` to link the shared
// library instead.

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: ${SRCDIR}/../../target/release/libresilience.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
*/
import "C"

// Linkage names how the library was linked into this binary.
const Linkage = "static"
