/*
 * SWIG interface of libkotte for Python: the module libkotte.capi.
 *
 * Thin on purpose: it wraps the public headers as they are. What it adds:
 *  - every function that can block (the *_sync facade, store and runtime
 *    lifecycle, the json_file backend's load) releases the GIL (-threads);
 *    the rest keeps it, since releasing costs more than they do;
 *  - a negative return code raises the matching libkotte.errors exception
 *    (with kotte_error_detail() of the failing call);
 *  - out-parameters become return values; sessions come back as tuples
 *    (id, user_id, data_json, created_at, last_activity, expires_at,
 *    max_expires_at) with times in microseconds since the epoch, and the C
 *    objects are freed at once;
 *  - the asyncio bridge of src/kpy_aio.h.
 * The Pythonic API lives in plain Python beside it (libkotte/*.py).
 */
%module(package="libkotte") capi

%{
#define SWIG_FILE_WITH_INIT
#include <kotte.h>
#include <kotte/pg.h>
#include <kotte/credential.h>
#include <kotte/query.h>
#include "kpy_aio.h"

/* A registered query as a tuple (request_id, user_id, replica_id,
 * backend_pid, started_at, local). */
static PyObject *kpy_query_tuple(const kotte_query_info *i) {
  return Py_BuildValue("(sssiLO)", i->request_id, i->user_id, i->replica_id, i->backend_pid,
                       (long long)i->started_at, i->local ? Py_True : Py_False);
}

static PyObject *kpy_query_list_py(const kotte_query_list *l) {
  PyObject *list = PyList_New((Py_ssize_t)l->count);
  for (size_t i = 0; list && i < l->count; i++) {
    PyObject *t = kpy_query_tuple(l->items[i]);
    if (t == NULL) {
      Py_CLEAR(list);
      break;
    }
    PyList_SET_ITEM(list, (Py_ssize_t)i, t);
  }
  return list;
}

/* The query registry's cancel handler in Python. The C handler runs on the
 * runtime's loop thread: it takes the GIL for the call only, and the
 * Python callable must return at once (it schedules the cancel on its
 * asyncio loop and answers later with kpy_query_cancel_done(), from any
 * thread). A handler that raises, or an interpreter on its way out,
 * answers KOTTE_ENOTFOUND at once, so the registry never waits for an
 * answer nobody will give. */
typedef struct kpy_query_registry {
  kotte_query_registry *reg;
  PyObject *handler; /* a strong reference, dropped by kpy_query_registry_free() */
} kpy_query_registry;

#if PY_VERSION_HEX >= 0x030D0000
#define KPY_FINALIZING() Py_IsFinalizing()
#else
#define KPY_FINALIZING() _Py_IsFinalizing() /* public only from 3.13 */
#endif

static void kpy_query_on_cancel(kotte_query_cancel_req *req, const char *rid, const char *user,
                                int pid, void *ud) {
  kpy_query_registry *k = ud;
  if (k->handler == NULL || KPY_FINALIZING()) {
    kotte_query_cancel_done(req, KOTTE_ENOTFOUND);
    return;
  }
  PyGILState_STATE g = PyGILState_Ensure();
  PyObject *r = PyObject_CallFunction(k->handler, "Kssi", (unsigned long long)(uintptr_t)req,
                                      rid, user, pid);
  if (r == NULL) { /* it raised before answering (libkotte.queries answers, then never raises) */
    PyErr_WriteUnraisable(k->handler);
    kotte_query_cancel_done(req, KOTTE_ENOTFOUND);
  }
  Py_XDECREF(r);
  PyGILState_Release(g);
}

/* A saved connection as a tuple (id, user_id, name, host, port, database,
 * sslmode, username, password, key_id, created_at, updated_at,
 * created_at_iso, updated_at_iso); username and password are None unless
 * the record came from a get. */
static PyObject *kpy_cred_tuple(const kotte_cred *c) {
  return Py_BuildValue("(ssssiszzzsLLss)", kotte_cred_id(c), kotte_cred_user_id(c),
                       kotte_cred_name(c), kotte_cred_host(c), kotte_cred_port(c),
                       kotte_cred_database(c), kotte_cred_sslmode(c), kotte_cred_username(c),
                       kotte_cred_password(c), kotte_cred_key_id(c),
                       (long long)kotte_cred_created_at(c), (long long)kotte_cred_updated_at(c),
                       kotte_cred_created_at_iso(c), kotte_cred_updated_at_iso(c));
}

static PyObject *kpy_cred_list_py(const kotte_cred_list *l) {
  size_t n = kotte_cred_list_count(l);
  PyObject *list = PyList_New((Py_ssize_t)n);
  for (size_t i = 0; list && i < n; i++) {
    PyObject *t = kpy_cred_tuple(kotte_cred_list_get(l, i));
    if (t == NULL) {
      Py_CLEAR(list);
      break;
    }
    PyList_SET_ITEM(list, (Py_ssize_t)i, t);
  }
  return list;
}

/* A rewrap / key usage report as a dict. */
static PyObject *kpy_cred_report_py(const kotte_cred_report *r) {
  size_t n = kotte_cred_report_key_count(r);
  PyObject *keys = PyList_New(0);
  for (size_t i = 0; keys && i < n; i++) {
    PyObject *k = Py_BuildValue("{s:s,s:K,s:O,s:O}", "key_id", kotte_cred_report_key_id(r, i),
                                "records", (unsigned long long)kotte_cred_report_key_records(r, i),
                                "current", kotte_cred_report_key_is_current(r, i) ? Py_True : Py_False,
                                "in_ring", kotte_cred_report_key_in_ring(r, i) ? Py_True : Py_False);
    if (k == NULL || PyList_Append(keys, k) != 0) Py_CLEAR(keys);
    Py_XDECREF(k);
  }
  if (keys == NULL) return NULL;
  return Py_BuildValue("{s:K,s:K,s:K,s:N}", "rewrapped",
                       (unsigned long long)kotte_cred_report_rewrapped(r), "failed",
                       (unsigned long long)kotte_cred_report_failed(r), "stale",
                       (unsigned long long)kotte_cred_report_stale(r), "keys", keys);
}

static void kpy_raise(int code, const char *detail);

/* Fills @p in from a dict of its field names; strings stay owned by the dict. */
static int kpy_cred_input(PyObject *d, kotte_cred_input *in) {
  kotte_cred_input init = KOTTE_CRED_INPUT_INIT;
  *in = init;
  if (!PyDict_Check(d)) {
    PyErr_SetString(PyExc_TypeError, "a connection must be given as a dict");
    return -1;
  }
  static const char *const names[] = {"name", "host", "database", "sslmode", "username",
                                      "password", "id"};
  const char **slots[] = {&in->name, &in->host, &in->database, &in->sslmode, &in->username,
                          &in->password, &in->id};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    PyObject *v = PyDict_GetItemString(d, names[i]);
    if (v == NULL || v == Py_None) continue;
    if (!PyUnicode_Check(v)) {
      PyErr_Format(PyExc_TypeError, "connection field %s must be a str", names[i]);
      return -1;
    }
    Py_ssize_t n;
    if ((*slots[i] = PyUnicode_AsUTF8AndSize(v, &n)) == NULL) return -1;
    if (strlen(*slots[i]) != (size_t)n) { /* C would read it cut short at the NUL */
      char msg[80];
      snprintf(msg, sizeof msg, "connection field %s contains a NUL character", names[i]);
      kpy_raise(KOTTE_EINVAL, msg);
      return -1;
    }
  }
  static const char *const ints[] = {"port", "fields", "created_at", "updated_at"};
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
    PyObject *v = PyDict_GetItemString(d, ints[i]);
    if (v == NULL || v == Py_None) continue;
    long long x = PyLong_AsLongLong(v);
    if (x == -1 && PyErr_Occurred()) return -1;
    if (i == 0) in->port = (int)x;
    else if (i == 1) in->fields = (unsigned int)x;
    else if (i == 2) in->created_at = x;
    else in->updated_at = x;
  }
  return 0;
}

