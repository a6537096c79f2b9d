/* Byte cache through the C ABI: every function, copy-out with "buffer too
 * small", TTL under explicit time, weight rejection, the batch get, bad
 * input, and threads (values never torn, counts add up). */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define K(s) (const uint8_t *)(s), (sizeof(s) - 1)

_Static_assert(sizeof(rsl_cache_config) == 96, "config size is part of the ABI");

static void test_config(void) {
    rsl_cache_config c = rsl_cache_config_default();
    CHECK(c.max_entries == 0 && c.max_weight == 64u << 20 && c.default_ttl_ns == 0 && c.shards == 0);
    for (int i = 0; i < 8; i++) CHECK(c._reserved[i] == 0);
    rsl_cache *cache = NULL;
    CHECK_OK(rsl_cache_new(NULL, &cache));
    rsl_cache_free(cache);
    cache = NULL;
    CHECK_STATUS(rsl_cache_new(&c, NULL), RSL_ERR_NULL_ARG);
    rsl_cache_config bad = c;
    bad._reserved[2] = 1;
    CHECK_STATUS(rsl_cache_new(&bad, &cache), RSL_ERR_INVALID_ARG);
    bad = c; bad.max_weight = 0; /* unbounded */
    CHECK_STATUS(rsl_cache_new(&bad, &cache), RSL_ERR_INVALID_ARG);
    bad = c; bad.shards = 3;
    CHECK_STATUS(rsl_cache_new(&bad, &cache), RSL_ERR_INVALID_ARG);
    bad = c; bad.shards = 1u << 17;
    CHECK_STATUS(rsl_cache_new(&bad, &cache), RSL_ERR_INVALID_ARG);
    bad = c; bad.shards = UINT64_MAX;
    CHECK_STATUS(rsl_cache_new(&bad, &cache), RSL_ERR_INVALID_ARG);
    bad = c; bad.max_entries = 2; bad.shards = 4; /* more shards than entries */
    CHECK_STATUS(rsl_cache_new(&bad, &cache), RSL_ERR_INVALID_ARG);
    bad = c; bad.max_entries = UINT64_MAX; bad.shards = 1;
    CHECK_STATUS(rsl_cache_new(&bad, &cache), RSL_ERR_INVALID_ARG);
    CHECK(strstr(rsl_last_error(), "entries") != NULL);
    CHECK(cache == NULL);
    /* A count-only cache is fine. */
    bad = c; bad.max_weight = 0; bad.max_entries = 100;
    CHECK_OK(rsl_cache_new(&bad, &cache));
    rsl_cache_free(cache);
}

