/* SPSC and MPMC queues through the C ABI: every function, bad input, and
 * threads moving payloads (exactly once, in order per producer). */
#include "check.h"
#include <pthread.h>
#include <sched.h>
#include <string.h>

#define N_ITEMS 200000u

static void *spsc_producer_thread(void *arg) {
    rsl_spsc_producer *p = arg;
    uint64_t batch[17];
    uint64_t next = 0;
    while (next < N_ITEMS) {
        size_t n = 0;
        while (n < 17 && next + n < N_ITEMS) { batch[n] = next + n; n++; }
        size_t pushed = 0;
        if (rsl_spsc_push_many(p, batch, n, &pushed) != RSL_OK) return (void *)1;
        if (pushed == 0) sched_yield(); /* full: let the consumer run (valgrind serialises threads) */
        next += pushed;
    }
    return NULL;
}

static void test_spsc(void) {
    rsl_spsc_producer *p = NULL;
    rsl_spsc_consumer *c = NULL;
    CHECK_OK(rsl_spsc_new(3, &p, &c)); /* rounded up to 4 */
    size_t len = 99, cap = 0;
    CHECK_OK(rsl_spsc_producer_len(p, &len, &cap));
    CHECK(len == 0 && cap == 4);
    for (uint64_t i = 0; i < 4; i++) CHECK_OK(rsl_spsc_push(p, i + 10));
    CHECK_STATUS(rsl_spsc_push(p, 99), RSL_ERR_FULL);
    CHECK_OK(rsl_spsc_consumer_len(c, &len));
    CHECK(len == 4);
    uint64_t v = 0;
    CHECK_OK(rsl_spsc_pop(c, &v));
    CHECK(v == 10);
    uint64_t out[8] = {0};
    size_t n = 0;
    CHECK_OK(rsl_spsc_pop_many(c, out, 8, &n));
    CHECK(n == 3 && out[0] == 11 && out[2] == 13);
    CHECK_STATUS(rsl_spsc_pop(c, &v), RSL_ERR_EMPTY);
    CHECK_OK(rsl_spsc_pop_many(c, out, 8, &n));
    CHECK(n == 0);
    /* Wrap-around with batches. */
    uint64_t in[6] = {1, 2, 3, 4, 5, 6};
    CHECK_OK(rsl_spsc_push_many(p, in, 6, &n));
    CHECK(n == 4);
    CHECK_OK(rsl_spsc_pop_many(c, out, 2, &n));
    CHECK(n == 2 && out[0] == 1 && out[1] == 2);
    CHECK_OK(rsl_spsc_push_many(p, in + 4, 2, &n));
    CHECK(n == 2);
    CHECK_OK(rsl_spsc_pop_many(c, out, 8, &n));
    CHECK(n == 4 && out[0] == 3 && out[3] == 6);

    /* Bad input: NULL handles and pointers, zero and absurd capacities. */
    CHECK_STATUS(rsl_spsc_push(NULL, 1), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_spsc_pop(NULL, &v), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_spsc_pop(c, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_spsc_push_many(p, NULL, 3, &n), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_spsc_push_many(p, in, 3, NULL), RSL_ERR_NULL_ARG);
    CHECK_OK(rsl_spsc_push_many(p, NULL, 0, &n));
    CHECK(n == 0);
    CHECK_STATUS(rsl_spsc_pop_many(c, NULL, 3, &n), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_spsc_push_many(p, in, SIZE_MAX, &n), RSL_ERR_TOO_LARGE);
    CHECK_STATUS(rsl_spsc_producer_len(NULL, &len, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_spsc_consumer_len(c, NULL), RSL_ERR_NULL_ARG);
    rsl_spsc_producer *p2 = NULL;
    rsl_spsc_consumer *c2 = NULL;
    CHECK_STATUS(rsl_spsc_new(0, &p2, &c2), RSL_ERR_INVALID_ARG);
    CHECK_STATUS(rsl_spsc_new(SIZE_MAX, &p2, &c2), RSL_ERR_INVALID_ARG);
    CHECK_STATUS(rsl_spsc_new(4, NULL, &c2), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_spsc_new(4, &p2, NULL), RSL_ERR_NULL_ARG);
    CHECK(p2 == NULL && c2 == NULL); /* outputs untouched on error */

    /* Freeing the consumer closes the queue for the producer. */
    CHECK_OK(rsl_spsc_push(p, 7));
    rsl_spsc_consumer_free(c);
    for (int i = 0; i < 3; i++) CHECK_OK(rsl_spsc_push(p, 8));
    CHECK_STATUS(rsl_spsc_push(p, 9), RSL_ERR_CLOSED);
    rsl_spsc_producer_free(p);
    rsl_spsc_producer_free(NULL);
    rsl_spsc_consumer_free(NULL);

    /* Two threads: every payload exactly once, in order. */
    CHECK_OK(rsl_spsc_new(64, &p, &c));
    pthread_t t;
    pthread_create(&t, NULL, spsc_producer_thread, p);
    uint64_t expect = 0;
    while (expect < N_ITEMS) {
        uint64_t buf[32];
        CHECK_OK(rsl_spsc_pop_many(c, buf, 32, &n));
        if (n == 0) sched_yield();
        for (size_t i = 0; i < n; i++) {
            if (buf[i] != expect) { CHECK(buf[i] == expect); expect = N_ITEMS; break; }
            expect++;
        }
    }
    void *ret = NULL;
    pthread_join(t, &ret);
    CHECK(ret == NULL);
    rsl_spsc_producer_free(p);
    rsl_spsc_consumer_free(c);
}

struct mpmc_arg { rsl_mpmc *q; uint64_t id; };

static void *mpmc_producer_thread(void *arg) {
    struct mpmc_arg *a = arg;
    for (uint64_t i = 0; i < N_ITEMS / 2; i++) {
        while (rsl_mpmc_push(a->q, (a->id << 32) | i) == RSL_ERR_FULL) sched_yield();
    }
    return NULL;
}

static void test_mpmc(void) {
    rsl_mpmc *q = NULL;
    CHECK_OK(rsl_mpmc_new(5, &q)); /* rounded up to 8 */
    size_t len = 0, cap = 0, n = 0;
    CHECK_OK(rsl_mpmc_len(q, &len, &cap));
    CHECK(len == 0 && cap == 8);
    uint64_t in[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    CHECK_OK(rsl_mpmc_push_many(q, in, 10, &n));
    CHECK(n == 8);
    CHECK_STATUS(rsl_mpmc_push(q, 1), RSL_ERR_FULL);
    uint64_t v = 0, out[16];
    CHECK_OK(rsl_mpmc_pop(q, &v));
    CHECK(v == 0);
    CHECK_OK(rsl_mpmc_pop_many(q, out, 16, &n));
    CHECK(n == 7 && out[6] == 7);
    CHECK_STATUS(rsl_mpmc_pop(q, &v), RSL_ERR_EMPTY);
    CHECK_STATUS(rsl_mpmc_pop(q, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_mpmc_push(NULL, 1), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_mpmc_pop_many(q, NULL, 1, &n), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_mpmc_push_many(q, in, 1, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_mpmc_len(NULL, &len, &cap), RSL_ERR_NULL_ARG);
    rsl_mpmc *bad = NULL;
    CHECK_STATUS(rsl_mpmc_new(0, &bad), RSL_ERR_INVALID_ARG);
    CHECK_STATUS(rsl_mpmc_new((size_t)1 << 40, &bad), RSL_ERR_INVALID_ARG);
    CHECK_STATUS(rsl_mpmc_new(8, NULL), RSL_ERR_NULL_ARG);
    CHECK(bad == NULL);
    /* Payloads left inside are released with the queue. */
    CHECK_OK(rsl_mpmc_push(q, 42));
    rsl_mpmc_free(q);
    rsl_mpmc_free(NULL);

    /* Two producers, the main thread consumes: exactly once, ordered per producer. */
    CHECK_OK(rsl_mpmc_new(128, &q));
    pthread_t t[2];
    struct mpmc_arg args[2] = {{q, 0}, {q, 1}};
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, mpmc_producer_thread, &args[i]);
    uint64_t next[2] = {0, 0};
    uint64_t got = 0;
    while (got < N_ITEMS) {
        if (rsl_mpmc_pop(q, &v) != RSL_OK) { sched_yield(); continue; }
        uint64_t id = v >> 32, seq = v & 0xffffffffu;
        if (id > 1 || seq != next[id]) { CHECK(id <= 1 && seq == next[id]); break; }
        next[id]++;
        got++;
    }
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    CHECK(next[0] == N_ITEMS / 2 && next[1] == N_ITEMS / 2);
    rsl_mpmc_free(q);
}

#define N_BYTES_MSGS 20000u

struct bytes_arg { rsl_bytes_queue *q; uint32_t id; };

static void *bytes_producer_thread(void *arg) {
    struct bytes_arg *a = arg;
    unsigned char msg[16];
    for (uint32_t i = 0; i < N_BYTES_MSGS / 2; i++) {
        size_t len = 8 + i % 9;
        memcpy(msg, &a->id, 4);
        memcpy(msg + 4, &i, 4);
        for (size_t k = 8; k < len; k++) msg[k] = (unsigned char)(i + k);
        while (rsl_bytes_queue_push(a->q, msg, len) == RSL_ERR_FULL) sched_yield();
    }
    return NULL;
}

static void test_bytes_queue(void) {
    rsl_bytes_queue *q = NULL;
    CHECK(rsl_bytes_queue_new(0, 8, &q) == RSL_ERR_INVALID_ARG);
    CHECK(rsl_bytes_queue_new(4, 8, NULL) == RSL_ERR_NULL_ARG);
    CHECK_OK(rsl_bytes_queue_new(3, 8, &q));
    CHECK(rsl_bytes_queue_max_len(q) == 8);
    size_t len = 0, cap = 0;
    CHECK_OK(rsl_bytes_queue_len(q, &len, &cap));
    CHECK(len == 0 && cap == 4);
    CHECK(rsl_bytes_queue_push(q, (const uint8_t *)"123456789", 9) == RSL_ERR_TOO_LARGE);
    CHECK_OK(rsl_bytes_queue_push(q, (const uint8_t *)"hello", 5));
    CHECK_OK(rsl_bytes_queue_push(q, NULL, 0));
    unsigned char buf[8];
    len = 99;
    CHECK(rsl_bytes_queue_pop(q, buf, 3, &len) == RSL_ERR_BUFFER_TOO_SMALL);
    CHECK(len == 5);
    CHECK_OK(rsl_bytes_queue_pop(q, buf, sizeof buf, &len));
    CHECK(len == 5 && memcmp(buf, "hello", 5) == 0);
    CHECK_OK(rsl_bytes_queue_pop(q, buf, sizeof buf, &len));
    CHECK(len == 0);
    len = 7;
    CHECK(rsl_bytes_queue_pop(q, buf, sizeof buf, &len) == RSL_ERR_EMPTY);
    CHECK(len == 7);

    /* Batches: packed buffer plus a lengths array. */
    size_t lens[5] = {3, 3, 5, 1, 1}, n = 0;
    CHECK_OK(rsl_bytes_queue_push_many(q, (const uint8_t *)"onetwothreeab", 13, lens, 5, &n));
    CHECK(n == 4); /* capacity 4 */
    unsigned char packed[16];
    size_t got_lens[8];
    CHECK_OK(rsl_bytes_queue_pop_many(q, packed, sizeof packed, got_lens, 8, &n));
    CHECK(n == 4 && got_lens[2] == 5 && memcmp(packed, "onetwothreea", 12) == 0);
    CHECK_OK(rsl_bytes_queue_push(q, (const uint8_t *)"left", 4)); /* released with the queue */
    rsl_bytes_queue_free(q);
    rsl_bytes_queue_free(NULL);

    /* Two producers, the main thread consumes: intact, exactly once, ordered per producer. */
    CHECK_OK(rsl_bytes_queue_new(64, 16, &q));
    pthread_t t[2];
    struct bytes_arg args[2] = {{q, 0}, {q, 1}};
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, bytes_producer_thread, &args[i]);
    uint32_t next[2] = {0, 0};
    unsigned char m[16];
    for (uint32_t got = 0; got < N_BYTES_MSGS;) {
        if (rsl_bytes_queue_pop(q, m, sizeof m, &len) != RSL_OK) { sched_yield(); continue; }
        uint32_t id, i;
        memcpy(&id, m, 4);
        memcpy(&i, m + 4, 4);
        int ok = id <= 1 && i == next[id] && len == 8 + i % 9;
        for (size_t k = 8; ok && k < len; k++) ok = m[k] == (unsigned char)(i + k);
        if (!ok) { CHECK(ok); break; }
        next[id]++;
        got++;
    }
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    CHECK(next[0] == N_BYTES_MSGS / 2 && next[1] == N_BYTES_MSGS / 2);
    rsl_bytes_queue_free(q);
}

int main(void) {
    test_spsc();
    test_mpmc();
    test_bytes_queue();
    TEST_MAIN_END();
}