/* Raises the libkotte.errors exception for @p code (a negative KOTTE_E*). */
static void kpy_raise(int code, const char *detail) {
  PyObject *mod = PyImport_ImportModule("libkotte.errors");
  if (mod == NULL) return;
  PyObject *exc = PyObject_CallMethod(mod, "error_for", "is", code, detail ? detail : "");
  Py_DECREF(mod);
  if (exc == NULL) return;
  PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
  Py_DECREF(exc);
}
%}

%include <stdint.i>

#define KOTTE_EXTERN

/* ---- errors --------------------------------------------------------------- */

/* Every int a libkotte function returns is a status: negative is an error. */
%typemap(out) int {
  if ($1 < 0) {
    kpy_raise($1, kotte_error_detail());
    SWIG_fail;
  }
  $result = PyLong_FromLong($1);
}

/* ---- string arguments ---------------------------------------------------- */

/* A Python str holding a NUL would reach C cut short at it (a user id
 * "alice\0x" as "alice"): every string argument with one is refused with
 * InvalidArgumentError (KOTTE_EINVAL) instead. None still passes NULL. */
%typemap(in, fragment="SWIG_AsCharPtrAndSize") const char * (char *buf = 0, size_t size = 0, int alloc = 0) {
  int res = SWIG_AsCharPtrAndSize($input, &buf, &size, &alloc);
  if (!SWIG_IsOK(res)) {
    %argument_fail(res, "$type", $symname, $argnum);
  }
  if (buf && strlen(buf) + 1 != size) {
    kpy_raise(KOTTE_EINVAL, "a string argument contains a NUL character");
    SWIG_fail;
  }
  $1 = buf;
}
%typemap(freearg) const char * "if (alloc$argnum == SWIG_NEWOBJ) free(buf$argnum);";

