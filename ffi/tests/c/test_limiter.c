/* Rate limiting through the C ABI: token bucket, keyed limiter (single and
 * batch), bulkhead and adaptive limit. Every function, the decisions under
 * explicit time, bad input (NULL handles and pointers, huge lengths and
 * counts, invalid codes, *_free(NULL)), and threads with exact accounting. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#define SEC 1000000000ull
#define MS 1000000ull
#define THREADS 4

_Static_assert(sizeof(rsl_decision) == 40, "decision size is part of the ABI");
_Static_assert(sizeof(rsl_quota) == 24, "quota size is part of the ABI");
_Static_assert(sizeof(rsl_limiter_config) == 80, "config size is part of the ABI");
_Static_assert(sizeof(rsl_keyed_limiter_config) == 96, "config size is part of the ABI");
_Static_assert(sizeof(rsl_keyed_limiter_stats) == 96, "stats size is part of the ABI");
_Static_assert(sizeof(rsl_bulkhead_stats) == 96, "stats size is part of the ABI");
_Static_assert(sizeof(rsl_adaptive_config) == 128, "config size is part of the ABI");
_Static_assert(sizeof(rsl_adaptive_token) == 16, "token size is part of the ABI");
_Static_assert(sizeof(rsl_adaptive_stats) == 64, "stats size is part of the ABI");

#define K(s) (const uint8_t *)(s), (sizeof(s) - 1)

/* A decision filled with garbage, to see that a call wrote every field. */
static rsl_decision junk(void) {
    rsl_decision d;
    memset(&d, 0xAB, sizeof d);
    return d;
}

/* ------------------------------------------------------------ token bucket */

static rsl_limiter *bucket(uint64_t max_burst, uint64_t count, uint64_t period_ns) {
    rsl_limiter_config c = rsl_limiter_config_default();
    c.quota.max_burst = max_burst;
    c.quota.count = count;
    c.quota.period_ns = period_ns;
    rsl_limiter *l = NULL;
    CHECK_OK(rsl_limiter_new(&c, &l));
    return l;
}

static void test_limiter_config(void) {
    rsl_limiter_config c = rsl_limiter_config_default();
    CHECK(c.quota.max_burst == 99 && c.quota.count == 100 && c.quota.period_ns == SEC);
    CHECK(c.clock == RSL_LIMITER_CLOCK_AUTO && c._reserved0 == 0);
    for (int i = 0; i < 6; i++) CHECK(c._reserved[i] == 0);

    rsl_limiter *l = NULL;
    CHECK_OK(rsl_limiter_new(NULL, &l)); /* NULL config: the defaults */
    rsl_quota q;
    CHECK_OK(rsl_limiter_get_quota(l, &q));
    CHECK(q.max_burst == 99 && q.count == 100 && q.period_ns == SEC);
    rsl_limiter_free(l);
    CHECK_STATUS(rsl_limiter_new(&c, NULL), RSL_ERR_NULL_ARG);

    /* Every bad field is refused and nothing is written. */
    l = NULL;
    rsl_limiter_config bad = c;
    bad.quota.count = 0;
    CHECK_STATUS(rsl_limiter_new(&bad, &l), RSL_ERR_INVALID_ARG);
    CHECK(strstr(rsl_last_error(), "count") != NULL);
    bad = c; bad.quota.period_ns = 0;
    CHECK_STATUS(rsl_limiter_new(&bad, &l), RSL_ERR_INVALID_ARG);
    bad = c; bad.quota.count = 10; bad.quota.period_ns = 9; /* below 1 ns per token */
    CHECK_STATUS(rsl_limiter_new(&bad, &l), RSL_ERR_INVALID_ARG);
    bad = c; bad.quota.max_burst = UINT64_MAX;
    CHECK_STATUS(rsl_limiter_new(&bad, &l), RSL_ERR_INVALID_ARG);
    bad = c; bad.quota.max_burst = 1ull << 40; bad.quota.count = 1; bad.quota.period_ns = 1ull << 30;
    CHECK_STATUS(rsl_limiter_new(&bad, &l), RSL_ERR_INVALID_ARG);
    bad = c; bad.clock = 3;
    CHECK_STATUS(rsl_limiter_new(&bad, &l), RSL_ERR_INVALID_ARG);
    bad = c; bad.clock = -1;
    CHECK_STATUS(rsl_limiter_new(&bad, &l), RSL_ERR_INVALID_ARG);
    bad = c; bad._reserved0 = 1;
    CHECK_STATUS(rsl_limiter_new(&bad, &l), RSL_ERR_INVALID_ARG);
    bad = c; bad._reserved[5] = 1;
    CHECK_STATUS(rsl_limiter_new(&bad, &l), RSL_ERR_INVALID_ARG);
    CHECK(strstr(rsl_last_error(), "reserved") != NULL);
    CHECK(l == NULL);

    /* Every clock works with the real-time calls. */
    for (int clk = RSL_LIMITER_CLOCK_AUTO; clk <= RSL_LIMITER_CLOCK_COARSE; clk++) {
        rsl_limiter_config cc = c;
        cc.clock = clk;
        CHECK_OK(rsl_limiter_new(&cc, &l));
        rsl_decision d = junk();
        CHECK_OK(rsl_limiter_acquire(l, 1, &d));
        CHECK(d.allowed && d.limit == 100 && d.remaining == 99 && d.reason == RSL_REASON_ALLOWED);
        rsl_limiter_free(l);
        l = NULL;
    }
    rsl_limiter_free(NULL); /* no-op */
}

