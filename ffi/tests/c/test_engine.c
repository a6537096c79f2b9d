/* The embedded engine through the C ABI: argument checks, then a live engine
 * on an ephemeral port answering PING, SET and GET over a plain socket.
 * The live part is skipped (with a message) when io_uring is unavailable, or
 * when RSL_TEST_SKIP_ENGINE is set (the valgrind run: valgrind does not
 * follow io_uring). */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static void test_arguments(void) {
    rsl_engine *e = NULL;
    CHECK_STATUS(rsl_engine_start(NULL, NULL), RSL_ERR_NULL_ARG);
    rsl_engine_config c = rsl_engine_config_default();
    CHECK(c.port == 6390 && c.pin == 1 && c.shards == 0 && strcmp(c.bind, "127.0.0.1") == 0);
    strcpy(c.bind, "not-an-address");
    CHECK_STATUS(rsl_engine_start(&c, &e), RSL_ERR_INVALID_ARG);
    c = rsl_engine_config_default();
    memset(c.bind, '1', sizeof c.bind); /* no NUL */
    CHECK_STATUS(rsl_engine_start(&c, &e), RSL_ERR_INVALID_ARG);
    c = rsl_engine_config_default();
    c.max_clients = 0;
    CHECK_STATUS(rsl_engine_start(&c, &e), RSL_ERR_INVALID_ARG);
    c = rsl_engine_config_default();
    c.max_memory = 0;
    CHECK_STATUS(rsl_engine_start(&c, &e), RSL_ERR_INVALID_ARG);
    c = rsl_engine_config_default();
    c._reserved[7] = 1;
    CHECK_STATUS(rsl_engine_start(&c, &e), RSL_ERR_INVALID_ARG);
    CHECK(e == NULL);
    uint16_t port = 7;
    rsl_engine_stats st;
    CHECK_STATUS(rsl_engine_port(NULL, &port), RSL_ERR_NULL_ARG);
    CHECK(port == 7);
    CHECK_STATUS(rsl_engine_get_stats(NULL, &st), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_engine_stop(NULL), RSL_ERR_NULL_ARG);
    rsl_engine_free(NULL);
}

/* Sends `req` and reads exactly strlen(want) bytes, compared with `want`. */
static void roundtrip(int fd, const char *req, const char *want) {
    size_t len = strlen(req);
    CHECK(write(fd, req, len) == (ssize_t)len);
    char buf[256] = {0};
    size_t need = strlen(want), got = 0;
    while (got < need) {
        ssize_t n = read(fd, buf + got, need - got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    if (got != need || memcmp(buf, want, need) != 0) {
        fprintf(stderr, "reply to %s: got %.*s\n", req, (int)got, buf);
        rsl_test_failures++;
    }
}

static void test_live(void) {
    rsl_engine_config c = rsl_engine_config_default();
    c.port = 0;
    c.shards = 1;
    c.pin = 0;
    rsl_engine *e = NULL;
    rsl_status s = rsl_engine_start(&c, &e);
    if (s == RSL_ERR_IO_URING_UNAVAILABLE) {
        printf("test_engine: live part skipped: %s\n", rsl_last_error());
        return;
    }
    CHECK_OK(s);
    if (s != RSL_OK) return;
    uint16_t port = 0;
    CHECK_OK(rsl_engine_port(e, &port));
    CHECK(port != 0);

    /* The port is taken: a second engine on it cannot bind. */
    rsl_engine_config busy = c;
    busy.port = port;
    rsl_engine *e2 = NULL;
    CHECK_STATUS(rsl_engine_start(&busy, &e2), RSL_ERR_IO);
    CHECK(e2 == NULL);

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0);
    roundtrip(fd, "*1\r\n$4\r\nPING\r\n", "+PONG\r\n");
    roundtrip(fd, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", "+OK\r\n");
    roundtrip(fd, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "$1\r\nv\r\n");

    rsl_engine_stats st;
    CHECK_STATUS(rsl_engine_get_stats(e, NULL), RSL_ERR_NULL_ARG);
    CHECK_OK(rsl_engine_get_stats(e, &st));
    CHECK(st.shards == 1);
    CHECK(st.clients_accepted >= 1);
    CHECK(st.clients_connected >= 1);
    CHECK(st.clients_rejected == 0);
    close(fd);

    CHECK_OK(rsl_engine_stop(e));
    CHECK_STATUS(rsl_engine_stop(e), RSL_ERR_ENGINE_STATE);
    CHECK_STATUS(rsl_engine_get_stats(e, &st), RSL_ERR_ENGINE_STATE);
    uint16_t again = 0;
    CHECK_OK(rsl_engine_port(e, &again));
    CHECK(again == port);
    rsl_engine_free(e);

    /* Free without stop stops it. */
    e = NULL;
    CHECK_OK(rsl_engine_start(&c, &e));
    rsl_engine_free(e);
}

int main(void) {
    test_arguments();
    if (getenv("RSL_TEST_SKIP_ENGINE") != NULL) {
        printf("test_engine: live part skipped (RSL_TEST_SKIP_ENGINE is set)\n");
    } else {
        test_live();
    }
    TEST_MAIN_END();
}
