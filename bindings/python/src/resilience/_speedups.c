/*
 * resilience._speedups: the @breaker decorator's per-call path in C.
 *
 * A guarded call is "acquire a permit, call the function, record how it
 * ended". Through cffi each of the two library calls costs ~100 ns (argument
 * parsing, releasing and re-taking the GIL), more than the library's work
 * (one atomic load to acquire in the closed state) and more than the
 * Python-level wrapper around them. This type does the same three steps from
 * C with vectorcall, keeping the GIL for the two calls into the library
 * (they never block; releasing the GIL would cost more than they do).
 *
 * It talks to libresilience only through the public C ABI: the addresses of
 * rsl_breaker_try_acquire and rsl_breaker_record are taken from the cffi
 * module (ffi.addressof) and handed to init(). Python falls back to the
 * pure-cffi wrapper when this module is missing (see breaker.py).
 *
 * Thread-safety: the two library functions are thread-safe; a state-change
 * callback they run re-enters Python on this thread, which holds the GIL
 * (the library runs callbacks outside its locks, so no lock is held then).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* struct rsl_permit: one uint64_t (checked against cffi's layout in Python). */
typedef struct {
    uint64_t generation;
} permit_t;

typedef int32_t (*acquire_fn)(const void *breaker, permit_t *permit_out, uint64_t *retry_after_ns_out);
typedef int32_t (*record_fn)(const void *breaker, permit_t permit, int32_t outcome, uint64_t duration_ns);

static acquire_fn g_acquire = NULL;
static record_fn g_record = NULL;

#define RSL_ERR_STALE 107
#define OUTCOME_SUCCESS 0
#define OUTCOME_FAILURE 1
#define OUTCOME_IGNORED 2

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

typedef struct {
    PyObject_HEAD
#if PY_VERSION_HEX >= 0x03090000
    vectorcallfunc vectorcall;
#endif
    const void *breaker;    /* the rsl_breaker *, owned by `keepalive` */
    PyObject *keepalive;    /* the cffi cdata that frees the breaker when collected */
    PyObject *func;         /* the wrapped callable */
    PyObject *failure;      /* exception class or tuple: recorded as failures */
    PyObject *ignore;       /* exception class or tuple (may be empty): not counted */
    PyObject *refused;      /* refused(status, retry_after_ns) -> exception to raise */
    PyObject *record_error; /* record_error(status) -> exception to raise */
    PyObject *dict;         /* __dict__, for functools.update_wrapper */
    PyObject *weakreflist;
} Guard;

/* Raises what `factory(args...)` returns. Always returns NULL. */
static PyObject *raise_made(PyObject *made) {
    if (made != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(made), made);
        Py_DECREF(made);
    }
    return NULL;
}

/* The library refused to record (not a stale permit): raise its error,
 * chained to the exception the call raised, if any. */
static PyObject *raise_record_error(Guard *g, int32_t st, PyObject *cause) {
    PyObject *made = PyObject_CallFunction(g->record_error, "i", (int)st);
    if (made != NULL && cause != NULL) {
        Py_INCREF(cause);
        PyException_SetCause(made, cause); /* steals the reference */
    }
    return raise_made(made);
}

static PyObject *guard_finish(Guard *g, permit_t permit, uint64_t start, PyObject *result) {
    uint64_t end = now_ns();
    uint64_t duration = end > start ? end - start : 0;
    int32_t st;
    if (result != NULL) {
        st = g_record(g->breaker, permit, OUTCOME_SUCCESS, duration);
        if (st != 0 && st != RSL_ERR_STALE) {
            Py_DECREF(result);
            return raise_record_error(g, st, NULL);
        }
        return result;
    }
    {
        PyObject *type, *value, *tb;
        int32_t outcome = OUTCOME_IGNORED;
        PyErr_Fetch(&type, &value, &tb);
        if (type == NULL) { /* a NULL result with no exception: the callee's bug */
            st = g_record(g->breaker, permit, OUTCOME_IGNORED, duration);
            PyErr_SetString(PyExc_SystemError, "guarded function returned NULL without an exception");
            return NULL;
        }
        if (PyErr_GivenExceptionMatches(type, g->ignore)) {
            outcome = OUTCOME_IGNORED;
        } else if (PyErr_GivenExceptionMatches(type, g->failure)) {
            outcome = OUTCOME_FAILURE;
        }
        st = g_record(g->breaker, permit, outcome, duration);
        if (st != 0 && st != RSL_ERR_STALE) {
            PyErr_NormalizeException(&type, &value, &tb);
            if (tb != NULL && value != NULL) {
                PyException_SetTraceback(value, tb);
            }
            raise_record_error(g, st, value);
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
            return NULL;
        }
        PyErr_Restore(type, value, tb);
        return NULL;
    }
}

