/* Circuit breaker and registry through the C ABI: every function, the state
 * machine under explicit time, callbacks, reference counting, bad input, and
 * threads (exactly the permitted number of half-open probes). */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#define SEC 1000000000ull

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * SEC + (uint64_t)ts.tv_nsec;
}

_Static_assert(sizeof(rsl_breaker_config) == 120, "config size is part of the ABI");
_Static_assert(sizeof(rsl_permit) == 8, "permit size is part of the ABI");

/* A callback that remembers what it saw. */
struct seen {
    pthread_mutex_t mu;
    int calls;
    rsl_breaker_transition last;
    int freed;
};

static void on_change(void *user, const rsl_breaker_transition *t) {
    struct seen *s = user;
    pthread_mutex_lock(&s->mu);
    s->calls++;
    s->last = *t;
    pthread_mutex_unlock(&s->mu);
}

static void on_free(void *user) {
    struct seen *s = user;
    s->freed++;
}

static rsl_breaker_config small_config(void) {
    rsl_breaker_config c = rsl_breaker_config_default();
    c.window_type = RSL_BREAKER_WINDOW_COUNT;
    c.window_size = 4;
    c.minimum_calls = 4;
    c.wait_in_open_ns = SEC;
    c.permitted_calls_in_half_open = 2;
    c.max_wait_in_half_open_ns = SEC / 2;
    return c;
}

static void test_config(void) {
    rsl_breaker_config c = rsl_breaker_config_default();
    CHECK(c.failure_rate_threshold == 50.0f);
    CHECK(c.slow_call_rate_threshold == 100.0f);
    CHECK(c.slow_call_duration_threshold_ns == 60 * SEC);
    CHECK(c.window_type == RSL_BREAKER_WINDOW_COUNT && c.window_size == 100);
    CHECK(c.minimum_calls == 100 && c.permitted_calls_in_half_open == 10);
    CHECK(c.wait_in_open_ns == 60 * SEC && c.max_wait_in_half_open_ns == 0);
    CHECK(c.automatic_transition == 0 && c._reserved0 == 0);
    for (int i = 0; i < 8; i++) CHECK(c._reserved[i] == 0);

    rsl_breaker *b = NULL;
    CHECK_OK(rsl_breaker_new(NULL, &b)); /* NULL config: the defaults */
    rsl_breaker_free(b);
    CHECK_STATUS(rsl_breaker_new(&c, NULL), RSL_ERR_NULL_ARG);

    /* Every bad field is refused, and nothing is written. */
    b = NULL;
    rsl_breaker_config bad = c;
    bad._reserved[3] = 1;
    CHECK_STATUS(rsl_breaker_new(&bad, &b), RSL_ERR_INVALID_ARG);
    CHECK(strstr(rsl_last_error(), "reserved") != NULL);
    bad = c; bad._reserved0 = 7;
    CHECK_STATUS(rsl_breaker_new(&bad, &b), RSL_ERR_INVALID_ARG);
    bad = c; bad.window_type = 2;
    CHECK_STATUS(rsl_breaker_new(&bad, &b), RSL_ERR_INVALID_ARG);
    bad = c; bad.window_type = -1;
    CHECK_STATUS(rsl_breaker_new(&bad, &b), RSL_ERR_INVALID_ARG);
    bad = c; bad.automatic_transition = 2;
    CHECK_STATUS(rsl_breaker_new(&bad, &b), RSL_ERR_INVALID_ARG);
    bad = c; bad.failure_rate_threshold = 0.0f;
    CHECK_STATUS(rsl_breaker_new(&bad, &b), RSL_ERR_INVALID_ARG);
    bad = c; bad.failure_rate_threshold = NAN;
    CHECK_STATUS(rsl_breaker_new(&bad, &b), RSL_ERR_INVALID_ARG);
    bad = c; bad.slow_call_rate_threshold = 100.5f;
    CHECK_STATUS(rsl_breaker_new(&bad, &b), RSL_ERR_INVALID_ARG);
    bad = c; bad.window_size = 0;
    CHECK_STATUS(rsl_breaker_new(&bad, &b), RSL_ERR_INVALID_ARG);
    bad = c; bad.window_size = UINT32_MAX;
    CHECK_STATUS(rsl_breaker_new(&bad, &b), RSL_ERR_INVALID_ARG);
    bad = c; bad.window_type = RSL_BREAKER_WINDOW_TIME; bad.window_size = 3601;
    CHECK_STATUS(rsl_breaker_new(&bad, &b), RSL_ERR_INVALID_ARG);
    bad = c; bad.permitted_calls_in_half_open = 0;
    CHECK_STATUS(rsl_breaker_new(&bad, &b), RSL_ERR_INVALID_ARG);
    bad = c; bad.permitted_calls_in_half_open = 1024;
    CHECK_STATUS(rsl_breaker_new(&bad, &b), RSL_ERR_INVALID_ARG);
    bad = c; bad.minimum_calls = 0;
    CHECK_STATUS(rsl_breaker_new(&bad, &b), RSL_ERR_INVALID_ARG);
    bad = c; bad.wait_in_open_ns = 0;
    CHECK_STATUS(rsl_breaker_new(&bad, &b), RSL_ERR_INVALID_ARG);
    CHECK(b == NULL);
    /* A time window is accepted. */
    bad = c; bad.window_type = RSL_BREAKER_WINDOW_TIME; bad.window_size = 10;
    CHECK_OK(rsl_breaker_new(&bad, &b));
    rsl_breaker_free(b);
}