/* ---- out-parameters ------------------------------------------------------- */

%define KPY_OUT_HANDLE(TYPE)
%typemap(in, numinputs=0) TYPE **out (TYPE *tmp = NULL) "$1 = &tmp;";
%typemap(argout) TYPE **out {
  Py_DECREF($result);
  $result = SWIG_NewPointerObj(SWIG_as_voidptr(*$1), $descriptor(TYPE *), 0);
}
%enddef

KPY_OUT_HANDLE(kotte_runtime)
KPY_OUT_HANDLE(kotte_session_backend)
KPY_OUT_HANDLE(kotte_session_store)
KPY_OUT_HANDLE(kotte_pg_pool)
KPY_OUT_HANDLE(kotte_keyring)
KPY_OUT_HANDLE(kotte_cred_backend)
KPY_OUT_HANDLE(kotte_cred_store)
KPY_OUT_HANDLE(kpy_aioq)
KPY_OUT_HANDLE(kpy_query_registry)

%typemap(in, numinputs=0) kotte_query_info **out (kotte_query_info *tmp = NULL) "$1 = &tmp;";
%typemap(argout) kotte_query_info **out {
  PyObject *t = kpy_query_tuple(*$1);
  kotte_query_info_free(*$1);
  *$1 = NULL;
  if (t == NULL) SWIG_fail;
  Py_DECREF($result);
  $result = t;
}
%typemap(freearg) kotte_query_info **out "kotte_query_info_free(*$1);";

%typemap(in, numinputs=0) kotte_query_list **out (kotte_query_list *tmp = NULL) "$1 = &tmp;";
%typemap(argout) kotte_query_list **out {
  PyObject *l = kpy_query_list_py(*$1);
  kotte_query_list_free(*$1);
  *$1 = NULL;
  if (l == NULL) SWIG_fail;
  Py_DECREF($result);
  $result = l;
}
%typemap(freearg) kotte_query_list **out "kotte_query_list_free(*$1);";

