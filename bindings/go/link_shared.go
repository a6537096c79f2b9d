//go:build resilience_shared && !resilience_system

package resilience

// Shared linking (`go build -tags resilience_shared`): libresilience.so from
// target/release, found at run time through the rpath set here (or
// LD_LIBRARY_PATH). The loader looks for the SONAME
// libresilience.so.<major>; scripts/test-go creates that link.

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -L${SRCDIR}/../../target/release -Wl,-rpath,${SRCDIR}/../../target/release -lresilience
*/
import "C"

// Linkage names how the library was linked into this binary.
const Linkage = "shared"
