/* Status codes, versions, last-error and panic containment. */
#include "check.h"
#include <pthread.h>

/* What a failing call made from a pthread-key destructor returned. glibc
 * runs those destructors after the library's own thread-locals are gone. */
static rsl_status late_status = RSL_OK;
static const char *late_error = NULL;
static pthread_key_t late_key;

static void late_destructor(void *arg) {
    (void)arg;
    late_status = rsl_mpmc_pop(NULL, NULL);
    late_error = rsl_last_error();
}

static void *late_thread(void *arg) {
    (void)arg;
    /* Touch the library (and its thread-locals) first, then exit. */
    (void)rsl_mpmc_pop(NULL, NULL);
    pthread_setspecific(late_key, &late_key);
    return NULL;
}

int main(void) {
    /* Versions agree with the header this test was compiled against. */
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", RSL_VERSION_MAJOR, RSL_VERSION_MINOR, RSL_VERSION_PATCH);
    CHECK(strcmp(rsl_version(), want) == 0);
    CHECK(rsl_abi_version() == RSL_ABI_VERSION);

    /* Every code has a name; unknown codes do not crash. */
    CHECK(strncmp(rsl_status_str(RSL_OK), "RSL_OK", 6) == 0);
    CHECK(strncmp(rsl_status_str(RSL_ERR_FULL), "RSL_ERR_FULL", 12) == 0);
    CHECK(strncmp(rsl_status_str(RSL_ERR_PANIC), "RSL_ERR_PANIC", 13) == 0);
    CHECK(strcmp(rsl_status_str(-1), "unknown status code") == 0);
    CHECK(strcmp(rsl_status_str(123456), "unknown status code") == 0);

    /* A panic inside the library comes back as a status with its message. */
    CHECK_STATUS(rsl_selftest_panic(), RSL_ERR_PANIC);
    CHECK(strstr(rsl_last_error(), "deliberate panic") != NULL);
    /* ...and the library keeps working afterwards. */
    CHECK_STATUS(rsl_selftest_panic(), RSL_ERR_PANIC);

    /* A failing call from a thread-exit destructor gets its status (and an
     * empty last error), instead of aborting the host. */
    pthread_t t;
    CHECK(pthread_key_create(&late_key, late_destructor) == 0);
    CHECK(pthread_create(&t, NULL, late_thread, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK_STATUS(late_status, RSL_ERR_NULL_ARG);
    CHECK(late_error != NULL);

    TEST_MAIN_END();
}