%typemap(in, numinputs=0) kotte_session **out (kotte_session *tmp = NULL) "$1 = &tmp;";
%typemap(argout) kotte_session **out {
  PyObject *t = kpy_session_tuple(*$1);
  kotte_session_free(*$1);
  *$1 = NULL;
  if (t == NULL) SWIG_fail;
  Py_DECREF($result);
  $result = t;
}
%typemap(freearg) kotte_session **out "kotte_session_free(*$1);";

%typemap(in, numinputs=0) kotte_session_list **out (kotte_session_list *tmp = NULL) "$1 = &tmp;";
%typemap(argout) kotte_session_list **out {
  PyObject *l = kpy_session_list_py(*$1);
  kotte_session_list_free(*$1);
  *$1 = NULL;
  if (l == NULL) SWIG_fail;
  Py_DECREF($result);
  $result = l;
}
%typemap(freearg) kotte_session_list **out "kotte_session_list_free(*$1);";

%typemap(in, numinputs=0) kotte_cred **out (kotte_cred *tmp = NULL) "$1 = &tmp;";
%typemap(argout) kotte_cred **out {
  PyObject *t = kpy_cred_tuple(*$1);
  kotte_cred_free(*$1);
  *$1 = NULL;
  if (t == NULL) SWIG_fail;
  Py_DECREF($result);
  $result = t;
}
%typemap(freearg) kotte_cred **out "kotte_cred_free(*$1);";

%typemap(in, numinputs=0) kotte_cred_list **out (kotte_cred_list *tmp = NULL) "$1 = &tmp;";
%typemap(argout) kotte_cred_list **out {
  PyObject *l = kpy_cred_list_py(*$1);
  kotte_cred_list_free(*$1);
  *$1 = NULL;
  if (l == NULL) SWIG_fail;
  Py_DECREF($result);
  $result = l;
}
%typemap(freearg) kotte_cred_list **out "kotte_cred_list_free(*$1);";

%typemap(in, numinputs=0) kotte_cred_report **out (kotte_cred_report *tmp = NULL) "$1 = &tmp;";
%typemap(argout) kotte_cred_report **out {
  PyObject *r = kpy_cred_report_py(*$1);
  kotte_cred_report_free(*$1);
  *$1 = NULL;
  if (r == NULL) SWIG_fail;
  Py_DECREF($result);
  $result = r;
}
%typemap(freearg) kotte_cred_report **out "kotte_cred_report_free(*$1);";

/* A connection to save or the changes of an update, from a dict. */
%typemap(in) const kotte_cred_input *in (kotte_cred_input tmp) {
  if (kpy_cred_input($input, &tmp) != 0) SWIG_fail;
  $1 = &tmp;
}

%typemap(in, numinputs=0) uint64_t *count (uint64_t tmp = 0) "$1 = &tmp;";
%typemap(argout) uint64_t *count {
  Py_DECREF($result);
  $result = PyLong_FromUnsignedLongLong(*$1);
}

%typemap(in, numinputs=0) unsigned int *applied (unsigned int tmp = 0) "$1 = &tmp;";
%typemap(argout) unsigned int *applied {
  Py_DECREF($result);
  $result = PyLong_FromUnsignedLong(*$1);
}

/* Secrets as bytes-like objects (kotte_session_backend_postgresql_new). */
%typemap(in) (const unsigned char *secret, size_t secret_len) (Py_buffer view = {0}) {
  if (PyObject_GetBuffer($input, &view, PyBUF_SIMPLE) != 0) SWIG_fail;
  $1 = ($1_ltype)view.buf;
  $2 = (size_t)view.len;
}
%typemap(freearg) (const unsigned char *secret, size_t secret_len) {
  if (view$argnum.obj) PyBuffer_Release(&view$argnum);
}

/* PyObject * results are passed through; NULL means an exception is set. */
%typemap(out) PyObject * {
  $result = $1;
  if ($result == NULL && PyErr_Occurred()) SWIG_fail;
}

/* ---- what may block releases the GIL -------------------------------------- */

