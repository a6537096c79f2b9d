/* Idempotency store through the C ABI: every function, each answer of begin,
 * copy-out with "buffer too small", leases and takeover, retention and sweep,
 * the byte budget, bad input, and racing begins (exactly one started). */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include <pthread.h>
#include <stdint.h>

#define SEC 1000000000ull
#define K(s) (const uint8_t *)(s), (sizeof(s) - 1)

_Static_assert(sizeof(rsl_idem_config) == 112, "config size is part of the ABI");

struct answer {
    int32_t state;
    uint64_t token;
    uint64_t retry;
    uint8_t buf[64];
    size_t len;
};

static rsl_status begin_at(rsl_idem *s, const char *key, const char *fp, uint64_t lease, uint64_t now,
                           struct answer *a) {
    a->state = -1;
    a->token = a->retry = 777;
    a->len = 777;
    return rsl_idem_begin_at(s, (const uint8_t *)key, strlen(key), (const uint8_t *)fp, strlen(fp), lease, now,
                             &a->state, &a->token, &a->retry, a->buf, sizeof a->buf, &a->len);
}

static void test_config(void) {
    rsl_idem_config c = rsl_idem_config_default();
    CHECK(c.shards == 16 && c.max_bytes == 64u << 20 && c.retention_ns == 24 * 3600 * SEC);
    CHECK(c.max_key_len == 255 && c.max_fingerprint_len == 64 && c.max_response_len == 1u << 20);
    for (int i = 0; i < 8; i++) CHECK(c._reserved[i] == 0);
    rsl_idem *s = NULL;
    CHECK_OK(rsl_idem_new(NULL, &s));
    rsl_idem_free(s);
    s = NULL;
    CHECK_STATUS(rsl_idem_new(&c, NULL), RSL_ERR_NULL_ARG);
    rsl_idem_config bad = c;
    bad._reserved[7] = 1;
    CHECK_STATUS(rsl_idem_new(&bad, &s), RSL_ERR_INVALID_ARG);
    bad = c; bad.shards = 3;
    CHECK_STATUS(rsl_idem_new(&bad, &s), RSL_ERR_INVALID_ARG);
    bad = c; bad.shards = 0;
    CHECK_STATUS(rsl_idem_new(&bad, &s), RSL_ERR_INVALID_ARG);
    bad = c; bad.shards = UINT64_MAX;
    CHECK_STATUS(rsl_idem_new(&bad, &s), RSL_ERR_INVALID_ARG);
    bad = c; bad.retention_ns = 0;
    CHECK_STATUS(rsl_idem_new(&bad, &s), RSL_ERR_INVALID_ARG);
    bad = c; bad.max_key_len = 0;
    CHECK_STATUS(rsl_idem_new(&bad, &s), RSL_ERR_INVALID_ARG);
    bad = c; bad.max_response_len = UINT64_MAX;
    CHECK_STATUS(rsl_idem_new(&bad, &s), RSL_ERR_INVALID_ARG);
    bad = c; bad.max_bytes = 1000; /* cannot hold one record of maximum size */
    CHECK_STATUS(rsl_idem_new(&bad, &s), RSL_ERR_INVALID_ARG);
    CHECK(s == NULL);
}