static void test_basics(void) {
    rsl_cache_config c = rsl_cache_config_default();
    c.max_weight = 1 << 20;
    c.shards = 2;
    rsl_cache *cache = NULL;
    CHECK_OK(rsl_cache_new(&c, &cache));
    uint8_t buf[32];
    size_t len = 0;

    CHECK_STATUS(rsl_cache_get(cache, K("user:1"), buf, sizeof buf, &len), RSL_ERR_NOT_FOUND);
    CHECK_OK(rsl_cache_insert(cache, K("user:1"), K("alice"), RSL_CACHE_TTL_DEFAULT));
    CHECK_OK(rsl_cache_get(cache, K("user:1"), buf, sizeof buf, &len));
    CHECK(len == 5 && memcmp(buf, "alice", 5) == 0);
    /* Too small: the needed size, nothing copied. */
    memset(buf, 0, sizeof buf);
    CHECK_STATUS(rsl_cache_get(cache, K("user:1"), buf, 4, &len), RSL_ERR_BUFFER_TOO_SMALL);
    CHECK(len == 5 && buf[0] == 0);
    CHECK_STATUS(rsl_cache_get(cache, K("user:1"), NULL, 0, &len), RSL_ERR_BUFFER_TOO_SMALL);
    CHECK(len == 5);
    /* Replace; empty key and empty value are values like any other. */
    CHECK_OK(rsl_cache_insert(cache, K("user:1"), K("bob"), RSL_CACHE_TTL_NEVER));
    CHECK_OK(rsl_cache_get(cache, K("user:1"), buf, sizeof buf, &len));
    CHECK(len == 3 && memcmp(buf, "bob", 3) == 0);
    CHECK_OK(rsl_cache_insert(cache, NULL, 0, NULL, 0, 0));
    len = 99;
    CHECK_OK(rsl_cache_get(cache, NULL, 0, NULL, 0, &len));
    CHECK(len == 0);
    bool present = false;
    CHECK_OK(rsl_cache_contains(cache, NULL, 0, &present));
    CHECK(present);
    CHECK_OK(rsl_cache_contains(cache, K("user:2"), &present));
    CHECK(!present);

    size_t n = 0;
    uint64_t weight = 0;
    CHECK_OK(rsl_cache_len(cache, &n, &weight));
    CHECK(n == 2 && (weight == 6 + 3 || weight == 6 + 3 + 1)); /* an empty entry may weigh 1 */
    CHECK_OK(rsl_cache_len(cache, NULL, NULL));
    CHECK_OK(rsl_cache_remove(cache, K("user:1")));
    CHECK_STATUS(rsl_cache_remove(cache, K("user:1")), RSL_ERR_NOT_FOUND);
    CHECK_STATUS(rsl_cache_get(cache, K("user:1"), buf, sizeof buf, &len), RSL_ERR_NOT_FOUND);

    rsl_cache_stats st;
    CHECK_OK(rsl_cache_get_stats(cache, &st));
    CHECK(st.hits == 5 && st.misses == 2 && st.inserts == 2 && st.updates == 1);
    CHECK(st.entries == 1 && st.weight <= 1 && st._reserved[0] == 0);
    CHECK_OK(rsl_cache_clear(cache));
    CHECK_OK(rsl_cache_len(cache, &n, NULL));
    CHECK(n == 0);
    CHECK_OK(rsl_cache_get_stats(cache, &st));
    CHECK(st.inserts == 2); /* counters survive clear */
    rsl_cache_free(cache);
    rsl_cache_free(NULL);
}

static void test_ttl_and_weight(void) {
    rsl_cache_config c = rsl_cache_config_default();
    c.max_weight = 64;
    c.shards = 1;
    c.default_ttl_ns = 1000;
    rsl_cache *cache = NULL;
    CHECK_OK(rsl_cache_new(&c, &cache));
    uint8_t buf[64];
    size_t len = 0;
    const uint64_t t = 1000000;
    bool present = false;

    CHECK_OK(rsl_cache_insert_at(cache, K("a"), K("1"), 100, t));
    CHECK_OK(rsl_cache_insert_at(cache, K("b"), K("2"), RSL_CACHE_TTL_DEFAULT, t));
    CHECK_OK(rsl_cache_insert_at(cache, K("c"), K("3"), RSL_CACHE_TTL_NEVER, t));
    CHECK_OK(rsl_cache_get_at(cache, K("a"), t + 99, buf, sizeof buf, &len));
    CHECK_STATUS(rsl_cache_get_at(cache, K("a"), t + 100, buf, sizeof buf, &len), RSL_ERR_NOT_FOUND);
    CHECK_OK(rsl_cache_contains_at(cache, K("b"), t + 999, &present));
    CHECK(present);
    CHECK_OK(rsl_cache_contains_at(cache, K("b"), t + 1000, &present));
    CHECK(!present);
    CHECK_OK(rsl_cache_contains_at(cache, K("c"), UINT64_MAX - 1, &present));
    CHECK(present);
    size_t removed = 99;
    CHECK_OK(rsl_cache_sweep_at(cache, t + 2000, 10, &removed));
    CHECK(removed == 1); /* "b"; "a" went on the read */
    CHECK_OK(rsl_cache_sweep_at(cache, t + 2000, 10, NULL));
    CHECK_OK(rsl_cache_sweep(cache, 10, &removed));
    CHECK(removed == 0);
    CHECK_OK(rsl_cache_sweep(cache, 10, NULL));

    /* Heavier than the shard's budget: refused, and the old value is gone. */
    uint8_t big[64];
    memset(big, 'x', sizeof big);
    CHECK_OK(rsl_cache_insert(cache, K("c"), big, 63, RSL_CACHE_TTL_NEVER));
    CHECK_STATUS(rsl_cache_insert(cache, K("c"), big, 64, RSL_CACHE_TTL_NEVER), RSL_ERR_TOO_LARGE);
    CHECK_STATUS(rsl_cache_insert_at(cache, K("c"), big, 64, 5, t), RSL_ERR_TOO_LARGE);
    CHECK_OK(rsl_cache_contains(cache, K("c"), &present));
    CHECK(!present);
    /* Born expired (at the end of the clock): OK, not kept, the old value
     * gone, and not counted as a rejection. */
    rsl_cache_stats before;
    CHECK_OK(rsl_cache_insert(cache, K("d"), K("4"), RSL_CACHE_TTL_NEVER));
    CHECK_OK(rsl_cache_get_stats(cache, &before));
    CHECK_OK(rsl_cache_insert_at(cache, K("d"), K("5"), 10, UINT64_MAX));
    CHECK_OK(rsl_cache_contains(cache, K("d"), &present));
    CHECK(!present);
    rsl_cache_stats after;
    CHECK_OK(rsl_cache_get_stats(cache, &after));
    CHECK(after.rejections == before.rejections);
    /* Born expired and too heavy: too heavy wins, as without a TTL. */
    CHECK_STATUS(rsl_cache_insert_at(cache, K("d"), big, 64, 10, UINT64_MAX), RSL_ERR_TOO_LARGE);
    /* Eviction keeps the weight within the budget. */
    for (int i = 0; i < 40; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%02d", i);
        CHECK_OK(rsl_cache_insert(cache, (const uint8_t *)key, 3, big, 7, RSL_CACHE_TTL_NEVER));
    }
    uint64_t weight = 0;
    size_t n = 0;
    CHECK_OK(rsl_cache_len(cache, &n, &weight));
    CHECK(weight <= 64 && n <= 6 && n > 0);
    rsl_cache_stats st;
    CHECK_OK(rsl_cache_get_stats(cache, &st));
    /* Three too heavy (one of them born expired too); the light born-expired
     * insert is not a rejection. */
    CHECK(st.evictions > 0 && st.rejections == 3 && st.expirations >= 2);
    rsl_cache_free(cache);
}

