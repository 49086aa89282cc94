/*
 * The binding's asyncio bridge: starts libkotte's asynchronous operations
 * on a runtime's loop thread and hands their completions to an asyncio loop
 * through an eventfd, so that no asyncio loop ever waits on a blocking call
 * and no Python thread pool is involved.
 *
 *   asyncio thread                     libkotte loop thread
 *   --------------                     --------------------
 *   kpy_session_start() --post------>  kotte_session_get(..., cb)
 *                                      cb: queue completion, write eventfd
 *   loop.add_reader(fd) fires  <-----
 *   kpy_aioq_drain() -> [(token, status, payload), ...]
 *
 * The C side never touches a Python object off the GIL: callbacks only
 * move C data into the queue; kpy_aioq_drain() (called with the GIL held)
 * turns it into Python objects.
 */
#ifndef KPY_AIO_H
#define KPY_AIO_H

#include <Python.h>
#include <stdint.h>

#include <kotte.h>

typedef struct kpy_aioq kpy_aioq;

/* Operation codes of kpy_session_start(); the Python layer mirrors them. */
enum {
  KPY_S_CREATE = 1, /* a = user_id, b = data json */
  KPY_S_GET = 2,    /* a = id */
  KPY_S_UPDATE = 3, /* a = id, b = patch json */
  KPY_S_SET = 4,    /* a = id, b = user_id, c = data json, ttl */
  KPY_S_DELETE = 5, /* a = id */
  KPY_S_TOUCH = 6,  /* a = id */
  KPY_S_REGEN = 7,  /* a = id */
  KPY_S_LIST = 8,   /* a = user_id */
  KPY_S_DELUSER = 9,/* a = user_id */
  KPY_S_PURGE = 10
};

/* A new queue with its own non-blocking eventfd. 0, KOTTE_ENOMEM or KOTTE_EIO. */
int kpy_aioq_new(kpy_aioq **out);

/* The file descriptor to watch for readability. */
int kpy_aioq_fd(const kpy_aioq *q);

/* Drops the caller's reference. The queue (and its fd) goes away after the
 * last operation started on it has completed. NULL is a no-op. */
void kpy_aioq_release(kpy_aioq *q);

/* Number of operations started and not yet drained. */
long kpy_aioq_in_flight(const kpy_aioq *q);

/*
 * Takes every queued completion and returns a new list of tuples
 * (token, status, payload) where payload is None, an int (count), a session
 * tuple (id, user_id, data, created_at, last_activity, expires_at,
 * max_expires_at) or a list of session tuples; for a failure (status < 0)
 * it is the failure's kotte_error_detail() text, or None. Needs the GIL.
 */
PyObject *kpy_aioq_drain(kpy_aioq *q);

/*
 * Posts operation @p op on @p store to @p rt's loop thread. Its completion
 * is queued on @p q under @p token. Returns 0 (the completion will come,
 * also for a failure that the operation reports at its start) or a
 * negative code when nothing was started (KOTTE_EINVAL, KOTTE_ENOMEM,
 * KOTTE_ECLOSED). Never blocks on I/O; safe with the GIL held.
 */
int kpy_session_start(kpy_aioq *q, kotte_runtime *rt, kotte_session_store *store, int op,
                      uint64_t token, const char *a, const char *b, const char *c,
                      int64_t ttl_s);

/* Converts a session to the tuple described above (new reference). */
PyObject *kpy_session_tuple(const kotte_session *s);

/* Converts a list to a Python list of session tuples (new reference). */
PyObject *kpy_session_list_py(const kotte_session_list *l);

#endif
