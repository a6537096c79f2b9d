/* Build: cc -std=c11 example.c $(pkg-config --cflags --libs resilience) -o example */
#include <resilience.h>
#include <stdio.h>

int main(void) {
    rsl_cache *cache;
    rsl_breaker *breaker;
    if (rsl_cache_new(NULL, &cache) != RSL_OK || rsl_breaker_new(NULL, &breaker) != RSL_OK) return 1;

    rsl_cache_insert(cache, (const uint8_t *)"user:1", 6, (const uint8_t *)"alice", 5, RSL_CACHE_TTL_DEFAULT);
    char buf[64];
    size_t len;
    if (rsl_cache_get(cache, (const uint8_t *)"user:1", 6, (uint8_t *)buf, sizeof buf, &len) == RSL_OK)
        printf("cache hit: %.*s\n", (int)len, buf);

    rsl_permit permit;
    uint64_t retry_after_ns;
    if (rsl_breaker_try_acquire(breaker, &permit, &retry_after_ns) == RSL_OK) {
        /* ... call the dependency, then say how it went and how long it took ... */
        rsl_breaker_record(breaker, permit, RSL_OUTCOME_SUCCESS, 2000000);
    } else {
        printf("breaker open, retry in %llu ns\n", (unsigned long long)retry_after_ns);
    }
    rsl_breaker_free(breaker);
    rsl_cache_free(cache);
    return 0;
}
