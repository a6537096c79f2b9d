/* INCRBYFLOAT's arithmetic, in C because Redis does it in `long double`
 * (80-bit x87 on x86-64, binary128 on aarch64), which Rust has no type for.
 * Parsing and printing follow Redis 7's string2ld and
 * ld2string(LD_STR_HUMAN) so that replies match redis-server's byte for
 * byte. Pure functions: no globals, no allocation, safe from any thread
 * (strtold and snprintf read the locale, which resilienced never changes
 * from "C"). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Redis's MAX_LONG_DOUBLE_CHARS: room for any long double printed "%.17Lf". */
#define MAX_CHARS (5 * 1024)

/* string2ld: the whole of s[0..len) is a long double, with no leading space,
 * no overflow and no NaN. Returns 1 and sets *out, or 0. */
static int parse_ld(const char *s, size_t len, long double *out) {
    char buf[MAX_CHARS];
    char *end;
    long double v;
    if (len == 0 || len >= sizeof(buf)) return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    errno = 0;
    v = strtold(buf, &end);
    if (isspace((unsigned char)buf[0]) || end[0] != '\0' || (size_t)(end - buf) != len ||
        (errno == ERANGE && (v == HUGE_VALL || v == -HUGE_VALL || fpclassify(v) == FP_ZERO)) ||
        errno == EINVAL || isnan(v))
        return 0;
    *out = v;
    return 1;
}

/* `cur` (NULL: no value, counts as 0) plus `incr`, printed as Redis prints
 * it into out[0..out_len). Returns the length written (> 0), or
 *   -1  cur is not a valid float,
 *   -2  incr is not a valid float,
 *   -3  the sum is NaN or infinite,
 *   -4  out is too small (out_len >= 5120 never is). */
long rsl_incrbyfloat(const char *cur, size_t cur_len, const char *incr, size_t incr_len, char *out,
                     size_t out_len) {
    long double value = 0, by;
    char buf[MAX_CHARS];
    int n;
    size_t l;
    if (cur != NULL && !parse_ld(cur, cur_len, &value)) return -1;
    if (!parse_ld(incr, incr_len, &by)) return -2;
    value += by;
    if (isnan(value) || isinf(value)) return -3;
    n = snprintf(buf, sizeof(buf), "%.17Lf", value);
    if (n < 0 || (size_t)n + 1 > sizeof(buf)) return -4;
    l = (size_t)n;
    /* Trailing zeros after the point go, then a bare point; "-0" is "0". */
    if (memchr(buf, '.', l) != NULL) {
        while (l > 0 && buf[l - 1] == '0') l--;
        if (l > 0 && buf[l - 1] == '.') l--;
    }
    if (l == 2 && buf[0] == '-' && buf[1] == '0') {
        buf[0] = '0';
        l = 1;
    }
    if (l > out_len) return -4;
    memcpy(out, buf, l);
    return (long)l;
}
