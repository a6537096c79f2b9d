/* Tiny assertion helpers shared by the C tests. */
#ifndef RSL_TEST_CHECK_H
#define RSL_TEST_CHECK_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "resilience.h"

static int rsl_test_failures = 0;

#define CHECK(cond) do { if (!(cond)) { \
    fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__, __LINE__, #cond, rsl_last_error()); \
    rsl_test_failures++; } } while (0)

#define CHECK_STATUS(expr, want) do { rsl_status got_ = (expr); if (got_ != (want)) { \
    fprintf(stderr, "%s:%d: %s returned %s, want %s (last error: %s)\n", __FILE__, __LINE__, #expr, \
            rsl_status_str(got_), rsl_status_str(want), rsl_last_error()); \
    rsl_test_failures++; } } while (0)

#define CHECK_OK(expr) CHECK_STATUS(expr, RSL_OK)

#define TEST_MAIN_END() do { if (rsl_test_failures) { \
    fprintf(stderr, "%d check(s) failed\n", rsl_test_failures); return 1; } \
    printf("%s: all checks passed\n", __FILE__); return 0; } while (0)

#endif
