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
 *  - the asyncio bridge of src/kpy_aio.h and the secret sealer of
 *    src/kpy_secret.h.
 * The Pythonic API lives in plain Python beside it (libkotte/*.py).
 */
%module(package="libkotte") capi

%{
#define SWIG_FILE_WITH_INIT
#include <kotte.h>
#include <kotte/pg.h>
#include "kpy_aio.h"
#include "kpy_secret.h"

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
KPY_OUT_HANDLE(kpy_aioq)
KPY_OUT_HANDLE(kpy_sealer)

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

/* kpy_sealer_open's status: raise after the call. */
%typemap(in, numinputs=0) int *status (int tmp = 0) "$1 = &tmp;";
%typemap(argout) int *status {
  if (*$1 < 0) {
    Py_XDECREF($result);
    $result = NULL;
    kpy_raise(*$1, "");
    SWIG_fail;
  }
  if ($result == NULL) SWIG_fail;
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
%thread kotte_pg_pool_open;
%thread kotte_pg_pool_free;
%thread kotte_pg_pool_get_stats;
%thread kotte_pg_migrate;

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
%ignore kotte_pg_migrate_options::progress;
%ignore kotte_pg_migrate_options::progress_ctx;
%ignore kpy_session_tuple;
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
%include "kotte/session.h"
%include "kotte/pg.h"
%include "kpy_aio.h"
%include "kpy_secret.h"