%nothread;
%thread kotte_runtime_new;
%thread kotte_runtime_free;
%thread kotte_runtime_run;
%thread kotte_session_backend_json_file_new;
%thread kotte_session_store_open;
%thread kotte_session_store_free;
%thread kotte_session_create_sync;
%thread kotte_session_get_sync;
%thread kotte_session_update_sync;
%thread kotte_session_set_sync;
%thread kotte_session_delete_sync;
%thread kotte_session_touch_sync;
%thread kotte_session_regenerate_sync;
%thread kotte_session_list_user_sync;
%thread kotte_session_delete_user_sync;
%thread kotte_session_purge_expired_sync;
%thread kotte_session_store_check_sync;
%thread kotte_keyring_new;
%thread kotte_keyring_from_env;
%thread kotte_cred_backend_json_file_new;
%thread kotte_cred_store_open;
%thread kotte_cred_store_free;
%thread kotte_cred_save_sync;
%thread kotte_cred_get_sync;
%thread kotte_cred_list_user_sync;
%thread kotte_cred_update_sync;
%thread kotte_cred_delete_sync;
%thread kotte_cred_rewrap_sync;
%thread kotte_cred_key_usage_sync;
%thread kotte_cred_store_check_sync;
%thread kotte_pg_pool_open;
%thread kotte_pg_pool_free;
%thread kotte_pg_pool_get_stats;
%thread kotte_pg_pool_get_state;
%thread kotte_pg_migrate;
%thread kotte_pg_schema_check_sync;
%thread kpy_query_registry_open;
%thread kpy_query_registry_free;
%thread kpy_query_registry_ready;
%thread kotte_query_register_sync;
%thread kotte_query_set_backend_pid_sync;
%thread kotte_query_unregister_sync;
%thread kotte_query_get_sync;
%thread kotte_query_list_user_sync;
%thread kotte_query_cancel_sync;
%thread kotte_query_purge_sync;

/* ---- what is not useful from Python --------------------------------------- */

/* The asynchronous C API takes C callbacks and must run on the loop thread:
 * Python reaches it through the asyncio bridge (kpy_session_start). */
%ignore kotte_session_create;
%ignore kotte_session_get;
%ignore kotte_session_update;
%ignore kotte_session_set;
%ignore kotte_session_delete;
%ignore kotte_session_touch;
%ignore kotte_session_regenerate;
%ignore kotte_session_list_user;
%ignore kotte_session_delete_user;
%ignore kotte_session_purge_expired;
%ignore kotte_session_store_check;
%ignore kotte_session_store_new;
%ignore kotte_runtime_post;
%ignore kotte_runtime_run;
%ignore kotte_set_allocator;
%ignore kotte_allocator;
%ignore kotte_set_log_hook;
%ignore kotte_token_generate;
/* Sessions and lists never reach Python as C objects (see the typemaps). */
%ignore kotte_session_id;
%ignore kotte_session_user_id;
%ignore kotte_session_data;
%ignore kotte_session_created_at;
%ignore kotte_session_last_activity;
%ignore kotte_session_expires_at;
%ignore kotte_session_max_expires_at;
%ignore kotte_session_free;
%ignore kotte_session_list_count;
%ignore kotte_session_list_get;
%ignore kotte_session_list_free;
%ignore kotte_session_options::clock;
%ignore kotte_session_options::clock_ctx;
%ignore kotte_keyring_seal;
%ignore kotte_keyring_open;
%ignore kotte_keyring_blob_key_id;
%ignore kotte_keyring_sealed_size;
%ignore kotte_secret_free;
%ignore kotte_cred_save;
%ignore kotte_cred_get;
%ignore kotte_cred_list_user;
%ignore kotte_cred_update;
%ignore kotte_cred_delete;
%ignore kotte_cred_rewrap;
%ignore kotte_cred_key_usage;
%ignore kotte_cred_store_check;
%ignore kotte_cred_store_new;
%ignore kotte_cred_input;
%ignore kotte_cred_options::clock;
%ignore kotte_cred_options::clock_ctx;
%rename("$ignore", regextarget=1) "^kotte_cred_(id|user_id|name|host|port|database|sslmode|username|password|key_id|created_at|updated_at|created_at_iso|updated_at_iso|free)$";
%rename("$ignore", regextarget=1) "^kotte_cred_(list_(count|get|free)|report_.*)$";
/* loop-thread APIs: the LISTEN facility and the cache's counters */
%rename("$ignore", regextarget=1) "^kotte_pg_listener";
%rename("$ignore", regextarget=1) "^kotte_pg_notify_cb$";
%ignore kotte_session_backend_postgresql_cache_stats;
%ignore kotte_session_pg_cache_stats;
%ignore kotte_pg_pool_new;
%ignore kotte_pg_pool_loop;
%ignore kotte_pg_pool_prepare;
%ignore kotte_pg_pool_query;
%ignore kotte_pg_query;
%ignore kotte_pg_result_cb;
%ignore kotte_pg_result_ntuples;
%ignore kotte_pg_result_nfields;
%ignore kotte_pg_result_value;
%ignore kotte_pg_result_length;
%ignore kotte_pg_result_is_null;
%ignore kotte_pg_result_affected;
%ignore kotte_pg_result_sqlstate;
%ignore kotte_pg_result_error;
%ignore kotte_pg_schema_check; /* async; Python uses the blocking one */
%ignore kotte_pg_schema_cb;
%ignore kotte_pg_migrate_options::progress;
%ignore kotte_pg_migrate_options::progress_ctx;
%ignore kpy_session_tuple;
/* The query registry: Python opens it through kpy_query_registry_open()
 * (with a Python cancel handler) and uses the blocking calls. */
