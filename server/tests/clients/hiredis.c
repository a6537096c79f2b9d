/* resilienced through hiredis (Debian's libhiredis): binary-safe values,
 * pipelining with redisAppendCommand, MULTI/EXEC, CL.THROTTLE's integers,
 * nil and error replies.
 *
 *   cc hiredis.c -lhiredis && ./a.out PORT
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond)                                                  \
    do {                                                             \
        if (!(cond)) {                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
                    __LINE__, #cond);                                \
            failures++;                                              \
        }                                                            \
    } while (0)

static redisReply *cmd(redisContext *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (r == NULL) {
        fprintf(stderr, "connection error: %s\n", c->errstr);
        exit(1);
    }
    return r;
}

static int is_status(redisReply *r, const char *s) {
    return r->type == REDIS_REPLY_STATUS && strcmp(r->str, s) == 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    redisContext *c = redisConnect("127.0.0.1", atoi(argv[1]));
    if (c == NULL || c->err) {
        fprintf(stderr, "connect: %s\n", c ? c->errstr : "out of memory");
        return 1;
    }
    redisReply *r;

    static const char bin[] = "a\0b\r\n$-1\r\n\xff";
    r = cmd(c, "SET %b %b", "k\0ey", (size_t)4, bin, sizeof bin);
    CHECK(is_status(r, "OK"));
    freeReplyObject(r);
    r = cmd(c, "GET %b", "k\0ey", (size_t)4);
    CHECK(r->type == REDIS_REPLY_STRING && r->len == sizeof bin && memcmp(r->str, bin, sizeof bin) == 0);
    freeReplyObject(r);

    r = cmd(c, "DEL counter");
    freeReplyObject(r);
    for (int i = 0; i < 1000; i++) redisAppendCommand(c, "INCR counter");
    for (long long i = 1; i <= 1000; i++) {
        void *v;
        CHECK(redisGetReply(c, &v) == REDIS_OK);
        r = v;
        CHECK(r->type == REDIS_REPLY_INTEGER && r->integer == i);
        freeReplyObject(r);
    }

    r = cmd(c, "MULTI");
    CHECK(is_status(r, "OK"));
    freeReplyObject(r);
    r = cmd(c, "SET {t}a 5");
    CHECK(is_status(r, "QUEUED"));
    freeReplyObject(r);
    r = cmd(c, "INCRBY {t}a 10");
    freeReplyObject(r);
    r = cmd(c, "MGET {t}a missing");
    freeReplyObject(r);
    r = cmd(c, "EXEC");
    CHECK(r->type == REDIS_REPLY_ARRAY && r->elements == 3);
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
        CHECK(is_status(r->element[0], "OK"));
        CHECK(r->element[1]->type == REDIS_REPLY_INTEGER && r->element[1]->integer == 15);
        redisReply *m = r->element[2];
        CHECK(m->type == REDIS_REPLY_ARRAY && m->elements == 2);
        if (m->type == REDIS_REPLY_ARRAY && m->elements == 2) {
            CHECK(m->element[0]->type == REDIS_REPLY_STRING && strcmp(m->element[0]->str, "15") == 0);
            CHECK(m->element[1]->type == REDIS_REPLY_NIL);
        }
    }
    freeReplyObject(r);

    r = cmd(c, "CL.THROTTLE user:7 4 10 60 1");
    CHECK(r->type == REDIS_REPLY_ARRAY && r->elements == 5);
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 5) {
        CHECK(r->element[0]->integer == 0 && r->element[1]->integer == 5 && r->element[2]->integer == 4);
    }
    freeReplyObject(r);

    r = cmd(c, "INCR %b", "k\0ey", (size_t)4);
    CHECK(r->type == REDIS_REPLY_ERROR && strstr(r->str, "not an integer") != NULL);
    freeReplyObject(r);
    r = cmd(c, "NOPE");
    CHECK(r->type == REDIS_REPLY_ERROR && strstr(r->str, "unknown command") != NULL);
    freeReplyObject(r);
    r = cmd(c, "PING");
    CHECK(is_status(r, "PONG"));
    freeReplyObject(r);

    redisFree(c);
    if (failures) {
        fprintf(stderr, "hiredis: %d checks failed\n", failures);
        return 1;
    }
    printf("hiredis %d.%d.%d: all passed\n", HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH);
    return 0;
}