static void test_state_machine(void) {
    rsl_breaker_config c = small_config();
    rsl_breaker *b = NULL;
    CHECK_OK(rsl_breaker_new(&c, &b));
    struct seen seen;
    memset(&seen, 0, sizeof seen);
    pthread_mutex_init(&seen.mu, NULL);
    CHECK_OK(rsl_breaker_on_state_change(b, on_change, &seen, on_free));

    uint64_t t = mono_ns();
    int32_t state = -1;
    CHECK_OK(rsl_breaker_state(b, &state));
    CHECK(state == RSL_BREAKER_CLOSED);

    /* Closed: four failures in a window of four open it. */
    rsl_permit first = {0};
    CHECK_OK(rsl_breaker_try_acquire_at(b, t, &first, NULL));
    CHECK_OK(rsl_breaker_record_at(b, first, RSL_OUTCOME_FAILURE, 1000, t));
    rsl_permit p;
    for (int i = 0; i < 2; i++) {
        CHECK_OK(rsl_breaker_try_acquire(b, &p, NULL));
        CHECK_OK(rsl_breaker_record_at(b, p, RSL_OUTCOME_FAILURE, 1000, t));
    }
    /* Ignored outcomes count for nothing. */
    CHECK_OK(rsl_breaker_try_acquire_at(b, t, &p, NULL));
    CHECK_OK(rsl_breaker_record_at(b, p, RSL_OUTCOME_IGNORED, 0, t));
    rsl_breaker_metrics m;
    CHECK_OK(rsl_breaker_get_metrics_at(b, t, &m));
    CHECK(m.calls == 3 && m.failed == 3 && m.failure_rate == -1.0f && m.state == RSL_BREAKER_CLOSED);
    CHECK(m._reserved0 == 0 && m._reserved[0] == 0);
    CHECK_OK(rsl_breaker_try_acquire_at(b, t, &p, NULL));
    CHECK_OK(rsl_breaker_record_at(b, p, RSL_OUTCOME_FAILURE, 1000, t));
    CHECK_OK(rsl_breaker_state(b, &state));
    CHECK(state == RSL_BREAKER_OPEN);
    CHECK(seen.calls == 1 && seen.last.from == RSL_BREAKER_CLOSED && seen.last.to == RSL_BREAKER_OPEN);
    CHECK(seen.last.cause == RSL_BREAKER_CAUSE_FAILURE_RATE && seen.last.generation == 1 && seen.last.at_ns == t);
    CHECK_OK(rsl_breaker_get_metrics_at(b, t + 5, &m));
    CHECK(m.state == RSL_BREAKER_OPEN && m.generation == 1 && m.calls == 4 && m.failed == 4);
    CHECK(m.failure_rate == 100.0f && m.time_in_state_ns == 5);

    /* Open: rejected with the rest of the wait; the old permit is stale. */
    uint64_t retry = 0;
    p.generation = 12345;
    CHECK_STATUS(rsl_breaker_try_acquire_at(b, t + 1, &p, &retry), RSL_ERR_REJECTED);
    CHECK(retry == SEC - 1);
    CHECK(p.generation == 12345); /* not written on rejection */
    CHECK_STATUS(rsl_breaker_try_acquire_at(b, t + 2, &p, NULL), RSL_ERR_REJECTED);
    CHECK_STATUS(rsl_breaker_record_at(b, first, RSL_OUTCOME_SUCCESS, 0, t + 2), RSL_ERR_STALE);
    CHECK_OK(rsl_breaker_get_metrics_at(b, t + 2, &m));
    CHECK(m.not_permitted == 2);

    /* Half-open after the wait: two probes, the third is rejected. */
    rsl_permit p1, p2;
    CHECK_OK(rsl_breaker_try_acquire_at(b, t + SEC, &p1, NULL));
    CHECK_OK(rsl_breaker_try_acquire_at(b, t + SEC, &p2, NULL));
    CHECK(p1.generation == 2 && p2.generation == 2);
    CHECK(seen.calls == 2 && seen.last.to == RSL_BREAKER_HALF_OPEN && seen.last.cause == RSL_BREAKER_CAUSE_WAIT_ELAPSED);
    CHECK_STATUS(rsl_breaker_try_acquire_at(b, t + SEC + 10, &p, &retry), RSL_ERR_REJECTED);
    CHECK(retry == SEC / 2 - 10);
    /* Two successes close it. */
    CHECK_OK(rsl_breaker_record_at(b, p1, RSL_OUTCOME_SUCCESS, 10, t + SEC + 20));
    CHECK_OK(rsl_breaker_record_at(b, p2, RSL_OUTCOME_SUCCESS, 10, t + SEC + 30));
    CHECK_OK(rsl_breaker_state(b, &state));
    CHECK(state == RSL_BREAKER_CLOSED);
    CHECK(seen.last.cause == RSL_BREAKER_CAUSE_PROBES_PASSED && seen.last.generation == 3);

    /* Transition counters. */
    uint64_t n = 99;
    CHECK_OK(rsl_breaker_transitions_to(b, RSL_BREAKER_OPEN, &n));
    CHECK(n == 1);
    CHECK_OK(rsl_breaker_transitions_to(b, RSL_BREAKER_HALF_OPEN, &n));
    CHECK(n == 1);
    CHECK_OK(rsl_breaker_transitions_to(b, RSL_BREAKER_CLOSED, &n));
    CHECK(n == 1);
    CHECK_OK(rsl_breaker_transitions_to(b, RSL_BREAKER_FORCED_OPEN, &n));
    CHECK(n == 0);

    /* Manual transitions: forced open rejects for ever, disabled passes. */
    uint64_t gen = 0;
    CHECK_OK(rsl_breaker_transition_to(b, RSL_BREAKER_FORCED_OPEN, &gen));
    CHECK(gen == 4 && seen.last.cause == RSL_BREAKER_CAUSE_MANUAL && seen.last.to == RSL_BREAKER_FORCED_OPEN);
    CHECK_STATUS(rsl_breaker_try_acquire(b, &p, &retry), RSL_ERR_REJECTED);
    CHECK(retry == UINT64_MAX);
    CHECK_OK(rsl_breaker_transition_to_at(b, RSL_BREAKER_DISABLED, t + 2 * SEC, NULL));
    CHECK_OK(rsl_breaker_try_acquire(b, &p, NULL));
    CHECK_OK(rsl_breaker_record(b, p, RSL_OUTCOME_FAILURE, 0)); /* disabled: nothing counted */
    CHECK_OK(rsl_breaker_get_metrics(b, &m));
    CHECK(m.state == RSL_BREAKER_DISABLED && m.calls == 0);
    CHECK_OK(rsl_breaker_transition_to(b, RSL_BREAKER_METRICS_ONLY, NULL));
    for (int i = 0; i < 8; i++) {
        CHECK_OK(rsl_breaker_try_acquire(b, &p, NULL));
        CHECK_OK(rsl_breaker_record(b, p, RSL_OUTCOME_FAILURE, 0));
    }
    CHECK_OK(rsl_breaker_state(b, &state));
    CHECK(state == RSL_BREAKER_METRICS_ONLY); /* records, never opens */
    CHECK_OK(rsl_breaker_transition_to(b, RSL_BREAKER_CLOSED, &gen)); /* reset */
    CHECK(gen == 7);
    CHECK_STATUS(rsl_breaker_record(b, p, RSL_OUTCOME_SUCCESS, 0), RSL_ERR_STALE);
    CHECK_OK(rsl_breaker_transition_to(b, RSL_BREAKER_OPEN, NULL));
    CHECK_OK(rsl_breaker_transition_to(b, RSL_BREAKER_HALF_OPEN, NULL));
    CHECK_OK(rsl_breaker_state(b, &state));
    CHECK(state == RSL_BREAKER_HALF_OPEN);

    /* Poll: the half-open maximum wait re-opens it. */
    uint64_t next = 0;
    CHECK_OK(rsl_breaker_poll(b, &next));
    CHECK(next != UINT64_MAX && next > t);
    CHECK_OK(rsl_breaker_poll_at(b, next, &next));
    CHECK_OK(rsl_breaker_state(b, &state));
    CHECK(state == RSL_BREAKER_OPEN && seen.last.cause == RSL_BREAKER_CAUSE_HALF_OPEN_TIMEOUT);
    CHECK_OK(rsl_breaker_poll_at(b, 0, &next));
    CHECK(next == UINT64_MAX); /* no automatic transition configured */
    CHECK_OK(rsl_breaker_poll(b, NULL));

    /* Bad input on every function. */
    CHECK_STATUS(rsl_breaker_try_acquire(NULL, &p, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_try_acquire(b, NULL, &retry), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_try_acquire_at(NULL, t, &p, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_try_acquire_at(b, t, NULL, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_record(NULL, p, RSL_OUTCOME_SUCCESS, 0), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_record(b, p, 3, 0), RSL_ERR_INVALID_ARG);
    CHECK_STATUS(rsl_breaker_record(b, p, -1, 0), RSL_ERR_INVALID_ARG);
    CHECK_STATUS(rsl_breaker_record(b, p, INT32_MAX, 0), RSL_ERR_INVALID_ARG);
    CHECK_STATUS(rsl_breaker_record_at(NULL, p, RSL_OUTCOME_SUCCESS, 0, t), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_record_at(b, p, 256, 0, t), RSL_ERR_INVALID_ARG);
    CHECK_STATUS(rsl_breaker_state(NULL, &state), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_state(b, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_transition_to(NULL, RSL_BREAKER_CLOSED, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_transition_to(b, 6, NULL), RSL_ERR_INVALID_ARG);
    CHECK_STATUS(rsl_breaker_transition_to(b, -1, NULL), RSL_ERR_INVALID_ARG);
    CHECK_STATUS(rsl_breaker_transition_to_at(b, 256, t, NULL), RSL_ERR_INVALID_ARG);
    CHECK_STATUS(rsl_breaker_transition_to_at(NULL, 0, t, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_poll(NULL, &next), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_poll_at(NULL, t, &next), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_get_metrics(NULL, &m), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_get_metrics(b, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_get_metrics_at(NULL, t, &m), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_get_metrics_at(b, t, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_transitions_to(NULL, 0, &n), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_transitions_to(b, 0, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_transitions_to(b, 9, &n), RSL_ERR_INVALID_ARG);
    CHECK_STATUS(rsl_breaker_on_state_change(NULL, on_change, NULL, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_on_state_change(b, NULL, &seen, on_free), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_clone(NULL, &b), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_clone(b, NULL), RSL_ERR_NULL_ARG);
    CHECK(seen.freed == 0); /* a refused registration keeps nothing */

    /* Clones share the breaker; it lives until the last reference goes. */
    rsl_breaker *b2 = NULL;
    CHECK_OK(rsl_breaker_clone(b, &b2));
    CHECK(b2 == b);
    rsl_breaker_free(b);
    CHECK(seen.freed == 0);
    CHECK_OK(rsl_breaker_transition_to(b2, RSL_BREAKER_CLOSED, NULL));
    CHECK_OK(rsl_breaker_state(b2, &state));
    CHECK(state == RSL_BREAKER_CLOSED && seen.last.to == RSL_BREAKER_CLOSED);
    rsl_breaker_free(b2);
    CHECK(seen.freed == 1); /* user_free ran once, with the last reference */
    rsl_breaker_free(NULL);
    pthread_mutex_destroy(&seen.mu);
}

static void test_automatic_transition(void) {
    rsl_breaker_config c = small_config();
    c.automatic_transition = 1;
    c.max_wait_in_half_open_ns = 0;
    rsl_breaker *b = NULL;
    CHECK_OK(rsl_breaker_new(&c, &b));
    uint64_t t = mono_ns(), next = 0;
    CHECK_OK(rsl_breaker_transition_to_at(b, RSL_BREAKER_OPEN, t, NULL));
    CHECK_OK(rsl_breaker_poll_at(b, t + 1, &next));
    CHECK(next == t + SEC);
    CHECK_OK(rsl_breaker_poll_at(b, t + SEC, &next));
    CHECK(next == UINT64_MAX); /* half-open without a maximum wait */
    int32_t state = -1;
    CHECK_OK(rsl_breaker_state(b, &state));
    CHECK(state == RSL_BREAKER_HALF_OPEN);
    /* A callback without user_free. */
    struct seen seen;
    memset(&seen, 0, sizeof seen);
    pthread_mutex_init(&seen.mu, NULL);
    CHECK_OK(rsl_breaker_on_state_change(b, on_change, &seen, NULL));
    CHECK_OK(rsl_breaker_transition_to(b, RSL_BREAKER_CLOSED, NULL));
    CHECK(seen.calls == 1 && seen.last.from == RSL_BREAKER_HALF_OPEN);
    rsl_breaker_free(b);
    CHECK(seen.freed == 0);
    pthread_mutex_destroy(&seen.mu);
}

/* Threads racing for half-open probes: exactly the permitted number pass. */
#define PROBES 7
#define THREADS 4
struct probe_arg { rsl_breaker *b; int got; };

static void *probe_thread(void *arg) {
    struct probe_arg *a = arg;
    for (int i = 0; i < 200; i++) {
        rsl_permit p;
        uint64_t retry;
        if (rsl_breaker_try_acquire(a->b, &p, &retry) == RSL_OK) a->got++;
    }
    return NULL;
}

struct closed_arg { rsl_breaker *b; int stale; int bad; };

static void *closed_thread(void *arg) {
    struct closed_arg *a = arg;
    for (int i = 0; i < 2000; i++) {
        rsl_permit p;
        rsl_status s = rsl_breaker_try_acquire(a->b, &p, NULL);
        if (s == RSL_ERR_REJECTED) continue;
        if (s != RSL_OK) { a->bad++; continue; }
        s = rsl_breaker_record(a->b, p, (i % 3 == 0) ? RSL_OUTCOME_FAILURE : RSL_OUTCOME_SUCCESS, 10);
        if (s == RSL_ERR_STALE) a->stale++;
        else if (s != RSL_OK) a->bad++;
    }
    return NULL;
}

static void test_threads(void) {
    rsl_breaker_config c = small_config();
    c.permitted_calls_in_half_open = PROBES;
    rsl_breaker *b = NULL;
    CHECK_OK(rsl_breaker_new(&c, &b));
    for (int round = 0; round < 5; round++) {
        CHECK_OK(rsl_breaker_transition_to(b, RSL_BREAKER_HALF_OPEN, NULL));
        pthread_t th[THREADS];
        struct probe_arg args[THREADS];
        for (int i = 0; i < THREADS; i++) {
            args[i].b = b;
            args[i].got = 0;
            pthread_create(&th[i], NULL, probe_thread, &args[i]);
        }
        int total = 0;
        for (int i = 0; i < THREADS; i++) {
            pthread_join(th[i], NULL);
            total += args[i].got;
        }
        CHECK(total == PROBES);
    }

    /* Concurrent acquire/record (the window may trip open on a run of
     * failures): every call answers OK, REJECTED or STALE, nothing else. */
    CHECK_OK(rsl_breaker_transition_to(b, RSL_BREAKER_CLOSED, NULL));
    pthread_t th[THREADS];
    struct closed_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i].b = b;
        args[i].stale = args[i].bad = 0;
        pthread_create(&th[i], NULL, closed_thread, &args[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK(args[i].bad == 0);
    }
    rsl_breaker_metrics m;
    CHECK_OK(rsl_breaker_get_metrics(b, &m));
    CHECK(m.calls == 4 && m.failed <= 4);
    rsl_breaker_free(b);
}

struct reg_arg { rsl_breaker_registry *r; rsl_breaker *out; };

static void *registry_thread(void *arg) {
    struct reg_arg *a = arg;
    rsl_breaker_config c = small_config();
    if (rsl_breaker_registry_get(a->r, (const uint8_t *)"shared", 6, &c, &a->out) != RSL_OK) a->out = NULL;
    return NULL;
}

/* user_free of a registry breaker: runs when the registry evicts it, and
 * may call back into the registry (it runs outside the registry's lock). */
struct reentry { rsl_breaker_registry *r; size_t len_seen; int freed; };

static void noop_change(void *user, const rsl_breaker_transition *t) {
    (void)user;
    (void)t;
}

static void reentrant_free(void *user) {
    struct reentry *e = user;
    size_t len = 0;
    if (rsl_breaker_registry_len(e->r, &len) == RSL_OK) e->len_seen = len;
    e->freed++;
}

static void test_registry_eviction_frees_user(void) {
    struct reentry e = {NULL, 99, 0};
    CHECK_OK(rsl_breaker_registry_new(1, &e.r));
    rsl_breaker *a = NULL, *b = NULL;
    CHECK_OK(rsl_breaker_registry_get(e.r, (const uint8_t *)"a", 1, NULL, &a));
    CHECK_OK(rsl_breaker_on_state_change(a, noop_change, &e, reentrant_free));
    rsl_breaker_free(a);
    CHECK(e.freed == 0); /* the registry still holds it */
    CHECK_OK(rsl_breaker_registry_get(e.r, (const uint8_t *)"b", 1, NULL, &b)); /* evicts "a" */
    CHECK(e.freed == 1 && e.len_seen == 1);
    rsl_breaker_free(b);
    rsl_breaker_registry_free(e.r);
}

static void test_registry(void) {
    rsl_breaker_registry *r = NULL;
    CHECK_STATUS(rsl_breaker_registry_new(0, &r), RSL_ERR_INVALID_ARG);
    CHECK_STATUS(rsl_breaker_registry_new(2, NULL), RSL_ERR_NULL_ARG);
    CHECK(r == NULL);
    CHECK_OK(rsl_breaker_registry_new(2, &r));
    size_t len = 99;
    CHECK_OK(rsl_breaker_registry_len(r, &len));
    CHECK(len == 0);

    rsl_breaker_config c = small_config();
    rsl_breaker *a1 = NULL, *a2 = NULL, *bb = NULL, *cc = NULL, *found = NULL;
    CHECK_OK(rsl_breaker_registry_get(r, (const uint8_t *)"a", 1, &c, &a1));
    CHECK_OK(rsl_breaker_registry_get(r, (const uint8_t *)"a", 1, NULL, &a2)); /* existing keeps its config */
    CHECK(a1 == a2);
    CHECK_OK(rsl_breaker_transition_to(a1, RSL_BREAKER_FORCED_OPEN, NULL));
    int32_t state = -1;
    CHECK_OK(rsl_breaker_state(a2, &state));
    CHECK(state == RSL_BREAKER_FORCED_OPEN);
    rsl_breaker_free(a2);
    /* The empty name is a name like any other. */
    CHECK_OK(rsl_breaker_registry_get(r, NULL, 0, NULL, &bb));
    CHECK_OK(rsl_breaker_registry_len(r, &len));
    CHECK(len == 2);
    /* Full: "a" is forced open, "" is held: nothing can be evicted. */
    CHECK_STATUS(rsl_breaker_registry_get(r, (const uint8_t *)"c", 1, &c, &cc), RSL_ERR_FULL);
    CHECK(cc == NULL);
    rsl_breaker_free(bb); /* now "" is idle and closed */
    CHECK_OK(rsl_breaker_registry_get(r, (const uint8_t *)"c", 1, &c, &cc));
    CHECK_STATUS(rsl_breaker_registry_find(r, NULL, 0, &found), RSL_ERR_NOT_FOUND);
    CHECK_OK(rsl_breaker_registry_find(r, (const uint8_t *)"c", 1, &found));
    CHECK(found == cc);
    rsl_breaker_free(found);
    /* Removed: the handle keeps a working breaker. */
    CHECK_OK(rsl_breaker_registry_remove(r, (const uint8_t *)"a", 1));
    CHECK_STATUS(rsl_breaker_registry_remove(r, (const uint8_t *)"a", 1), RSL_ERR_NOT_FOUND);
    CHECK_STATUS(rsl_breaker_registry_find(r, (const uint8_t *)"a", 1, &found), RSL_ERR_NOT_FOUND);
    CHECK_OK(rsl_breaker_state(a1, &state));
    CHECK(state == RSL_BREAKER_FORCED_OPEN);
    rsl_breaker_free(a1);

    /* Bad input. */
    rsl_breaker_config bad = c;
    bad.minimum_calls = 0;
    rsl_breaker *x = NULL;
    CHECK_STATUS(rsl_breaker_registry_get(r, (const uint8_t *)"new", 3, &bad, &x), RSL_ERR_INVALID_ARG);
    bad = c;
    bad._reserved[0] = 1;
    CHECK_STATUS(rsl_breaker_registry_get(r, (const uint8_t *)"c", 1, &bad, &x), RSL_ERR_INVALID_ARG);
    CHECK_STATUS(rsl_breaker_registry_get(NULL, (const uint8_t *)"a", 1, &c, &x), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_registry_get(r, NULL, 5, &c, &x), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_registry_get(r, (const uint8_t *)"a", SIZE_MAX, &c, &x), RSL_ERR_TOO_LARGE);
    CHECK_STATUS(rsl_breaker_registry_get(r, (const uint8_t *)"a", 1, &c, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_registry_find(NULL, (const uint8_t *)"a", 1, &x), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_registry_find(r, NULL, 1, &x), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_registry_find(r, (const uint8_t *)"a", SIZE_MAX, &x), RSL_ERR_TOO_LARGE);
    CHECK_STATUS(rsl_breaker_registry_find(r, (const uint8_t *)"c", 1, NULL), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_registry_remove(NULL, (const uint8_t *)"a", 1), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_registry_remove(r, NULL, 1), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_registry_remove(r, (const uint8_t *)"a", SIZE_MAX), RSL_ERR_TOO_LARGE);
    CHECK_STATUS(rsl_breaker_registry_len(NULL, &len), RSL_ERR_NULL_ARG);
    CHECK_STATUS(rsl_breaker_registry_len(r, NULL), RSL_ERR_NULL_ARG);
    CHECK(x == NULL);

    /* Threads asking for one name all get the same breaker. */
    rsl_breaker_registry *r2 = NULL;
    CHECK_OK(rsl_breaker_registry_new(16, &r2));
    pthread_t th[THREADS];
    struct reg_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i].r = r2;
        args[i].out = NULL;
        pthread_create(&th[i], NULL, registry_thread, &args[i]);
    }
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < THREADS; i++) CHECK(args[i].out != NULL && args[i].out == args[0].out);
    CHECK_OK(rsl_breaker_registry_len(r2, &len));
    CHECK(len == 1);
    /* Freeing the registry leaves the handles working. */
    rsl_breaker_registry_free(r2);
    CHECK_OK(rsl_breaker_transition_to(args[0].out, RSL_BREAKER_DISABLED, NULL));
    CHECK_OK(rsl_breaker_state(args[THREADS - 1].out, &state));
    CHECK(state == RSL_BREAKER_DISABLED);
    for (int i = 0; i < THREADS; i++) rsl_breaker_free(args[i].out);

    rsl_breaker_free(cc);
    rsl_breaker_registry_free(r);
    rsl_breaker_registry_free(NULL);
}

int main(void) {
    test_config();
    test_state_machine();
    test_automatic_transition();
    test_threads();
    test_registry();
    test_registry_eviction_frees_user();
    TEST_MAIN_END();
}
