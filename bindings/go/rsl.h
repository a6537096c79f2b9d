/*
 * rsl.h - what every cgo preamble of this package includes: the C ABI, and
 * the handle types completed (see below).
 *
 * "resilience.h" is found first through the symbolic link in this directory
 * (to include/resilience.h): the go command hashes the headers of the
 * package directory into its build cache keys, but not headers found
 * through -I, so without the link a changed header would not rebuild the
 * package.
 */
#ifndef RESILIENCE_GO_RSL_H
#define RESILIENCE_GO_RSL_H
#include "resilience.h"

/*
 * The handles are opaque (incomplete) struct types. cgo cannot tell that an
 * incomplete type holds no Go pointers, so it wraps every call taking one
 * in a pointer check that also costs a heap allocation per call. Completing
 * the types here (only this package sees it; nothing ever dereferences a
 * handle) tells cgo they hold no pointers: the hot calls then allocate
 * nothing.
 */
struct rsl_breaker { uint8_t opaque_; };
struct rsl_breaker_registry { uint8_t opaque_; };
struct rsl_cache { uint8_t opaque_; };
struct rsl_idem { uint8_t opaque_; };
struct rsl_mpmc { uint8_t opaque_; };
struct rsl_bytes_queue { uint8_t opaque_; };
struct rsl_spsc_producer { uint8_t opaque_; };
struct rsl_spsc_consumer { uint8_t opaque_; };
struct rsl_limiter { uint8_t opaque_; };
struct rsl_keyed_limiter { uint8_t opaque_; };
struct rsl_bulkhead { uint8_t opaque_; };
struct rsl_adaptive { uint8_t opaque_; };
#endif