%ignore kotte_query_registry_new;
%ignore kotte_query_registry_open;
%ignore kotte_query_registry_free;
%ignore kotte_query_registry_ready;
%ignore kotte_query_register;
%ignore kotte_query_set_backend_pid;
%ignore kotte_query_unregister;
%ignore kotte_query_get;
%ignore kotte_query_list_user;
%ignore kotte_query_cancel;
%ignore kotte_query_purge;
%ignore kotte_query_cancel_done;
%ignore kotte_query_cancel_fn;
%ignore kotte_query_options;
%ignore kotte_query_info;
%ignore kotte_query_list;
%ignore kotte_query_info_free;
%ignore kotte_query_list_free;
%ignore kotte_query_registry_backend_name;
%ignore kotte_query_registry_replica_id;
%ignore kpy_session_list_py;

/* Options structs are created initialised, as their _INIT macros say. */
%extend kotte_runtime_options {
  kotte_runtime_options() {
    kotte_runtime_options *o = malloc(sizeof *o);
    if (o) {
      kotte_runtime_options init = KOTTE_RUNTIME_OPTIONS_INIT;
      *o = init;
    }
    return o;
  }
}
%extend kotte_pg_pool_options {
  kotte_pg_pool_options() {
    kotte_pg_pool_options *o = malloc(sizeof *o);
    if (o) {
      kotte_pg_pool_options init = KOTTE_PG_POOL_OPTIONS_INIT;
      *o = init;
    }
    return o;
  }
}
%extend kotte_pg_pool_stats {
  kotte_pg_pool_stats() {
    kotte_pg_pool_stats *o = calloc(1, sizeof *o);
    if (o) o->version = KOTTE_PG_STATS_VERSION;
    return o;
  }
}
%extend kotte_pg_pool_state {
  kotte_pg_pool_state() {
    kotte_pg_pool_state *o = calloc(1, sizeof *o);
    if (o) o->version = KOTTE_PG_POOL_STATE_VERSION;
    return o;
  }
}
%extend kotte_pg_migrate_options {
  kotte_pg_migrate_options() {
    kotte_pg_migrate_options *o = malloc(sizeof *o);
    if (o) {
      kotte_pg_migrate_options init = KOTTE_PG_MIGRATE_OPTIONS_INIT;
      *o = init;
    }
    return o;
  }
}
%extend kotte_cred_options {
  kotte_cred_options() {
    kotte_cred_options *o = malloc(sizeof *o);
    if (o) {
      kotte_cred_options init = KOTTE_CRED_OPTIONS_INIT;
      *o = init;
    }
    return o;
  }
}
%extend kotte_session_pg_options {
  kotte_session_pg_options() {
    kotte_session_pg_options *o = malloc(sizeof *o);
    if (o) {
      kotte_session_pg_options init = KOTTE_SESSION_PG_OPTIONS_INIT;
      *o = init;
    }
    return o;
  }
}
%extend kotte_session_options {
  kotte_session_options() {
    kotte_session_options *o = malloc(sizeof *o);
    if (o) {
      kotte_session_options init = KOTTE_SESSION_OPTIONS_INIT;
      *o = init;
    }
    return o;
  }
}

