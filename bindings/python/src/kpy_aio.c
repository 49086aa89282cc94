/* The asyncio bridge (see kpy_aio.h). */
#include "kpy_aio.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef enum { P_NONE, P_SESSION, P_LIST, P_COUNT } payload_kind;

typedef struct kpy_op kpy_op;
struct kpy_op {
  kpy_aioq *q;
  kotte_session_store *store;
  int op;
  uint64_t token;
  char *a, *b, *c;
  int64_t ttl_s;
  /* Filled in by the callback. */
  int status;
  payload_kind kind;
  kotte_session *session;
  kotte_session_list *list;
  uint64_t count;
  char *detail; /* kotte_error_detail() of a failure, copied in its callback */
  kpy_op *next;
};

struct kpy_aioq {
  atomic_long refs;      /* the Python owner's + one per started operation */
  atomic_long in_flight; /* started and not yet drained */
  int fd;
  uv_mutex_t mu;
  kpy_op *head, *tail; /* completed, guarded by mu */
};

static void op_free(kpy_op *o) {
  free(o->a);
  free(o->b);
  free(o->c);
  kotte_session_free(o->session);
  kotte_session_list_free(o->list);
  free(o->detail);
  free(o);
}

static void q_unref(kpy_aioq *q) {
  if (atomic_fetch_sub(&q->refs, 1) != 1) return;
  kpy_op *o = q->head;
  while (o) {
    kpy_op *next = o->next;
    op_free(o);
    o = next;
  }
  close(q->fd);
  uv_mutex_destroy(&q->mu);
  free(q);
}

int kpy_aioq_new(kpy_aioq **out) {
  *out = NULL;
  kpy_aioq *q = calloc(1, sizeof *q);
  if (q == NULL) return KOTTE_ENOMEM;
  q->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (q->fd < 0) {
    free(q);
    return KOTTE_EIO;
  }
  if (uv_mutex_init(&q->mu) != 0) {
    close(q->fd);
    free(q);
    return KOTTE_ENOMEM;
  }
  atomic_init(&q->refs, 1);
  atomic_init(&q->in_flight, 0);
  *out = q;
  return 0;
}

int kpy_aioq_fd(const kpy_aioq *q) { return q ? q->fd : -1; }

long kpy_aioq_in_flight(const kpy_aioq *q) { return q ? atomic_load(&q->in_flight) : 0; }

void kpy_aioq_release(kpy_aioq *q) {
  if (q) q_unref(q);
}

/* Loop thread: queue the finished operation and wake the asyncio loop. */
static void complete(kpy_op *o, int status) {
  kpy_aioq *q = o->q;
  o->status = status;
  /* in the operation's callback (or right after its refused start) the
   * loop thread's detail explains this failure; it is thread-local, so it
   * travels with the operation */
  if (status != 0 && kotte_error_detail()[0]) o->detail = strdup(kotte_error_detail());
  o->next = NULL;
  uv_mutex_lock(&q->mu);
  int was_empty = q->head == NULL;
  if (q->tail) q->tail->next = o;
  else q->head = o;
  q->tail = o;
  uv_mutex_unlock(&q->mu);
  /* One write per batch: the reader drains everything queued so far, and
   * a completion queued after its drain finds the queue empty and writes. */
  if (was_empty) {
    uint64_t one = 1;
    ssize_t n;
    do n = write(q->fd, &one, sizeof one);
    while (n < 0 && errno == EINTR);
    /* EAGAIN means the counter is already non-zero: the reader will run. */
  }
  q_unref(q);
}

static void on_session(int status, kotte_session *s, void *ud) {
  kpy_op *o = ud;
  o->kind = P_SESSION;
  o->session = s;
  complete(o, status);
}

static void on_status(int status, void *ud) {
  kpy_op *o = ud;
  o->kind = P_NONE;
  complete(o, status);
}

static void on_count(int status, uint64_t n, void *ud) {
  kpy_op *o = ud;
  o->kind = P_COUNT;
  o->count = n;
  complete(o, status);
}

static void on_list(int status, kotte_session_list *l, void *ud) {
  kpy_op *o = ud;
  o->kind = P_LIST;
  o->list = l;
  complete(o, status);
}

static int dispatch(kpy_op *o) {
  kotte_session_store *st = o->store;
  switch (o->op) {
  case KPY_S_CREATE: return kotte_session_create(st, o->a, o->b, on_session, o);
  case KPY_S_GET: return kotte_session_get(st, o->a, on_session, o);
  case KPY_S_UPDATE: return kotte_session_update(st, o->a, o->b, on_session, o);
  case KPY_S_SET: return kotte_session_set(st, o->a, o->b, o->c, o->ttl_s, on_session, o);
  case KPY_S_DELETE: return kotte_session_delete(st, o->a, on_status, o);
  case KPY_S_TOUCH: return kotte_session_touch(st, o->a, on_status, o);
  case KPY_S_REGEN: return kotte_session_regenerate(st, o->a, on_session, o);
  case KPY_S_LIST: return kotte_session_list_user(st, o->a, on_list, o);
  case KPY_S_DELUSER: return kotte_session_delete_user(st, o->a, on_count, o);
  case KPY_S_PURGE: return kotte_session_purge_expired(st, on_count, o);
  default: return KOTTE_EINVAL;
  }
}