static void test_lifecycle(void) {
    rsl_idem_config c = rsl_idem_config_default();
    c.shards = 2;
    c.retention_ns = 100 * SEC;
    rsl_idem *s = NULL;
    CHECK_OK(rsl_idem_new(&c, &s));
    const uint64_t t = 1000 * SEC;
    struct answer a, b;

    /* Started, then in progress for the same request, mismatch for another. */
    CHECK_OK(begin_at(s, "order-1", "fp-A", 30 * SEC, t, &a));
    CHECK(a.state == RSL_IDEM_STARTED && a.token != 0 && a.retry == 0 && a.len == 0);
    CHECK_OK(begin_at(s, "order-1", "fp-A", 30 * SEC, t + SEC, &b));
    CHECK(b.state == RSL_IDEM_IN_PROGRESS && b.token == 0 && b.retry == 29 * SEC && b.len == 0);
    CHECK_STATUS(begin_at(s, "order-1", "fp-B", 30 * SEC, t + SEC, &b), RSL_ERR_MISMATCH);
    CHECK(b.state == -1 && b.token == 777 && b.len == 777); /* nothing written */

    /* Only the owner completes; then every retry replays the response. */
    CHECK_STATUS(rsl_idem_complete_at(s, K("order-1"), a.token + 1, K("201 Created"), 0, t + 2 * SEC),
                 RSL_ERR_NOT_OWNER);
    CHECK_OK(rsl_idem_complete_at(s, K("order-1"), a.token, K("201 Created"), 0, t + 2 * SEC));
    CHECK_STATUS(rsl_idem_complete_at(s, K("order-1"), a.token, K("again"), 0, t + 2 * SEC), RSL_ERR_NOT_OWNER);
    CHECK(strstr(rsl_last_error(), "already completed") != NULL);
    CHECK_OK(begin_at(s, "order-1", "fp-A", 30 * SEC, t + 3 * SEC, &b));
    CHECK(b.state == RSL_IDEM_COMPLETED && b.len == 11 && memcmp(b.buf, "201 Created", 11) == 0);
    CHECK(b.token == 0 && b.retry == 0);
    CHECK_STATUS(begin_at(s, "order-1", "fp-B", 30 * SEC, t + 3 * SEC, &b), RSL_ERR_MISMATCH);

    /* Buffer too small: the needed size, nothing else; a retry replays. */
    int32_t state = -1;
    uint64_t token = 5, retry = 5;
    uint8_t small[4];
    size_t len = 0;
    CHECK_STATUS(rsl_idem_begin_at(s, K("order-1"), K("fp-A"), SEC, t + 3 * SEC, &state, &token, &retry, small,
                                   sizeof small, &len),
                 RSL_ERR_BUFFER_TOO_SMALL);
    CHECK(len == 11 && state == -1 && token == 5 && retry == 5);
    CHECK_STATUS(rsl_idem_begin_at(s, K("order-1"), K("fp-A"), SEC, t + 3 * SEC, &state, &token, NULL, NULL, 0,
                                   &len),
                 RSL_ERR_BUFFER_TOO_SMALL);
    CHECK(len == 11);
    /* Retention (100 s from completion at t+2s) ends it: the next begin starts afresh. */
    CHECK_OK(begin_at(s, "order-1", "fp-B", 30 * SEC, t + 102 * SEC, &b));
    CHECK(b.state == RSL_IDEM_STARTED);
    CHECK_OK(rsl_idem_abandon_at(s, K("order-1"), b.token, t + 102 * SEC));

    /* Abandon lets a retry start again; a wrong token is refused. */
    CHECK_OK(begin_at(s, "order-2", "", 10 * SEC, t, &a));
    CHECK_STATUS(rsl_idem_abandon_at(s, K("order-2"), a.token ^ 1, t), RSL_ERR_NOT_OWNER);
    CHECK_OK(rsl_idem_abandon_at(s, K("order-2"), a.token, t));
    CHECK_STATUS(rsl_idem_abandon_at(s, K("order-2"), a.token, t), RSL_ERR_NOT_FOUND);
    CHECK_STATUS(rsl_idem_complete_at(s, K("order-2"), a.token, K("x"), 0, t), RSL_ERR_NOT_FOUND);
    CHECK_OK(begin_at(s, "order-2", "", 10 * SEC, t, &a));
    CHECK(a.state == RSL_IDEM_STARTED);

    /* Lease over: the next begin takes over; the stale owner is refused. */
    uint64_t stale = a.token;
    CHECK_OK(begin_at(s, "order-2", "other", 10 * SEC, t + 10 * SEC, &b));
    CHECK(b.state == RSL_IDEM_STARTED_TAKEOVER && b.token != stale && b.token != 0);
    CHECK_STATUS(rsl_idem_complete_at(s, K("order-2"), stale, K("late"), 0, t + 11 * SEC), RSL_ERR_NOT_OWNER);
    CHECK_STATUS(rsl_idem_abandon_at(s, K("order-2"), stale, t + 11 * SEC), RSL_ERR_NOT_OWNER);
    /* An explicit retention, then sweep. */
    CHECK_OK(rsl_idem_complete_at(s, K("order-2"), b.token, K("ok"), 5 * SEC, t + 11 * SEC));
    size_t removed = 99;
    CHECK_OK(rsl_idem_sweep_at(s, t + 15 * SEC, 100, &removed));
    CHECK(removed == 0);
    CHECK_OK(rsl_idem_sweep_at(s, t + 16 * SEC, 100, &removed));
    CHECK(removed == 1);
    CHECK_OK(rsl_idem_sweep_at(s, t + 16 * SEC, 100, NULL));

    /* The clock-reading variants. */
    CHECK_OK(rsl_idem_begin(s, K("live"), K("fp"), 60 * SEC, &state, &token, &retry, NULL, 0, &len));
    CHECK(state == RSL_IDEM_STARTED && token != 0 && len == 0);
    CHECK_OK(rsl_idem_begin(s, K("live"), K("fp"), 60 * SEC, &state, &token, NULL, NULL, 0, &len));
    CHECK(state == RSL_IDEM_IN_PROGRESS && token == 0);
    CHECK_OK(rsl_idem_begin(s, K("live2"), NULL, 0, 60 * SEC, &state, &token, NULL, NULL, 0, &len));
    CHECK_OK(rsl_idem_abandon(s, K("live2"), token));
    CHECK_OK(rsl_idem_begin(s, K("live"), K("fp"), 60 * SEC, &state, &token, &retry, NULL, 0, &len));
    CHECK(state == RSL_IDEM_IN_PROGRESS && retry > 0 && retry <= 60 * SEC);
    CHECK_OK(rsl_idem_begin(s, K("live3"), K("fp"), 60 * SEC, &state, &token, NULL, NULL, 0, &len));
    CHECK_OK(rsl_idem_complete(s, K("live3"), token, NULL, 0)); /* an empty response */
    CHECK_OK(rsl_idem_begin(s, K("live3"), K("fp"), 60 * SEC, &state, &token, NULL, NULL, 0, &len));
    CHECK(state == RSL_IDEM_COMPLETED && len == 0);
    CHECK_OK(rsl_idem_sweep(s, 10, &removed));
    CHECK(removed == 0);
    CHECK_OK(rsl_idem_sweep(s, 10, NULL));

    rsl_idem_stats st;
    CHECK_OK(rsl_idem_get_stats(s, &st));
    CHECK(st.started == 8 && st.takeovers == 1 && st.replays == 4 && st.in_progress == 3);
    CHECK(st.mismatches == 2 && st.completed == 3 && st.abandoned == 3 && st.expired >= 2);
    CHECK(st.records == 2 && st.in_progress_records == 1 && st.bytes_used > 0 && st._reserved[0] == 0);
    rsl_idem_free(s);
    rsl_idem_free(NULL);
}