static void test_limiter_decisions(void) {
    /* redis-cell's own table: burst 4, 1 per second (limit 5). */
    rsl_limiter *l = bucket(4, 1, SEC);
    uint64_t t0 = 100 * SEC;
    rsl_decision d = junk();
    CHECK_OK(rsl_limiter_acquire_at(l, 6, t0, &d)); /* never grantable: an answer, not an error */
    CHECK(!d.allowed && d.reason == RSL_REASON_EXCEEDS_LIMIT && d.retry_after_ns == RSL_RETRY_AFTER_NONE);
    CHECK(d.limit == 5 && d.remaining == 5 && d.reset_after_ns == 0 && d._reserved[0] == 0);
    for (uint64_t i = 0; i < 5; i++) {
        d = junk();
        CHECK_OK(rsl_limiter_acquire_at(l, 1, t0, &d));
        CHECK(d.allowed && d.reason == RSL_REASON_ALLOWED && d.remaining == 4 - i);
        CHECK(d.retry_after_ns == RSL_RETRY_AFTER_NONE && d.reset_after_ns == (i + 1) * SEC);
    }
    d = junk();
    CHECK_OK(rsl_limiter_acquire_at(l, 1, t0, &d));
    CHECK(!d.allowed && d.reason == RSL_REASON_LIMITED && d.remaining == 0);
    CHECK(d.retry_after_ns == SEC && d.reset_after_ns == 5 * SEC);

    /* Peek answers without taking. */
    d = junk();
    CHECK_OK(rsl_limiter_peek_at(l, 1, t0 + SEC, &d));
    CHECK(d.allowed && d.remaining == 0);
    CHECK_OK(rsl_limiter_peek_at(l, 1, t0 + SEC, &d));
    CHECK(d.allowed);
    CHECK_OK(rsl_limiter_acquire_at(l, 1, t0 + SEC, &d));
    CHECK(d.allowed);
    CHECK_OK(rsl_limiter_acquire_at(l, 1, t0 + SEC, &d));
    CHECK(!d.allowed && d.retry_after_ns == SEC);
    /* A clock going backwards grants nothing. */
    CHECK_OK(rsl_limiter_acquire_at(l, 1, 0, &d));
    CHECK(!d.allowed);
    /* Quantity 0 reports without taking; huge quantities and times are answers. */
    CHECK_OK(rsl_limiter_acquire_at(l, 0, t0 + 100 * SEC, &d));
    CHECK(d.allowed && d.remaining == 5 && d.reset_after_ns == 0);
    CHECK_OK(rsl_limiter_acquire_at(l, UINT64_MAX, t0, &d));
    CHECK(d.reason == RSL_REASON_EXCEEDS_LIMIT);
    CHECK_OK(rsl_limiter_acquire_at(l, 5, UINT64_MAX, &d));
    CHECK(d.allowed && d.remaining == 0);

    /* Reset refills; peek with the real clock. */
    CHECK_OK(rsl_limiter_reset(l));
    CHECK_OK(rsl_limiter_peek(l, 5, &d));
    CHECK(d.allowed && d.remaining == 0);
    CHECK_OK(rsl_limiter_acquire(l, 5, &d));
    CHECK(d.allowed);
    CHECK_OK(rsl_limiter_acquire(l, 1, &d));
    CHECK(!d.allowed && d.reason == RSL_REASON_LIMITED && d.retry_after_ns > 0 && d.retry_after_ns <= SEC);

    /* NULL handles and outputs: an error, and nothing written. */
    rsl_decision untouched = junk();
    CHECK_STATUS(rsl_limiter_acquire(NULL, 1, &d), RSL_ERR_NULL_ARG);
    CHECK(strstr(rsl_last_error(), "rsl_limiter") != NULL);
    CHECK_STATUS(rsl_limiter_acquire(l, 1, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_limiter_acquire_at(NULL, 1, 0, &untouched), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_limiter_acquire_at(l, 1, 0, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_limiter_peek(NULL, 1, &untouched), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_limiter_peek(l, 1, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_limiter_peek_at(NULL, 1, 0, &untouched), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_limiter_peek_at(l, 1, 0, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_limiter_reset(NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_limiter_get_quota(NULL, &(rsl_quota){0}), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_limiter_get_quota(l, NULL), RSL_ERR_NULL_ARG);
    rsl_decision j = junk();
    CHECK(memcmp(&untouched, &j, sizeof j) == 0);
    rsl_limiter_free(l);
}

struct bucket_arg { rsl_limiter *l; uint64_t now; int granted; int bad; };

static void *bucket_thread(void *arg) {
    struct bucket_arg *a = arg;
    for (int i = 0; i < 5000; i++) {
        rsl_decision d;
        if (rsl_limiter_acquire_at(a->l, 1, a->now, &d) != RSL_OK) a->bad++;
        else if (d.allowed) a->granted++;
    }
    return NULL;
}

static void test_limiter_threads(void) {
    /* 10000 tokens, refilling 1 per second; 4 threads x 5000 at one instant,
     * then again 2.5 s later: exactly the bucket, then exactly the refill. */
    rsl_limiter *l = bucket(9999, 1, SEC);
    uint64_t nows[2] = {SEC, SEC + 2500 * MS};
    int want[2] = {10000, 2};
    for (int round = 0; round < 2; round++) {
        pthread_t th[THREADS];
        struct bucket_arg args[THREADS];
        for (int i = 0; i < THREADS; i++) {
            args[i] = (struct bucket_arg){l, nows[round], 0, 0};
            pthread_create(&th[i], NULL, bucket_thread, &args[i]);
        }
        int total = 0;
        for (int i = 0; i < THREADS; i++) {
            pthread_join(th[i], NULL);
            total += args[i].granted;
            CHECK(args[i].bad == 0);
        }
        CHECK(total == want[round]);
    }
    rsl_limiter_free(l);
}

/* ------------------------------------------------------------ keyed limiter */

static rsl_keyed_limiter *keyed(uint64_t max_keys, int32_t policy) {
    rsl_keyed_limiter_config c = rsl_keyed_limiter_config_default();
    c.quota = (rsl_quota){.max_burst = 1, .count = 1, .period_ns = SEC}; /* 2 tokens, 1/s */
    c.max_keys = max_keys;
    c.full_policy = policy;
    rsl_keyed_limiter *l = NULL;
    CHECK_OK(rsl_keyed_limiter_new(&c, &l));
    return l;
}

static void test_keyed_config(void) {
    rsl_keyed_limiter_config c = rsl_keyed_limiter_config_default();
    CHECK(c.quota.max_burst == 99 && c.quota.count == 100 && c.quota.period_ns == SEC);
    CHECK(c.max_keys == 100000 && c.shards == 0);
    CHECK(c.full_policy == RSL_FULL_POLICY_DENY && c.clock == RSL_LIMITER_CLOCK_AUTO);
    for (int i = 0; i < 6; i++) CHECK(c._reserved[i] == 0);
    rsl_keyed_limiter *l = NULL;
    CHECK_OK(rsl_keyed_limiter_new(NULL, &l));
    rsl_keyed_limiter_free(l);
    CHECK_STATUS(rsl_keyed_limiter_new(&c, NULL), RSL_ERR_NULL_ARG);

    l = NULL;
    rsl_keyed_limiter_config bad = c;
    bad.max_keys = 0;
    CHECK_STATUS(rsl_keyed_limiter_new(&bad, &l), RSL_ERR_INVALID_ARG);
    bad = c; bad.max_keys = UINT64_MAX;
    CHECK_STATUS(rsl_keyed_limiter_new(&bad, &l), RSL_ERR_INVALID_ARG);
    bad = c; bad.shards = RSL_KEYED_LIMITER_MAX_SHARDS + 1;
    CHECK_STATUS(rsl_keyed_limiter_new(&bad, &l), RSL_ERR_INVALID_ARG);
    bad = c; bad.shards = UINT64_MAX;
    CHECK_STATUS(rsl_keyed_limiter_new(&bad, &l), RSL_ERR_INVALID_ARG);
    bad = c; bad.full_policy = 2;
    CHECK_STATUS(rsl_keyed_limiter_new(&bad, &l), RSL_ERR_INVALID_ARG);
    bad = c; bad.full_policy = -1;
    CHECK_STATUS(rsl_keyed_limiter_new(&bad, &l), RSL_ERR_INVALID_ARG);
    bad = c; bad.clock = 7;
    CHECK_STATUS(rsl_keyed_limiter_new(&bad, &l), RSL_ERR_INVALID_ARG);
    bad = c; bad.quota.count = 0;
    CHECK_STATUS(rsl_keyed_limiter_new(&bad, &l), RSL_ERR_INVALID_ARG);
    bad = c; bad._reserved[0] = 1;
    CHECK_STATUS(rsl_keyed_limiter_new(&bad, &l), RSL_ERR_INVALID_ARG);
    CHECK(l == NULL);

    /* Explicit shards (rounded to a power of two), and the largest count. */
    rsl_keyed_limiter_config ok = c;
    ok.shards = 3;
    CHECK_OK(rsl_keyed_limiter_new(&ok, &l));
    rsl_keyed_limiter_free(l);
    ok.shards = RSL_KEYED_LIMITER_MAX_SHARDS;
    ok.max_keys = 1;
    CHECK_OK(rsl_keyed_limiter_new(&ok, &l));
    rsl_decision d = junk();
    CHECK_OK(rsl_keyed_limiter_acquire(l, K("k"), 1, &d));
    CHECK(d.allowed);
    rsl_keyed_limiter_free(l);
    rsl_keyed_limiter_free(NULL);
}

static void test_keyed_decisions(void) {
    rsl_keyed_limiter *l = keyed(2, RSL_FULL_POLICY_DENY);
    uint64_t t = 10 * SEC;
    rsl_decision d = junk();
    CHECK_OK(rsl_keyed_limiter_acquire_at(l, K("alice"), 2, t, &d));
    CHECK(d.allowed && d.limit == 2 && d.remaining == 0 && d.reset_after_ns == 2 * SEC);
    CHECK_OK(rsl_keyed_limiter_acquire_at(l, K("alice"), 1, t, &d));
    CHECK(!d.allowed && d.reason == RSL_REASON_LIMITED && d.retry_after_ns == SEC);
    /* Keys are bytes: embedded NULs, and the empty key (NULL with length 0). */
    CHECK_OK(rsl_keyed_limiter_acquire_at(l, (const uint8_t *)"a\0b", 3, 1, t, &d));
    CHECK(d.allowed && d.remaining == 1);
    size_t len = 0;
    CHECK_OK(rsl_keyed_limiter_len(l, &len));
    CHECK(len == 2);
    /* Full of live keys: a new key is denied, an answer. */
    CHECK_OK(rsl_keyed_limiter_acquire_at(l, NULL, 0, 1, t, &d));
    CHECK(!d.allowed && d.reason == RSL_REASON_TABLE_FULL && d.retry_after_ns == RSL_RETRY_AFTER_NONE);
    /* Quantity 0 and denials of a new key need no room. */
    CHECK_OK(rsl_keyed_limiter_acquire_at(l, K("bob"), 0, t, &d));
    CHECK(d.allowed && d.remaining == 2);
    rsl_keyed_limiter_stats st;
    memset(&st, 0xAB, sizeof st);
    CHECK_OK(rsl_keyed_limiter_get_stats(l, &st));
    CHECK(st.keys == 2 && st.capacity == 2 && st.denied_full == 1 && st.allowed_untracked == 0);
    CHECK(st.memory_bytes > 0 && st._reserved[4] == 0);

    /* Later, refilled buckets are reclaimed (by a full table or by hand). */
    size_t removed = 99;
    CHECK_OK(rsl_keyed_limiter_reclaim_at(l, t + SEC, &removed));
    CHECK(removed == 1); /* "a\0b" refilled after 1 s; alice needs 2 s */
    CHECK_OK(rsl_keyed_limiter_reclaim_at(l, t + 2 * SEC, NULL));
    CHECK_OK(rsl_keyed_limiter_len(l, &len));
    CHECK(len == 0);
    CHECK_OK(rsl_keyed_limiter_acquire_at(l, K("carol"), 1, t + 2 * SEC, &d));
    CHECK(d.allowed);
    /* The real clock is far past t + 3 s (seconds of uptime): carol refilled. */
    CHECK_OK(rsl_keyed_limiter_reclaim(l, &removed));
    CHECK(removed == 1);
    CHECK_OK(rsl_keyed_limiter_get_stats(l, &st));
    CHECK(st.reclaimed == 3 && st.sweeps > 0 && st.keys == 0);
    CHECK_OK(rsl_keyed_limiter_acquire(l, K("dave"), 1, &d)); /* real clock */
    CHECK(d.limit == 2);

    /* Bad input: NULL handle / out / key with a length, huge length. */
    rsl_decision untouched = junk();
    CHECK_STATUS(rsl_keyed_limiter_acquire(NULL, K("k"), 1, &untouched), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_keyed_limiter_acquire(l, K("k"), 1, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_keyed_limiter_acquire(l, NULL, 5, 1, &untouched), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_keyed_limiter_acquire(l, (const uint8_t *)"k", SIZE_MAX, 1, &untouched), RSL_ERR_TOO_LARGE);
    CHECK_STATUS(rsl_keyed_limiter_acquire_at(NULL, K("k"), 1, t, &untouched), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_keyed_limiter_acquire_at(l, K("k"), 1, t, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_keyed_limiter_acquire_at(l, NULL, 1, 1, t, &untouched), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_keyed_limiter_acquire_at(l, (const uint8_t *)"k", (SIZE_MAX >> 1) + 1, 1, t, &untouched),
                 RSL_ERR_TOO_LARGE);
    CHECK_STATUS(rsl_keyed_limiter_reclaim(NULL, &removed), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_keyed_limiter_reclaim_at(NULL, t, &removed), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_keyed_limiter_len(NULL, &len), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_keyed_limiter_len(l, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_keyed_limiter_get_stats(NULL, &st), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_keyed_limiter_get_stats(l, NULL), RSL_ERR_NULL_ARG);
    rsl_decision j = junk();
    CHECK(memcmp(&untouched, &j, sizeof j) == 0);
    rsl_keyed_limiter_free(l);

    /* Allow-untracked: a full table lets new keys through, without state. */
    l = keyed(1, RSL_FULL_POLICY_ALLOW_UNTRACKED);
    CHECK_OK(rsl_keyed_limiter_acquire_at(l, K("a"), 2, t, &d));
    CHECK(d.allowed && d.reason == RSL_REASON_ALLOWED);
    for (int i = 0; i < 3; i++) {
        CHECK_OK(rsl_keyed_limiter_acquire_at(l, K("b"), 2, t, &d));
        CHECK(d.allowed && d.reason == RSL_REASON_UNTRACKED && d.remaining == 0);
    }
    CHECK_OK(rsl_keyed_limiter_get_stats(l, &st));
    CHECK(st.keys == 1 && st.allowed_untracked == 3 && st.denied_full == 0);
    rsl_keyed_limiter_free(l);
}

/* check / check_at: the yes/no acquire. A twin limiter driven by acquire_at
 * over the same steps grants the same requests and names the same waits. */
static void test_check(void) {
    rsl_limiter *a = bucket(4, 1, SEC), *b = bucket(4, 1, SEC);
    uint64_t now = 100 * SEC, x = 99;
    for (int i = 0; i < 2000; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        now += (x >> 40) % (SEC / 2);
        uint64_t q = (x >> 20) % 7; /* 6 is never grantable (limit 5) */
        rsl_decision d = junk();
        CHECK_OK(rsl_limiter_acquire_at(a, q, now, &d));
        uint64_t wait = 12345;
        rsl_status st = rsl_limiter_check_at(b, q, now, &wait);
        if (d.allowed) {
            CHECK(st == RSL_OK && wait == 12345);
        } else {
            CHECK(st == RSL_ERR_REJECTED && wait == d.retry_after_ns);
        }
    }
    /* NULL wait output is fine; the real clock; NULL handle. */
    CHECK_STATUS(rsl_limiter_check_at(b, 6, now, NULL), RSL_ERR_REJECTED);
    CHECK_OK(rsl_limiter_reset(b));
    CHECK_OK(rsl_limiter_check(b, 5, NULL));
    uint64_t wait = 0;
    CHECK_STATUS(rsl_limiter_check(b, 1, &wait), RSL_ERR_REJECTED);
    CHECK(wait > 0 && wait <= SEC);
    CHECK_STATUS(rsl_limiter_check(NULL, 1, &wait), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_limiter_check_at(NULL, 1, now, NULL), RSL_ERR_NULL_ARG);
    rsl_limiter_free(a);
    rsl_limiter_free(b);

    /* Keyed: 2 tokens a key; a full table answers by its policy. */
    rsl_keyed_limiter *k = keyed(1, RSL_FULL_POLICY_DENY);
    uint64_t t = 10 * SEC;
    CHECK_OK(rsl_keyed_limiter_check_at(k, K("a"), 2, t, NULL));
    CHECK_STATUS(rsl_keyed_limiter_check_at(k, K("a"), 1, t, &wait), RSL_ERR_REJECTED);
    CHECK(wait == SEC);
    CHECK_STATUS(rsl_keyed_limiter_check_at(k, K("b"), 1, t, &wait), RSL_ERR_REJECTED); /* full */
    CHECK(wait == RSL_RETRY_AFTER_NONE);
    CHECK_OK(rsl_keyed_limiter_check_at(k, K("a"), 1, t + SEC, &wait));
    CHECK_STATUS(rsl_keyed_limiter_check(NULL, K("a"), 1, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_keyed_limiter_check(k, NULL, 3, 1, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_keyed_limiter_check_at(k, (const uint8_t *)"k", (SIZE_MAX >> 1) + 1, 1, t, NULL),
                 RSL_ERR_TOO_LARGE);
    CHECK_OK(rsl_keyed_limiter_check(k, K("a"), 0, NULL));
    rsl_keyed_limiter_free(k);
    k = keyed(1, RSL_FULL_POLICY_ALLOW_UNTRACKED);
    CHECK_OK(rsl_keyed_limiter_check_at(k, K("a"), 1, t, NULL));
    CHECK_OK(rsl_keyed_limiter_check_at(k, K("b"), 2, t, NULL)); /* untracked: allowed */
    CHECK_OK(rsl_keyed_limiter_check_at(k, K("b"), 2, t, NULL));
    rsl_keyed_limiter_free(k);
}

static void test_keyed_many(void) {
    rsl_keyed_limiter *l = keyed(1000, RSL_FULL_POLICY_DENY);
    uint64_t t = 10 * SEC;
    /* 40 keys (more than one internal block), one repeated. */
    enum { N = 40 };
    char names[N][8];
    const uint8_t *keys[N];
    size_t lens[N];
    for (int i = 0; i < N; i++) {
        lens[i] = (size_t)snprintf(names[i], sizeof names[i], "k%d", i == N - 1 ? 0 : i);
        keys[i] = (const uint8_t *)names[i];
    }
    rsl_decision out[N];
    memset(out, 0xAB, sizeof out);
    CHECK_OK(rsl_keyed_limiter_acquire_many_at(l, keys, lens, N, 1, t, out));
    for (int i = 0; i < N - 1; i++) CHECK(out[i].allowed && out[i].remaining == 1 && out[i].limit == 2);
    CHECK(out[N - 1].allowed && out[N - 1].remaining == 0); /* k0 charged twice, in order */
    CHECK_OK(rsl_keyed_limiter_acquire_many_at(l, keys, lens, N, 1, t, out));
    CHECK(!out[0].allowed && !out[N - 1].allowed && out[N - 1].retry_after_ns == SEC);
    CHECK(out[1].allowed && out[1].remaining == 0 && out[N - 2].allowed);
    /* Same answers as one by one. */
    rsl_decision one;
    CHECK_OK(rsl_keyed_limiter_acquire_at(l, K("k1"), 0, t, &one));
    CHECK(one.remaining == 0);
    /* Real clock. */
    CHECK_OK(rsl_keyed_limiter_acquire_many(l, keys, lens, 3, 0, out));
    CHECK(out[0].limit == 2 && out[2].limit == 2);

    /* Zero keys: NULL arrays are fine. */
    CHECK_OK(rsl_keyed_limiter_acquire_many(l, NULL, NULL, 0, 1, NULL));
    CHECK_OK(rsl_keyed_limiter_acquire_many_at(l, NULL, NULL, 0, 1, t, NULL));

    /* One bad key: an error, nothing acquired for any key, nothing written. */
    size_t before = 0, after = 0;
    CHECK_OK(rsl_keyed_limiter_len(l, &before));
    const uint8_t *bad_keys[3] = {(const uint8_t *)"new1", NULL, (const uint8_t *)"new3"};
    size_t bad_lens[3] = {4, 4, 4};
    rsl_decision o3[3];
    memset(o3, 0xAB, sizeof o3);
    CHECK_STATUS(rsl_keyed_limiter_acquire_many_at(l, bad_keys, bad_lens, 3, 1, t, o3), RSL_ERR_NULL_ARG);
    CHECK(strstr(rsl_last_error(), "keys[1]") != NULL);
    bad_keys[1] = (const uint8_t *)"x";
    bad_lens[1] = SIZE_MAX;
    CHECK_STATUS(rsl_keyed_limiter_acquire_many(l, bad_keys, bad_lens, 3, 1, o3), RSL_ERR_TOO_LARGE);
    CHECK_OK(rsl_keyed_limiter_len(l, &after));
    CHECK(before == after);
    rsl_decision j = junk();
    CHECK(memcmp(&o3[0], &j, sizeof j) == 0);

    /* NULL arrays with a count, absurd counts. */
    CHECK_STATUS(rsl_keyed_limiter_acquire_many(NULL, keys, lens, 1, 1, out), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_keyed_limiter_acquire_many(l, NULL, lens, 1, 1, out), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_keyed_limiter_acquire_many(l, keys, NULL, 1, 1, out), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_keyed_limiter_acquire_many(l, keys, lens, 1, 1, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_keyed_limiter_acquire_many(l, keys, lens, SIZE_MAX, 1, out), RSL_ERR_TOO_LARGE);
    CHECK_STATUS(rsl_keyed_limiter_acquire_many_at(l, keys, lens, SIZE_MAX / 8, 1, t, out), RSL_ERR_TOO_LARGE);
    CHECK_STATUS(rsl_keyed_limiter_acquire_many_at(NULL, keys, lens, 1, 1, t, out), RSL_ERR_NULL_ARG);
    rsl_keyed_limiter_free(l);
}

struct keyed_arg { rsl_keyed_limiter *l; int id; int granted; int bad; };

static void *keyed_thread(void *arg) {
    struct keyed_arg *a = arg;
    /* Everyone hammers "shared"; each thread also has its own key, in batches. */
    char own[16];
    size_t own_len = (size_t)snprintf(own, sizeof own, "own-%d", a->id);
    const uint8_t *keys[2] = {(const uint8_t *)"shared", (const uint8_t *)own};
    size_t lens[2] = {6, own_len};
    for (int i = 0; i < 2000; i++) {
        rsl_decision d[2];
        if (rsl_keyed_limiter_acquire_many_at(a->l, keys, lens, 2, 1, SEC, d) != RSL_OK) {
            a->bad++;
            continue;
        }
        if (d[0].allowed) a->granted++;
        if (d[1].allowed != (i < 100)) a->bad++; /* own key: exactly its 100 tokens */
    }
    return NULL;
}

static void test_keyed_threads(void) {
    rsl_keyed_limiter_config c = rsl_keyed_limiter_config_default();
    c.quota = (rsl_quota){.max_burst = 999, .count = 1, .period_ns = SEC}; /* "shared": 1000 tokens */
    c.max_keys = 16;
    c.shards = 4;
    rsl_keyed_limiter *l = NULL;
    CHECK_OK(rsl_keyed_limiter_new(&c, &l));
    /* Own keys hold 100: charge 900 up front so every own key starts at 100. */
    pthread_t th[THREADS];
    struct keyed_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        char own[16];
        size_t n = (size_t)snprintf(own, sizeof own, "own-%d", i);
        rsl_decision d;
        CHECK_OK(rsl_keyed_limiter_acquire_at(l, (const uint8_t *)own, n, 900, SEC, &d));
        CHECK(d.allowed && d.remaining == 100);
    }
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct keyed_arg){l, i, 0, 0};
        pthread_create(&th[i], NULL, keyed_thread, &args[i]);
    }
    int total = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        total += args[i].granted;
        CHECK(args[i].bad == 0);
    }
    CHECK(total == 1000);
    rsl_keyed_limiter_free(l);
}

/* ------------------------------------------------------------ bulkhead */

static void test_bulkhead_basics(void) {
    rsl_bulkhead *b = NULL;
    CHECK_STATUS(rsl_bulkhead_new(0, 0, &b), RSL_ERR_INVALID_ARG);
    CHECK_STATUS(rsl_bulkhead_new(RSL_BULKHEAD_MAX + 1, 0, &b), RSL_ERR_INVALID_ARG);
    CHECK_STATUS(rsl_bulkhead_new(1, RSL_BULKHEAD_MAX + 1, &b), RSL_ERR_INVALID_ARG);
    CHECK_STATUS(rsl_bulkhead_new(1, UINT64_MAX, &b), RSL_ERR_INVALID_ARG);
    CHECK_STATUS(rsl_bulkhead_new(1, 0, NULL), RSL_ERR_NULL_ARG);
    CHECK(b == NULL);
    CHECK_OK(rsl_bulkhead_new(RSL_BULKHEAD_MAX, RSL_BULKHEAD_MAX, &b));
    rsl_bulkhead_free(b);

    CHECK_OK(rsl_bulkhead_new(2, 0, &b));
    CHECK_OK(rsl_bulkhead_try_acquire(b));
    CHECK_OK(rsl_bulkhead_acquire_timeout(b, 0));
    CHECK_STATUS(rsl_bulkhead_try_acquire(b), RSL_ERR_REJECTED);
    CHECK_STATUS(rsl_bulkhead_acquire_timeout(b, SEC), RSL_ERR_FULL); /* no room to wait: at once */
    rsl_bulkhead_stats st;
    memset(&st, 0xAB, sizeof st);
    CHECK_OK(rsl_bulkhead_get_stats(b, &st));
    CHECK(st.max_concurrent == 2 && st.in_flight == 2 && st.waiting == 0);
    CHECK(st.rejected == 1 && st.rejected_full == 1 && st.timed_out == 0 && st._reserved[3] == 0);
    CHECK_OK(rsl_bulkhead_release(b));
    CHECK_OK(rsl_bulkhead_release(b));
    /* Extra releases are refused, counted, and never underflow. */
    CHECK_STATUS(rsl_bulkhead_release(b), RSL_ERR_INVALID_ARG);
    CHECK(strstr(rsl_last_error(), "no permit") != NULL);
    CHECK_STATUS(rsl_bulkhead_release(b), RSL_ERR_INVALID_ARG);
    CHECK_OK(rsl_bulkhead_get_stats(b, &st));
    CHECK(st.in_flight == 0 && st.invalid_releases == 2);
    CHECK_OK(rsl_bulkhead_try_acquire(b));
    CHECK_OK(rsl_bulkhead_try_acquire(b));
    CHECK_STATUS(rsl_bulkhead_try_acquire(b), RSL_ERR_REJECTED);
    CHECK_OK(rsl_bulkhead_release(b));
    CHECK_OK(rsl_bulkhead_release(b));
    rsl_bulkhead_free(b);

    /* With room to wait: a timeout. */
    CHECK_OK(rsl_bulkhead_new(1, 1, &b));
    CHECK_OK(rsl_bulkhead_try_acquire(b));
    CHECK_STATUS(rsl_bulkhead_acquire_timeout(b, 2 * MS), RSL_ERR_TIMEOUT);
    CHECK_STATUS(rsl_bulkhead_acquire_timeout(b, 0), RSL_ERR_TIMEOUT);
    CHECK_OK(rsl_bulkhead_get_stats(b, &st));
    CHECK(st.timed_out == 2 && st.waiting == 0 && st.in_flight == 1);
    CHECK_OK(rsl_bulkhead_release(b));

    CHECK_STATUS(rsl_bulkhead_try_acquire(NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_bulkhead_acquire_timeout(NULL, 0), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_bulkhead_release(NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_bulkhead_get_stats(NULL, &st), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_bulkhead_get_stats(b, NULL), RSL_ERR_NULL_ARG);
    rsl_bulkhead_free(b);
    rsl_bulkhead_free(NULL);
}

struct bh_arg { rsl_bulkhead *b; atomic_int *inside; atomic_int *peak; int ok; int bad; int wait; };

static void *bulkhead_thread(void *arg) {
    struct bh_arg *a = arg;
    for (int i = 0; i < 3000; i++) {
        rsl_status s = a->wait ? rsl_bulkhead_acquire_timeout(a->b, UINT64_MAX) : rsl_bulkhead_try_acquire(a->b);
        if (s == RSL_OK) {
            int now = atomic_fetch_add(a->inside, 1) + 1;
            int peak = atomic_load(a->peak);
            while (now > peak && !atomic_compare_exchange_weak(a->peak, &peak, now)) {}
            atomic_fetch_sub(a->inside, 1);
            if (rsl_bulkhead_release(a->b) != RSL_OK) a->bad++;
            a->ok++;
        } else if (s != RSL_ERR_REJECTED || a->wait) {
            a->bad++;
        }
    }
    return NULL;
}

/* Releases the held permit once the main thread is waiting for it. */
static void *release_when_waited_for(void *arg) {
    rsl_bulkhead_stats st;
    do {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
        rsl_bulkhead_get_stats(arg, &st);
    } while (st.waiting == 0);
    rsl_bulkhead_release(arg);
    return NULL;
}

static void test_bulkhead_threads(void) {
    /* Never more than N inside, with try_acquire and with waiting acquires. */
    for (int wait = 0; wait <= 1; wait++) {
        rsl_bulkhead *b = NULL;
        CHECK_OK(rsl_bulkhead_new(2, THREADS, &b));
        atomic_int inside = 0, peak = 0;
        pthread_t th[THREADS];
        struct bh_arg args[THREADS];
        for (int i = 0; i < THREADS; i++) {
            args[i] = (struct bh_arg){b, &inside, &peak, 0, 0, wait};
            pthread_create(&th[i], NULL, bulkhead_thread, &args[i]);
        }
        int ok = 0;
        for (int i = 0; i < THREADS; i++) {
            pthread_join(th[i], NULL);
            CHECK(args[i].bad == 0);
            ok += args[i].ok;
        }
        CHECK(atomic_load(&peak) >= 1 && atomic_load(&peak) <= 2);
        if (wait) CHECK(ok == THREADS * 3000); /* every waiting acquire got a permit */
        rsl_bulkhead_stats st;
        CHECK_OK(rsl_bulkhead_get_stats(b, &st));
        CHECK(st.in_flight == 0 && st.waiting == 0 && st.invalid_releases == 0);
        rsl_bulkhead_free(b);
    }
    /* A waiter is woken by a release on another thread. */
    rsl_bulkhead *b = NULL;
    CHECK_OK(rsl_bulkhead_new(1, 1, &b));
    CHECK_OK(rsl_bulkhead_try_acquire(b));
    pthread_t th;
    pthread_create(&th, NULL, release_when_waited_for, b);
    CHECK_OK(rsl_bulkhead_acquire_timeout(b, 10 * SEC));
    pthread_join(th, NULL);
    rsl_bulkhead_stats st;
    CHECK_OK(rsl_bulkhead_get_stats(b, &st));
    CHECK(st.waited == 1 && st.in_flight == 1);
    CHECK_OK(rsl_bulkhead_release(b));
    rsl_bulkhead_free(b);
}

/* ------------------------------------------------------------ adaptive */

static rsl_adaptive *adaptive(uint64_t initial, uint64_t min, uint64_t max) {
    rsl_adaptive_config c = rsl_adaptive_config_default();
    c.initial_limit = initial;
    c.min_limit = min;
    c.max_limit = max;
    c.aimd_backoff = 0.5;
    c.aimd_timeout_ns = 100 * MS;
    rsl_adaptive *a = NULL;
    CHECK_OK(rsl_adaptive_new(&c, &a));
    return a;
}

static void test_adaptive_config(void) {
    rsl_adaptive_config c = rsl_adaptive_config_default();
    CHECK(c.algorithm == RSL_ADAPTIVE_AIMD);
    CHECK(c.initial_limit == 20 && c.min_limit == 20 && c.max_limit == 200);
    CHECK(c.aimd_backoff == 0.9 && c.aimd_timeout_ns == 5 * SEC);
    CHECK(c.gradient_smoothing == 0.2 && c.gradient_tolerance == 1.5 && c.gradient_queue_size == 4);
    CHECK(c.gradient_probe_interval == 20000 && c.gradient_drop_backoff == 0.9);
    for (int i = 0; i < 6; i++) CHECK(c._reserved[i] == 0);
    rsl_adaptive *a = NULL;
    CHECK_OK(rsl_adaptive_new(NULL, &a));
    size_t limit = 0;
    CHECK_OK(rsl_adaptive_limit(a, &limit));
    CHECK(limit == 20);
    rsl_adaptive_free(a);
    CHECK_STATUS(rsl_adaptive_new(&c, NULL), RSL_ERR_NULL_ARG);
    rsl_adaptive_config g = c;
    g.algorithm = RSL_ADAPTIVE_GRADIENT;
    CHECK_OK(rsl_adaptive_new(&g, &a));
    rsl_adaptive_free(a);

    a = NULL;
    rsl_adaptive_config bad = c;
    bad.algorithm = 2;
    CHECK_STATUS(rsl_adaptive_new(&bad, &a), RSL_ERR_INVALID_ARG);
    CHECK(strstr(rsl_last_error(), "algorithm") != NULL);
    bad = c; bad.algorithm = -1;
    CHECK_STATUS(rsl_adaptive_new(&bad, &a), RSL_ERR_INVALID_ARG);
    bad = c; bad.min_limit = 0; bad.initial_limit = 0;
    CHECK_STATUS(rsl_adaptive_new(&bad, &a), RSL_ERR_INVALID_ARG);
    bad = c; bad.max_limit = 10;
    CHECK_STATUS(rsl_adaptive_new(&bad, &a), RSL_ERR_INVALID_ARG);
    bad = c; bad.initial_limit = 1000;
    CHECK_STATUS(rsl_adaptive_new(&bad, &a), RSL_ERR_INVALID_ARG);
    bad = c; bad.max_limit = UINT64_MAX;
    CHECK_STATUS(rsl_adaptive_new(&bad, &a), RSL_ERR_INVALID_ARG);
    bad = c; bad.aimd_backoff = NAN;
    CHECK_STATUS(rsl_adaptive_new(&bad, &a), RSL_ERR_INVALID_ARG);
    bad = c; bad.aimd_backoff = 1.5;
    CHECK_STATUS(rsl_adaptive_new(&bad, &a), RSL_ERR_INVALID_ARG);
    bad = c; bad.aimd_timeout_ns = 0;
    CHECK_STATUS(rsl_adaptive_new(&bad, &a), RSL_ERR_INVALID_ARG);
    bad = g; bad.gradient_smoothing = 0.0;
    CHECK_STATUS(rsl_adaptive_new(&bad, &a), RSL_ERR_INVALID_ARG);
    bad = g; bad.gradient_tolerance = INFINITY;
    CHECK_STATUS(rsl_adaptive_new(&bad, &a), RSL_ERR_INVALID_ARG);
    bad = g; bad.gradient_drop_backoff = -0.1;
    CHECK_STATUS(rsl_adaptive_new(&bad, &a), RSL_ERR_INVALID_ARG);
    bad = g; bad.gradient_queue_size = UINT64_MAX;
    CHECK_STATUS(rsl_adaptive_new(&bad, &a), RSL_ERR_INVALID_ARG);
    bad = c; bad._reserved[2] = 1;
    CHECK_STATUS(rsl_adaptive_new(&bad, &a), RSL_ERR_INVALID_ARG);
    CHECK(a == NULL);
    rsl_adaptive_free(NULL);
}

static void test_adaptive_tokens(void) {
    rsl_adaptive *a = adaptive(4, 1, 8);
    rsl_adaptive_token t[5];
    for (int i = 0; i < 4; i++) {
        CHECK_OK(rsl_adaptive_try_acquire_at(a, 1000 + (uint64_t)i, &t[i]));
        CHECK(t[i].start_ns == 1000 + (uint64_t)i && t[i].inflight == (uint64_t)i + 1);
    }
    rsl_adaptive_token untouched = {77, 77};
    CHECK_STATUS(rsl_adaptive_try_acquire(a, &untouched), RSL_ERR_REJECTED);
    CHECK(untouched.start_ns == 77 && untouched.inflight == 77);
    size_t n = 0;
    CHECK_OK(rsl_adaptive_in_flight(a, &n));
    CHECK(n == 4);

    /* Invalid outcomes and forged tokens are refused: nothing released. */
    CHECK_STATUS(rsl_adaptive_record(a, t[0], 3, MS), RSL_ERR_INVALID_ARG);
    CHECK_STATUS(rsl_adaptive_record(a, t[0], -1, MS), RSL_ERR_INVALID_ARG);
    CHECK_STATUS(rsl_adaptive_record(a, (rsl_adaptive_token){0, 0}, RSL_ADAPTIVE_SUCCESS, MS),
                 RSL_ERR_INVALID_ARG);
    CHECK_STATUS(rsl_adaptive_record(NULL, t[0], RSL_ADAPTIVE_SUCCESS, MS), RSL_ERR_NULL_ARG);
    CHECK_OK(rsl_adaptive_in_flight(a, &n));
    CHECK(n == 4);

    /* A drop halves the limit (backoff 0.5); ignored releases only. */
    CHECK_OK(rsl_adaptive_record(a, t[0], RSL_ADAPTIVE_DROPPED, MS));
    size_t limit = 0;
    CHECK_OK(rsl_adaptive_limit(a, &limit));
    CHECK(limit == 2);
    CHECK_OK(rsl_adaptive_record(a, t[1], RSL_ADAPTIVE_IGNORED, 0));
    CHECK_OK(rsl_adaptive_record(a, t[2], RSL_ADAPTIVE_SUCCESS, MS));
    CHECK_OK(rsl_adaptive_record(a, t[3], RSL_ADAPTIVE_SUCCESS, RSL_ADAPTIVE_RTT_MEASURE));
    CHECK_OK(rsl_adaptive_in_flight(a, &n));
    CHECK(n == 0);
    /* Given back twice with none in flight: refused, never below zero. */
    CHECK_STATUS(rsl_adaptive_record(a, t[3], RSL_ADAPTIVE_SUCCESS, MS), RSL_ERR_INVALID_ARG);
    CHECK(strstr(rsl_last_error(), "in flight") != NULL);
    CHECK_OK(rsl_adaptive_in_flight(a, &n));
    CHECK(n == 0);

    /* The real clock. */
    CHECK_OK(rsl_adaptive_try_acquire(a, &t[4]));
    CHECK(t[4].start_ns > 0 && t[4].inflight == 1);
    CHECK_OK(rsl_adaptive_record(a, t[4], RSL_ADAPTIVE_SUCCESS, RSL_ADAPTIVE_RTT_MEASURE));

    rsl_adaptive_stats st;
    memset(&st, 0xAB, sizeof st);
    CHECK_OK(rsl_adaptive_get_stats(a, &st));
    CHECK(st.limit == 2 && st.in_flight == 0 && st.rejected == 1 && st._reserved[4] == 0);

    CHECK_STATUS(rsl_adaptive_try_acquire(NULL, &t[0]), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_adaptive_try_acquire(a, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_adaptive_try_acquire_at(NULL, 1, &t[0]), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_adaptive_try_acquire_at(a, 1, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_adaptive_limit(NULL, &limit), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_adaptive_limit(a, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_adaptive_in_flight(NULL, &n), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_adaptive_in_flight(a, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_adaptive_get_stats(NULL, &st), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_adaptive_get_stats(a, NULL), RSL_ERR_NULL_ARG);
    rsl_adaptive_free(a);

    /* Gradient: samples at the no-load latency keep the limit in range. */
    rsl_adaptive_config g = rsl_adaptive_config_default();
    g.algorithm = RSL_ADAPTIVE_GRADIENT;
    g.initial_limit = 10; g.min_limit = 2; g.max_limit = 50;
    CHECK_OK(rsl_adaptive_new(&g, &a));
    for (int i = 0; i < 200; i++) {
        rsl_adaptive_token tk;
        CHECK_OK(rsl_adaptive_try_acquire_at(a, (uint64_t)i * MS, &tk));
        CHECK_OK(rsl_adaptive_record(a, tk, RSL_ADAPTIVE_SUCCESS, 10 * MS));
    }
    CHECK_OK(rsl_adaptive_limit(a, &limit));
    CHECK(limit >= 2 && limit <= 50);
    rsl_adaptive_free(a);
}

struct ad_arg { rsl_adaptive *a; atomic_int *inside; atomic_int *peak; int ok; int bad; };

static void *adaptive_thread(void *arg) {
    struct ad_arg *x = arg;
    for (int i = 0; i < 3000; i++) {
        rsl_adaptive_token t;
        rsl_status s = rsl_adaptive_try_acquire(x->a, &t);
        if (s == RSL_OK) {
            int now = atomic_fetch_add(x->inside, 1) + 1;
            int peak = atomic_load(x->peak);
            while (now > peak && !atomic_compare_exchange_weak(x->peak, &peak, now)) {}
            atomic_fetch_sub(x->inside, 1);
            int outcome = i % 3 == 0 ? RSL_ADAPTIVE_IGNORED : RSL_ADAPTIVE_SUCCESS;
            if (rsl_adaptive_record(x->a, t, outcome, MS) != RSL_OK) x->bad++;
            x->ok++;
        } else if (s != RSL_ERR_REJECTED) {
            x->bad++;
        }
    }
    return NULL;
}

static void test_adaptive_threads(void) {
    rsl_adaptive *a = adaptive(2, 2, 2); /* fixed limit 2 */
    atomic_int inside = 0, peak = 0;
    pthread_t th[THREADS];
    struct ad_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct ad_arg){a, &inside, &peak, 0, 0};
        pthread_create(&th[i], NULL, adaptive_thread, &args[i]);
    }
    int ok = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK(args[i].bad == 0);
        ok += args[i].ok;
    }
    CHECK(ok > 0 && atomic_load(&peak) <= 2);
    rsl_adaptive_stats st;
    CHECK_OK(rsl_adaptive_get_stats(a, &st));
    CHECK(st.in_flight == 0 && st.limit == 2 && st.rejected == (uint64_t)(THREADS * 3000 - ok));
    rsl_adaptive_free(a);
}

int main(void) {
    test_limiter_config();
    test_limiter_decisions();
    test_limiter_threads();
    test_keyed_config();
    test_keyed_decisions();
    test_keyed_many();
    test_check();
    test_keyed_threads();
    test_bulkhead_basics();
    test_bulkhead_threads();
    test_adaptive_config();
    test_adaptive_tokens();
    test_adaptive_threads();
    TEST_MAIN_END();
}