/* Loop thread: start the operation; a refusal at the start is a completion too. */
static void start_on_loop(void *arg) {
  kpy_op *o = arg;
  int rc = dispatch(o);
  if (rc != 0) {
    o->kind = P_NONE;
    complete(o, rc);
  }
}

static int dup_arg(const char *s, char **out) {
  *out = NULL;
  if (s == NULL) return 0;
  *out = strdup(s);
  return *out ? 0 : KOTTE_ENOMEM;
}

int kpy_session_start(kpy_aioq *q, kotte_runtime *rt, kotte_session_store *store, int op,
                      uint64_t token, const char *a, const char *b, const char *c,
                      int64_t ttl_s) {
  if (q == NULL || rt == NULL || store == NULL || op < KPY_S_CREATE || op > KPY_S_PURGE)
    return KOTTE_EINVAL;
  kpy_op *o = calloc(1, sizeof *o);
  if (o == NULL) return KOTTE_ENOMEM;
  if (dup_arg(a, &o->a) || dup_arg(b, &o->b) || dup_arg(c, &o->c)) {
    op_free(o);
    return KOTTE_ENOMEM;
  }
  o->q = q;
  o->store = store;
  o->op = op;
  o->token = token;
  o->ttl_s = ttl_s;
  atomic_fetch_add(&q->refs, 1);
  atomic_fetch_add(&q->in_flight, 1);
  int rc = kotte_runtime_post(rt, start_on_loop, o);
  if (rc != 0) {
    atomic_fetch_sub(&q->in_flight, 1);
    atomic_fetch_sub(&q->refs, 1); /* the caller still holds its own */
    op_free(o);
  }
  return rc;
}

/* ---- conversion to Python (GIL held) ------------------------------------ */

PyObject *kpy_session_tuple(const kotte_session *s) {
  return Py_BuildValue("(sssLLLL)", kotte_session_id(s), kotte_session_user_id(s),
                       kotte_session_data(s), (long long)kotte_session_created_at(s),
                       (long long)kotte_session_last_activity(s),
                       (long long)kotte_session_expires_at(s),
                       (long long)kotte_session_max_expires_at(s));
}

PyObject *kpy_session_list_py(const kotte_session_list *l) {
  size_t n = kotte_session_list_count(l);
  PyObject *list = PyList_New((Py_ssize_t)n);
  if (list == NULL) return NULL;
  for (size_t i = 0; i < n; i++) {
    PyObject *t = kpy_session_tuple(kotte_session_list_get(l, i));
    if (t == NULL) {
      Py_DECREF(list);
      return NULL;
    }
    PyList_SET_ITEM(list, (Py_ssize_t)i, t);
  }
  return list;
}

static PyObject *payload_py(const kpy_op *o) {
  if (o->status != 0) { /* a failure's payload is its detail */
    if (o->detail) return PyUnicode_DecodeUTF8(o->detail, (Py_ssize_t)strlen(o->detail), "replace");
    Py_RETURN_NONE;
  }
  switch (o->kind) {
  case P_SESSION: return kpy_session_tuple(o->session);
  case P_LIST: return kpy_session_list_py(o->list);
  case P_COUNT: return PyLong_FromUnsignedLongLong(o->count);
  default: Py_RETURN_NONE;
  }
}

PyObject *kpy_aioq_drain(kpy_aioq *q) {
  uint64_t counter;
  while (read(q->fd, &counter, sizeof counter) < 0 && errno == EINTR) {
  }
  uv_mutex_lock(&q->mu);
  kpy_op *o = q->head;
  q->head = q->tail = NULL;
  uv_mutex_unlock(&q->mu);

  PyObject *result = PyList_New(0);
  for (; o != NULL;) {
    kpy_op *next = o->next;
    atomic_fetch_sub(&q->in_flight, 1);
    if (result != NULL) {
      PyObject *payload = payload_py(o);
      PyObject *item = payload ? Py_BuildValue("(KiN)", (unsigned long long)o->token, o->status,
                                               payload)
                               : NULL;
      if (item == NULL || PyList_Append(result, item) != 0) Py_CLEAR(result);
      Py_XDECREF(item);
    }
    op_free(o);
    o = next;
  }
  return result;
}