static int guard_enter(Guard *g, permit_t *permit) {
    uint64_t retry_after = 0;
    int32_t st = g_acquire(g->breaker, permit, &retry_after);
    if (st != 0) {
        raise_made(PyObject_CallFunction(g->refused, "iK", (int)st, (unsigned long long)retry_after));
        return -1;
    }
    return 0;
}

#if PY_VERSION_HEX >= 0x03090000
static PyObject *guard_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    Guard *g = (Guard *)self;
    permit_t permit;
    uint64_t start;
    PyObject *result;
    if (guard_enter(g, &permit) < 0) {
        return NULL;
    }
    start = now_ns();
    result = PyObject_Vectorcall(g->func, args, nargsf, kwnames);
    return guard_finish(g, permit, start, result);
}
#endif

static PyObject *guard_call(PyObject *self, PyObject *args, PyObject *kwargs) {
    Guard *g = (Guard *)self;
    permit_t permit;
    uint64_t start;
    PyObject *result;
    if (guard_enter(g, &permit) < 0) {
        return NULL;
    }
    start = now_ns();
    result = PyObject_Call(g->func, args, kwargs);
    return guard_finish(g, permit, start, result);
}

static PyObject *guard_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    unsigned long long addr;
    PyObject *keepalive, *func, *failure, *ignore, *refused, *record_error;
    Guard *g;
    (void)kwargs;
    if (g_acquire == NULL || g_record == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "resilience._speedups.init() was not called");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "KOOOOOO:Guard", &addr, &keepalive, &func, &failure, &ignore, &refused,
                          &record_error)) {
        return NULL;
    }
    if (addr == 0) {
        PyErr_SetString(PyExc_ValueError, "NULL breaker");
        return NULL;
    }
    if (!PyCallable_Check(func) || !PyCallable_Check(refused) || !PyCallable_Check(record_error)) {
        PyErr_SetString(PyExc_TypeError, "func, refused and record_error must be callable");
        return NULL;
    }
    g = (Guard *)type->tp_alloc(type, 0);
    if (g == NULL) {
        return NULL;
    }
#if PY_VERSION_HEX >= 0x03090000
    g->vectorcall = guard_vectorcall;
#endif
    g->breaker = (const void *)(uintptr_t)addr;
    Py_INCREF(keepalive);
    g->keepalive = keepalive;
    Py_INCREF(func);
    g->func = func;
    Py_INCREF(failure);
    g->failure = failure;
    Py_INCREF(ignore);
    g->ignore = ignore;
    Py_INCREF(refused);
    g->refused = refused;
    Py_INCREF(record_error);
    g->record_error = record_error;
    g->dict = NULL;
    g->weakreflist = NULL;
    return (PyObject *)g;
}

static int guard_traverse(PyObject *self, visitproc visit, void *arg) {
    Guard *g = (Guard *)self;
    Py_VISIT(g->keepalive);
    Py_VISIT(g->func);
    Py_VISIT(g->failure);
    Py_VISIT(g->ignore);
    Py_VISIT(g->refused);
    Py_VISIT(g->record_error);
    Py_VISIT(g->dict);
    return 0;
}

static int guard_clear(PyObject *self) {
    Guard *g = (Guard *)self;
    /* `keepalive` is kept until dealloc: the breaker must outlive every call. */
    Py_CLEAR(g->func);
    Py_CLEAR(g->failure);
    Py_CLEAR(g->ignore);
    Py_CLEAR(g->refused);
    Py_CLEAR(g->record_error);
    Py_CLEAR(g->dict);
    return 0;
}