static void test_full(void) {
    rsl_idem_config c = rsl_idem_config_default();
    c.shards = 1;
    c.max_key_len = 16;
    c.max_fingerprint_len = 16;
    c.max_response_len = 64;
    c.max_bytes = 650; /* a record of key 8, no fingerprint costs 2*8 + 192 = 208: three fit */
    rsl_idem *s = NULL;
    CHECK_OK(rsl_idem_new(&c, &s));
    struct answer a;
    uint64_t tokens[3];
    const char *keys[4] = {"key-0000", "key-0001", "key-0002", "key-0003"};
    for (int i = 0; i < 3; i++) {
        CHECK_OK(begin_at(s, keys[i], "", SEC, 1, &a));
        tokens[i] = a.token;
    }
    /* Live in-progress records are never evicted: shed load. */
    CHECK_STATUS(begin_at(s, keys[3], "", SEC, 1, &a), RSL_ERR_FULL);
    /* A response that does not fit leaves the record in progress. */
    uint8_t resp[64] = {0};
    CHECK_STATUS(rsl_idem_complete_at(s, (const uint8_t *)keys[0], 8, tokens[0], resp, 64, 0, 2), RSL_ERR_FULL);
    CHECK_OK(rsl_idem_abandon_at(s, (const uint8_t *)keys[1], 8, tokens[1], 2));
    CHECK_OK(rsl_idem_complete_at(s, (const uint8_t *)keys[0], 8, tokens[0], resp, 64, 0, 2));
    /* Limits of the config. */
    CHECK_STATUS(begin_at(s, "a-key-of-17-bytes", "", SEC, 1, &a), RSL_ERR_TOO_LARGE);
    CHECK_STATUS(begin_at(s, "k", "a-fingerprint-17b", SEC, 1, &a), RSL_ERR_TOO_LARGE);
    uint8_t big[65] = {0};
    CHECK_STATUS(rsl_idem_complete_at(s, (const uint8_t *)keys[2], 8, tokens[2], big, 65, 0, 2), RSL_ERR_TOO_LARGE);
    rsl_idem_stats st;
    CHECK_OK(rsl_idem_get_stats(s, &st));
    CHECK(st.full == 1 && st.complete_full == 1);
    rsl_idem_free(s);
}

