//go:build resilience_system

package resilience

// System linking (`go build -tags resilience_system`): an installed
// libresilience found through pkg-config (`./scripts/install PREFIX` writes
// PREFIX/lib/pkgconfig/resilience.pc; point PKG_CONFIG_PATH at it). This is
// the way to use the package from the module cache or a vendor tree, where
// this repository's include/ and target/ are not next to it. The shared
// library is found at run time by the loader (a system prefix, or
// LD_LIBRARY_PATH).

/*
#cgo pkg-config: resilience
*/
import "C"

// Linkage names how the library was linked into this binary.
const Linkage = "system"