static void guard_dealloc(PyObject *self) {
    Guard *g = (Guard *)self;
    PyObject_GC_UnTrack(self);
    if (g->weakreflist != NULL) {
        PyObject_ClearWeakRefs(self);
    }
    guard_clear(self);
    Py_CLEAR(g->keepalive);
    Py_TYPE(self)->tp_free(self);
}

/* Bind like a function, so @breaker works on methods. */
static PyObject *guard_descr_get(PyObject *self, PyObject *obj, PyObject *type) {
    (void)type;
    if (obj == NULL || obj == Py_None) {
        Py_INCREF(self);
        return self;
    }
    return PyMethod_New(self, obj);
}

/* Pickled and copied by reference, as the function it replaces is: by its
 * qualified name, looked up again in its module (update_wrapper gave it the
 * function's __module__ and __qualname__). The cffi wrapper, a plain
 * function, behaves the same. */
static PyObject *guard_reduce(PyObject *self, PyObject *unused) {
    (void)unused;
    return PyObject_GetAttrString(self, "__qualname__");
}

static PyMethodDef guard_methods[] = {
    {"__reduce__", guard_reduce, METH_NOARGS, "Pickles by reference, as a function."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef guard_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject GuardType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    "resilience._speedups.Guard",              /* tp_name */
    sizeof(Guard),                             /* tp_basicsize */
    0,                                         /* tp_itemsize */
    guard_dealloc,                             /* tp_dealloc */
#if PY_VERSION_HEX >= 0x03090000
    offsetof(Guard, vectorcall),               /* tp_vectorcall_offset */
#else
    0,
#endif
    0, 0, 0, 0, 0, 0, 0, 0,                    /* getattr .. tp_hash */
    guard_call,                                /* tp_call */
    0,                                         /* tp_str */
    PyObject_GenericGetAttr,                   /* tp_getattro */
    PyObject_GenericSetAttr,                   /* tp_setattro */
    0,                                         /* tp_as_buffer */
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
#if PY_VERSION_HEX >= 0x03090000
        | Py_TPFLAGS_HAVE_VECTORCALL
#endif
    ,                                          /* tp_flags */
    "A function guarded by a circuit breaker (made by CircuitBreaker.__call__).", /* tp_doc */
    guard_traverse,                            /* tp_traverse */
    guard_clear,                               /* tp_clear */
    0,                                         /* tp_richcompare */
    offsetof(Guard, weakreflist),              /* tp_weaklistoffset */
    0, 0,                                      /* tp_iter, tp_iternext */
    guard_methods,                             /* tp_methods */
    0,                                         /* tp_members */
    guard_getset,                              /* tp_getset */
    0, 0,                                      /* tp_base, tp_dict */
    guard_descr_get,                           /* tp_descr_get */
    0,                                         /* tp_descr_set */
    offsetof(Guard, dict),                     /* tp_dictoffset */
    0, 0,                                      /* tp_init, tp_alloc */
    guard_new,                                 /* tp_new */
};

static PyObject *speedups_init(PyObject *self, PyObject *args) {
    unsigned long long acquire, record;
    (void)self;
    if (!PyArg_ParseTuple(args, "KK:init", &acquire, &record)) {
        return NULL;
    }
    if (acquire == 0 || record == 0) {
        PyErr_SetString(PyExc_ValueError, "NULL function address");
        return NULL;
    }
    g_acquire = (acquire_fn)(uintptr_t)acquire;
    g_record = (record_fn)(uintptr_t)record;
    Py_RETURN_NONE;
}

static PyMethodDef speedups_methods[] = {
    {"init", speedups_init, METH_VARARGS,
     "init(try_acquire_addr, record_addr): the addresses of rsl_breaker_try_acquire and "
     "rsl_breaker_record."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "resilience._speedups",
    "The @breaker decorator's per-call path in C, over the public C ABI.", -1, speedups_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    PyObject *m;
    if (PyType_Ready(&GuardType) < 0) {
        return NULL;
    }
    m = PyModule_Create(&speedups_module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&GuardType);
    if (PyModule_AddObject(m, "Guard", (PyObject *)&GuardType) < 0) {
        Py_DECREF(&GuardType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