static void test_bad_input(void) {
    rsl_idem *s = NULL;
    CHECK_OK(rsl_idem_new(NULL, &s));
    int32_t state = -1;
    uint64_t token = 0, retry = 0;
    uint8_t buf[8];
    size_t len = 0;
    CHECK_STATUS(rsl_idem_begin(NULL, K("k"), K("f"), SEC, &state, &token, &retry, buf, 8, &len), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_idem_begin(s, NULL, 3, K("f"), SEC, &state, &token, &retry, buf, 8, &len), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_idem_begin(s, K("k"), NULL, 3, SEC, &state, &token, &retry, buf, 8, &len), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_idem_begin(s, K("k"), K("f"), SEC, NULL, &token, &retry, buf, 8, &len), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_idem_begin(s, K("k"), K("f"), SEC, &state, NULL, &retry, buf, 8, &len), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_idem_begin(s, K("k"), K("f"), SEC, &state, &token, &retry, NULL, 8, &len), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_idem_begin(s, K("k"), K("f"), SEC, &state, &token, &retry, buf, 8, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_idem_begin(s, (const uint8_t *)"k", SIZE_MAX, K("f"), SEC, &state, &token, &retry, buf, 8, &len),
                 RSL_ERR_TOO_LARGE);
    CHECK_STATUS(rsl_idem_begin(s, K("k"), (const uint8_t *)"f", SIZE_MAX, SEC, &state, &token, &retry, buf, 8, &len),
                 RSL_ERR_TOO_LARGE);
    CHECK_STATUS(rsl_idem_begin(s, K("k"), K("f"), SEC, &state, &token, &retry, buf, SIZE_MAX, &len),
                 RSL_ERR_TOO_LARGE);
    CHECK_STATUS(rsl_idem_begin(s, NULL, 0, K("f"), SEC, &state, &token, &retry, buf, 8, &len), RSL_ERR_INVALID_ARG);
    CHECK_STATUS(rsl_idem_begin(s, K("k"), K("f"), 0, &state, &token, &retry, buf, 8, &len), RSL_ERR_INVALID_ARG);
    CHECK_STATUS(rsl_idem_begin_at(NULL, K("k"), K("f"), SEC, 1, &state, &token, &retry, buf, 8, &len),
                 RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_idem_begin_at(s, K("k"), K("f"), 0, 1, &state, &token, &retry, buf, 8, &len),
                 RSL_ERR_INVALID_ARG);
    CHECK(state == -1 && token == 0 && len == 0);
    /* A key at the default limit of 255 bytes is fine; 256 is too long. */
    uint8_t key[256];
    memset(key, 'k', sizeof key);
    CHECK_OK(rsl_idem_begin(s, key, 255, NULL, 0, SEC, &state, &token, NULL, NULL, 0, &len));
    CHECK_STATUS(rsl_idem_begin(s, key, 256, NULL, 0, SEC, &state, &token, NULL, NULL, 0, &len), RSL_ERR_TOO_LARGE);

    CHECK_STATUS(rsl_idem_complete(NULL, K("k"), 1, K("r")), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_idem_complete(s, NULL, 1, 1, K("r")), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_idem_complete(s, K("k"), 1, NULL, 1), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_idem_complete(s, K("k"), 1, (const uint8_t *)"r", SIZE_MAX), RSL_ERR_TOO_LARGE);
    CHECK_STATUS(rsl_idem_complete(s, NULL, 0, 1, K("r")), RSL_ERR_INVALID_ARG);
    CHECK_STATUS(rsl_idem_complete(s, K("nope"), 1, K("r")), RSL_ERR_NOT_FOUND);
    CHECK_STATUS(rsl_idem_complete_at(NULL, K("k"), 1, K("r"), 0, 1), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_idem_complete_at(s, (const uint8_t *)"k", SIZE_MAX, 1, K("r"), 0, 1), RSL_ERR_TOO_LARGE);
    CHECK_STATUS(rsl_idem_abandon(NULL, K("k"), 1), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_idem_abandon(s, NULL, 1, 1), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_idem_abandon(s, NULL, 0, 1), RSL_ERR_INVALID_ARG);
    CHECK_STATUS(rsl_idem_abandon(s, K("nope"), 1), RSL_ERR_NOT_FOUND);
    CHECK_STATUS(rsl_idem_abandon_at(NULL, K("k"), 1, 1), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_idem_abandon_at(s, (const uint8_t *)"k", SIZE_MAX, 1, 1), RSL_ERR_TOO_LARGE);
    CHECK_STATUS(rsl_idem_sweep(NULL, 1, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_idem_sweep_at(NULL, 1, 1, NULL), RSL_ERR_NULL_ARG);
    rsl_idem_stats st;
    CHECK_STATUS(rsl_idem_get_stats(NULL, &st), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_idem_get_stats(s, NULL), RSL_ERR_NULL_ARG);
    rsl_idem_free(s);
}

/* Racing begins on each key: exactly one is started, the others see it in
 * progress; after completion every begin replays the response. */
#define THREADS 4
#define KEYS 200
struct race { rsl_idem *s; int started; int in_progress; int replayed; int other; };

static void *race_thread(void *arg) {
    struct race *r = arg;
    for (int phase = 0; phase < 2; phase++) {
        for (int k = 0; k < KEYS; k++) {
            char key[32];
            snprintf(key, sizeof key, "race-%d", k);
            struct answer a;
            rsl_status st = begin_at(r->s, key, "fp", 60 * SEC, 1, &a);
            if (st != RSL_OK) { r->other++; continue; }
            if (a.state == RSL_IDEM_STARTED) {
                r->started++;
                if (phase == 1) r->other++;
            } else if (a.state == RSL_IDEM_IN_PROGRESS) {
                r->in_progress++;
            } else if (a.state == RSL_IDEM_COMPLETED && a.len == strlen(key) && memcmp(a.buf, key, a.len) == 0) {
                r->replayed++;
            } else {
                r->other++;
            }
        }
    }
    return NULL;
}

static void test_race(void) {
    rsl_idem *s = NULL;
    CHECK_OK(rsl_idem_new(NULL, &s));
    pthread_t th[THREADS];
    struct race r[THREADS];
    memset(r, 0, sizeof r);
    for (int i = 0; i < THREADS; i++) {
        r[i].s = s;
        pthread_create(&th[i], NULL, race_thread, &r[i]);
    }
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    int started = 0, in_progress = 0, replayed = 0, other = 0;
    for (int i = 0; i < THREADS; i++) {
        started += r[i].started;
        in_progress += r[i].in_progress;
        replayed += r[i].replayed;
        other += r[i].other;
    }
    /* Nobody completes here: exactly one start per key over both passes. */
    CHECK(started == KEYS);
    CHECK(in_progress == 2 * THREADS * KEYS - KEYS);
    CHECK(replayed == 0 && other == 0);
    rsl_idem_stats st;
    CHECK_OK(rsl_idem_get_stats(s, &st));
    CHECK(st.started == KEYS && st.records == KEYS && st.in_progress_records == KEYS);
    rsl_idem_free(s);
}

struct complete_race { rsl_idem *s; int id; int started; int replayed; int other; };

static void *complete_thread(void *arg) {
    struct complete_race *r = arg;
    for (int k = 0; k < KEYS; k++) {
        char key[32];
        snprintf(key, sizeof key, "key-%d", k);
        for (;;) {
            struct answer a;
            rsl_status st = begin_at(r->s, key, "fp", 60 * SEC, 1, &a);
            if (st != RSL_OK) { r->other++; break; }
            if (a.state == RSL_IDEM_STARTED) {
                r->started++;
                if (rsl_idem_complete_at(r->s, (const uint8_t *)key, strlen(key), a.token, (const uint8_t *)key,
                                         strlen(key), 0, 1) != RSL_OK)
                    r->other++;
                break;
            }
            if (a.state == RSL_IDEM_COMPLETED) {
                if (a.len == strlen(key) && memcmp(a.buf, key, a.len) == 0) r->replayed++;
                else r->other++;
                break;
            }
            /* In progress: the owner is about to complete; ask again. */
        }
    }
    return NULL;
}

static void test_complete_race(void) {
    rsl_idem *s = NULL;
    CHECK_OK(rsl_idem_new(NULL, &s));
    pthread_t th[THREADS];
    struct complete_race r[THREADS];
    memset(r, 0, sizeof r);
    for (int i = 0; i < THREADS; i++) {
        r[i].s = s;
        r[i].id = i;
        pthread_create(&th[i], NULL, complete_thread, &r[i]);
    }
    int started = 0, replayed = 0, other = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        started += r[i].started;
        replayed += r[i].replayed;
        other += r[i].other;
    }
    CHECK(started == KEYS);                      /* the work ran once per key */
    CHECK(replayed == (THREADS - 1) * KEYS);     /* every other caller got its response */
    CHECK(other == 0);
    rsl_idem_free(s);
}

int main(void) {
    test_config();
    test_lifecycle();
    test_full();
    test_bad_input();
    test_race();
    test_complete_race();
    TEST_MAIN_END();
}