%include "kotte/common.h"
%include "kotte/core.h"
%include "kotte/runtime.h"
%include "kotte/keyring.h"
%include "kotte/session.h"
%apply int *OUTPUT { int *version }; /* kotte_pg_schema_check_sync: (status, version) */
%include "kotte/pg.h"
%include "kotte/credential.h"
%include "kpy_aio.h"
%include "kotte/query.h"

%inline %{
/* Opens a registry on @p rt (memory when @p pool is None) whose cancel
 * handler is the Python callable @p handler (None: cancels of this
 * replica's queries answer KOTTE_ENOTSUP): handler(req, request_id,
 * user_id, backend_pid), req to be answered once with
 * kpy_query_cancel_done(req, status). */
int kpy_query_registry_open(kpy_query_registry **out, kotte_runtime *rt, kotte_pg_pool *pool,
                            PyObject *handler, unsigned int cancel_timeout_ms,
                            long long stale_after_s) {
  *out = NULL;
  kpy_query_registry *k = calloc(1, sizeof *k);
  if (k == NULL) return KOTTE_ENOMEM;
  kotte_query_options o = KOTTE_QUERY_OPTIONS_INIT;
  if (handler != Py_None) {
    PyGILState_STATE g = PyGILState_Ensure(); /* the wrapper released it */
    Py_INCREF(handler);
    PyGILState_Release(g);
    k->handler = handler;
    o.on_cancel = kpy_query_on_cancel;
    o.cancel_userdata = k;
  }
  if (cancel_timeout_ms) o.cancel_timeout_ms = cancel_timeout_ms;
  if (stale_after_s > 0) o.stale_after_s = stale_after_s;
  int rc = kotte_query_registry_open(&k->reg, rt, pool, &o);
  if (rc != 0) {
    if (k->handler) {
      PyGILState_STATE g = PyGILState_Ensure();
      Py_DECREF(k->handler);
      PyGILState_Release(g);
    }
    free(k);
    return rc;
  }
  *out = k;
  return 0;
}

void kpy_query_registry_free(kpy_query_registry *k) {
  if (k == NULL) return;
  kotte_query_registry_free(k->reg);
  if (k->handler) {
    PyGILState_STATE g = PyGILState_Ensure();
    Py_DECREF(k->handler);
    PyGILState_Release(g);
  }
  free(k);
}

kotte_query_registry *kpy_query_registry_handle(kpy_query_registry *k) { return k->reg; }

const char *kpy_query_registry_replica_id(kpy_query_registry *k) {
  return kotte_query_registry_replica_id(k->reg);
}

const char *kpy_query_registry_backend_name(kpy_query_registry *k) {
  return kotte_query_registry_backend_name(k->reg);
}

int kpy_query_registry_ready(kpy_query_registry *k) {
  return kotte_query_registry_ready(k->reg);
}

/* Answers a request handed to the Python handler; any thread, once. */
int kpy_query_cancel_done(unsigned long long req, int status) {
  return kotte_query_cancel_done((kotte_query_cancel_req *)(uintptr_t)req, status);
}
%}