static void test_get_many(void) {
    rsl_cache *cache = NULL;
    CHECK_OK(rsl_cache_new(NULL, &cache));
    CHECK_OK(rsl_cache_insert(cache, K("one"), K("1"), 0));
    CHECK_OK(rsl_cache_insert(cache, K("three"), K("333"), 0));
    CHECK_OK(rsl_cache_insert(cache, K("long"), K("0123456789"), 0));
    CHECK_OK(rsl_cache_insert(cache, K("two"), K("22"), 0));

    const uint8_t *keys[6] = {(const uint8_t *)"one", (const uint8_t *)"missing", (const uint8_t *)"three",
                              (const uint8_t *)"long", NULL, (const uint8_t *)"two"};
    size_t lens[6] = {3, 7, 5, 4, 2, 3};
    uint8_t buf[8];
    size_t offs[6], vlens[6];
    int32_t st[6];
    CHECK_OK(rsl_cache_get_many(cache, keys, lens, 6, buf, sizeof buf, offs, vlens, st));
    CHECK(st[0] == RSL_OK && offs[0] == 0 && vlens[0] == 1 && buf[0] == '1');
    CHECK(st[1] == RSL_ERR_NOT_FOUND && vlens[1] == 0);
    CHECK(st[2] == RSL_OK && offs[2] == 1 && vlens[2] == 3 && memcmp(buf + 1, "333", 3) == 0);
    CHECK(st[3] == RSL_ERR_BUFFER_TOO_SMALL && vlens[3] == 10); /* 4 bytes left */
    CHECK(st[4] == RSL_ERR_NULL_ARG);                           /* that key only */
    CHECK(st[5] == RSL_OK && offs[5] == 4 && vlens[5] == 2 && memcmp(buf + 4, "22", 2) == 0);
    /* The clocked variant, and an absurd key length in one slot. */
    lens[4] = SIZE_MAX;
    keys[4] = (const uint8_t *)"x";
    CHECK_OK(rsl_cache_get_many_at(cache, keys, lens, 6, UINT64_MAX / 2, buf, sizeof buf, offs, vlens, st));
    CHECK(st[0] == RSL_OK && st[4] == RSL_ERR_TOO_LARGE && st[5] == RSL_OK);
    /* Empty batches need no arrays. */
    CHECK_OK(rsl_cache_get_many(cache, NULL, NULL, 0, NULL, 0, NULL, NULL, NULL));
    /* Bad arrays fail the whole call. */
    CHECK_STATUS(rsl_cache_get_many(NULL, keys, lens, 6, buf, 8, offs, vlens, st), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_get_many(cache, NULL, lens, 6, buf, 8, offs, vlens, st), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_get_many(cache, keys, NULL, 6, buf, 8, offs, vlens, st), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_get_many(cache, keys, lens, 6, NULL, 8, offs, vlens, st), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_get_many(cache, keys, lens, 6, buf, 8, NULL, vlens, st), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_get_many(cache, keys, lens, 6, buf, 8, offs, NULL, st), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_get_many(cache, keys, lens, 6, buf, 8, offs, vlens, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_get_many(cache, keys, lens, SIZE_MAX, buf, 8, offs, vlens, st), RSL_ERR_TOO_LARGE);
    CHECK_STATUS(rsl_cache_get_many(cache, keys, lens, 6, buf, SIZE_MAX, offs, vlens, st), RSL_ERR_TOO_LARGE);
    CHECK_STATUS(rsl_cache_get_many_at(NULL, keys, lens, 6, 1, buf, 8, offs, vlens, st), RSL_ERR_NULL_ARG);
    rsl_cache_free(cache);
}

static void test_bad_input(void) {
    rsl_cache *cache = NULL;
    CHECK_OK(rsl_cache_new(NULL, &cache));
    uint8_t buf[8];
    size_t len = 0;
    bool present = false;
    CHECK_STATUS(rsl_cache_get(NULL, K("k"), buf, 8, &len), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_get(cache, NULL, 1, buf, 8, &len), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_get(cache, K("k"), NULL, 8, &len), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_get(cache, K("k"), buf, 8, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_get(cache, (const uint8_t *)"k", SIZE_MAX, buf, 8, &len), RSL_ERR_TOO_LARGE);
    CHECK_STATUS(rsl_cache_get(cache, K("k"), buf, SIZE_MAX, &len), RSL_ERR_TOO_LARGE);
    CHECK_STATUS(rsl_cache_get_at(NULL, K("k"), 1, buf, 8, &len), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_get_at(cache, K("k"), 1, buf, 8, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_insert(NULL, K("k"), K("v"), 0), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_insert(cache, NULL, 1, K("v"), 0), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_insert(cache, K("k"), NULL, 1, 0), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_insert(cache, (const uint8_t *)"k", SIZE_MAX, K("v"), 0), RSL_ERR_TOO_LARGE);
    CHECK_STATUS(rsl_cache_insert(cache, K("k"), (const uint8_t *)"v", SIZE_MAX, 0), RSL_ERR_TOO_LARGE);
    CHECK_STATUS(rsl_cache_insert_at(NULL, K("k"), K("v"), 0, 1), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_insert_at(cache, K("k"), (const uint8_t *)"v", SIZE_MAX, 0, 1), RSL_ERR_TOO_LARGE);
    CHECK_STATUS(rsl_cache_remove(NULL, K("k")), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_remove(cache, NULL, 1), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_remove(cache, (const uint8_t *)"k", SIZE_MAX), RSL_ERR_TOO_LARGE);
    CHECK_STATUS(rsl_cache_contains(NULL, K("k"), &present), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_contains(cache, K("k"), NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_contains(cache, NULL, 1, &present), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_contains_at(NULL, K("k"), 1, &present), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_contains_at(cache, K("k"), 1, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_contains_at(cache, (const uint8_t *)"k", SIZE_MAX, 1, &present), RSL_ERR_TOO_LARGE);
    CHECK_STATUS(rsl_cache_len(NULL, &len, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_clear(NULL), RSL_ERR_NULL_ARG);
    rsl_cache_stats st;
    CHECK_STATUS(rsl_cache_get_stats(NULL, &st), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_get_stats(cache, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_sweep(NULL, 1, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_cache_sweep_at(NULL, 1, 1, NULL), RSL_ERR_NULL_ARG);
    CHECK_OK(rsl_cache_len(cache, &len, NULL));
    CHECK(len == 0); /* nothing was stored by the failed calls */
    rsl_cache_free(cache);
}

/* Threads writing and reading shared keys: a value is never torn (each is
 * one repeated byte) and never has a length that was not written. */
#define THREADS 4
#define OPS 5000
struct worker { rsl_cache *c; int id; int torn; int bad; int hits; };

static void *worker_thread(void *arg) {
    struct worker *w = arg;
    uint8_t val[256], buf[256];
    for (int i = 0; i < OPS; i++) {
        char key[16];
        int k = (i * 7 + w->id) % 64;
        snprintf(key, sizeof key, "key-%d", k);
        size_t klen = strlen(key);
        if (i % 3 == 0) {
            size_t vlen = (size_t)(1 + (i + w->id) % 255);
            memset(val, 'a' + w->id, vlen);
            if (rsl_cache_insert(w->c, (const uint8_t *)key, klen, val, vlen, 0) != RSL_OK) w->bad++;
        } else {
            size_t len = 0;
            rsl_status s = rsl_cache_get(w->c, (const uint8_t *)key, klen, buf, sizeof buf, &len);
            if (s == RSL_OK) {
                w->hits++;
                for (size_t j = 1; j < len; j++) {
                    if (buf[j] != buf[0]) { w->torn++; break; }
                }
                if (len == 0 || len > 255) w->torn++;
            } else if (s != RSL_ERR_NOT_FOUND) {
                w->bad++;
            }
        }
    }
    return NULL;
}

/* Keys of every length from 0 to 64 (inline up to 15 bytes, on the heap
 * beyond): each is found by its own bytes only and keeps its latest value;
 * valgrind and ASan see every key copy freed on update, remove and free. */
static void test_key_lengths(void) {
    rsl_cache_config c = rsl_cache_config_default();
    c.max_entries = 80;
    c.shards = 1;
    rsl_cache *cache = NULL;
    CHECK_OK(rsl_cache_new(&c, &cache));
    uint8_t key[64], buf[8];
    size_t len = 0;
    for (int round = 0; round < 2; round++) {
        for (size_t n = 0; n <= sizeof key; n++) {
            memset(key, 'k', sizeof key);
            uint8_t v = (uint8_t)(n + round);
            CHECK_OK(rsl_cache_insert(cache, key, n, &v, 1, RSL_CACHE_TTL_NEVER));
        }
    }
    /* Every length is present once, with its second value; a key differing
     * in its last byte is a different key. */
    for (size_t n = 1; n <= sizeof key; n++) {
        memset(key, 'k', sizeof key);
        CHECK_OK(rsl_cache_get(cache, key, n, buf, sizeof buf, &len));
        CHECK(len == 1 && buf[0] == (uint8_t)(n + 1));
        key[n - 1] = 'x';
        CHECK_STATUS(rsl_cache_get(cache, key, n, buf, sizeof buf, &len), RSL_ERR_NOT_FOUND);
    }
    for (size_t n = 14; n <= 17; n++) {
        memset(key, 'k', sizeof key);
        CHECK_OK(rsl_cache_remove(cache, key, n));
        CHECK_STATUS(rsl_cache_get(cache, key, n, buf, sizeof buf, &len), RSL_ERR_NOT_FOUND);
    }
    CHECK_OK(rsl_cache_get(cache, key, 0, buf, sizeof buf, &len));
    CHECK(len == 1 && buf[0] == 1);
    rsl_cache_free(cache);
}

static void test_threads(void) {
    rsl_cache_config c = rsl_cache_config_default();
    c.max_entries = 32; /* fewer than the keys: evictions race with reads */
    c.shards = 2;
    rsl_cache *cache = NULL;
    CHECK_OK(rsl_cache_new(&c, &cache));
    pthread_t th[THREADS];
    struct worker w[THREADS];
    memset(w, 0, sizeof w);
    for (int i = 0; i < THREADS; i++) {
        w[i].c = cache;
        w[i].id = i;
        pthread_create(&th[i], NULL, worker_thread, &w[i]);
    }
    uint64_t hits = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK(w[i].torn == 0 && w[i].bad == 0);
        hits += (uint64_t)w[i].hits;
    }
    rsl_cache_stats st;
    CHECK_OK(rsl_cache_get_stats(cache, &st));
    CHECK(st.hits == hits);
    CHECK(st.hits + st.misses == (uint64_t)THREADS * (OPS - (OPS + 2) / 3));
    CHECK(st.entries <= 32);
    rsl_cache_free(cache);
}

int main(void) {
    test_config();
    test_basics();
    test_ttl_and_weight();
    test_get_many();
    test_key_lengths();
    test_bad_input();
    test_threads();
    TEST_MAIN_END();
}
