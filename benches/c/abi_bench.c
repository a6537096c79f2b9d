/* The cost of crossing the C ABI: the same loops as benches/src/bin/abi_rust.rs,
 * timed the same way (CLOCK_MONOTONIC around N calls after a warm-up pass of
 * N), called through libresilience. Prints one "name<TAB>ns/op" line per
 * operation. Usage: abi_bench [N]. Driven by benches/abi-bench. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "resilience.h"

#define KEYS 1024
#define KEY_LEN 16
#define VALUE_LEN 64

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, rsl_status s) {
    fprintf(stderr, "abi_bench: %s: %s (%s)\n", what, rsl_status_str(s), rsl_last_error());
    exit(1);
}

#define OK(expr) do { rsl_status s_ = (expr); if (s_ != RSL_OK) die(#expr, s_); } while (0)

static uint8_t keys[KEYS][KEY_LEN];

static void report(const char *name, uint64_t ns, uint64_t n) {
    printf("%s\t%.3f\n", name, (double)ns / (double)n);
}

/* 1 token per microsecond, 1000 held; `now` advances one token per call, so
 * every acquire is granted (the compare-exchange path). */
static rsl_limiter_config bucket_config(void) {
    rsl_limiter_config c = rsl_limiter_config_default();
    c.quota.max_burst = 999;
    c.quota.count = 1000000;
    c.quota.period_ns = 1000000000ull;
    return c;
}

static void bench_bucket_at(uint64_t n) {
    rsl_limiter_config c = bucket_config();
    rsl_limiter *l = NULL;
    OK(rsl_limiter_new(&c, &l));
    uint64_t now = 1000000000000ull, granted = 0, t0 = 0;
    rsl_decision d;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) t0 = mono_ns();
        for (uint64_t i = 0; i < n; i++) {
            now += 1000;
            OK(rsl_limiter_acquire_at(l, 1, now, &d));
            granted += d.allowed;
        }
    }
    uint64_t ns = mono_ns() - t0;
    if (granted != 2 * n) die("bucket acquire_at: not every acquire granted", RSL_ERR_INTERNAL);
    report("bucket acquire_at", ns, n);
    rsl_limiter_free(l);
}

/* 100M tokens per second, 100M held (a 1 s window: the coarse clock). */
static void bench_bucket_clock(uint64_t n) {
    rsl_limiter_config c = rsl_limiter_config_default();
    c.quota.max_burst = 99999999;
    c.quota.count = 100000000;
    c.quota.period_ns = 1000000000ull;
    rsl_limiter *l = NULL;
    OK(rsl_limiter_new(&c, &l));
    uint64_t granted = 0, t0 = 0;
    rsl_decision d;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) t0 = mono_ns();
        for (uint64_t i = 0; i < n; i++) {
            OK(rsl_limiter_acquire(l, 1, &d));
            granted += d.allowed;
        }
    }
    uint64_t ns = mono_ns() - t0;
    if (granted == 0) die("bucket acquire: nothing granted", RSL_ERR_INTERNAL);
    report("bucket acquire (clock)", ns, n);
    rsl_limiter_free(l);
}

static void bench_keyed_at(uint64_t n) {
    rsl_keyed_limiter_config c = rsl_keyed_limiter_config_default();
    c.quota = bucket_config().quota;
    c.max_keys = 4 * KEYS;
    rsl_keyed_limiter *l = NULL;
    OK(rsl_keyed_limiter_new(&c, &l));
    uint64_t now = 1000000000000ull, granted = 0, t0 = 0;
    rsl_decision d;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) t0 = mono_ns();
        for (uint64_t i = 0; i < n; i++) {
            now += 1000;
            OK(rsl_keyed_limiter_acquire_at(l, keys[i % KEYS], KEY_LEN, 1, now, &d));
            granted += d.allowed;
        }
    }
    uint64_t ns = mono_ns() - t0;
    if (granted != 2 * n) die("keyed acquire_at: not every acquire granted", RSL_ERR_INTERNAL);
    report("keyed acquire_at (16 B key)", ns, n);
    rsl_keyed_limiter_free(l);
}

static void bench_breaker(uint64_t n) {
    rsl_breaker *b = NULL;
    OK(rsl_breaker_new(NULL, &b));
    uint64_t t0 = 0;
    rsl_permit p;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) t0 = mono_ns();
        for (uint64_t i = 0; i < n; i++) {
            OK(rsl_breaker_try_acquire(b, &p, NULL));
            OK(rsl_breaker_record(b, p, RSL_OUTCOME_SUCCESS, 1000));
        }
    }
    uint64_t ns = mono_ns() - t0;
    report("breaker try_acquire+record (2 calls)", ns, n);
    rsl_breaker_free(b);
}

static void bench_cache(uint64_t n) {
    rsl_cache *c = NULL;
    OK(rsl_cache_new(NULL, &c));
    uint8_t value[VALUE_LEN];
    for (int k = 0; k < KEYS; k++) {
        memset(value, k & 0xff, sizeof value);
        OK(rsl_cache_insert(c, keys[k], KEY_LEN, value, VALUE_LEN, RSL_CACHE_TTL_DEFAULT));
    }
    uint8_t buf[256];
    uint64_t t0 = 0, bytes = 0;
    size_t len = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) t0 = mono_ns();
        for (uint64_t i = 0; i < n; i++) {
            OK(rsl_cache_get(c, keys[i % KEYS], KEY_LEN, buf, sizeof buf, &len));
            bytes += len + buf[0];
        }
    }
    uint64_t ns = mono_ns() - t0;
    uint64_t want = 0;
    for (uint64_t i = 0; i < n; i++) want += VALUE_LEN + ((i % KEYS) & 0xff);
    if (bytes != 2 * want) die("cache get: wrong values", RSL_ERR_INTERNAL);
    report("cache get (hit, 64 B copy-out)", ns, n);
    rsl_cache_free(c);
}

int main(int argc, char **argv) {
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    if (n == 0) n = 1;
    for (int k = 0; k < KEYS; k++) {
        char tmp[KEY_LEN + 1];
        snprintf(tmp, sizeof tmp, "key-%012d", k);
        memcpy(keys[k], tmp, KEY_LEN);
    }
    bench_bucket_at(n);
    bench_bucket_clock(n);
    bench_keyed_at(n);
    bench_breaker(n);
    bench_cache(n);
    return 0;
}
