/* Status codes, versions, last-error and panic containment. */
#include "check.h"

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

    TEST_MAIN_END();
}
