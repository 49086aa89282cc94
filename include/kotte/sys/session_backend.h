/*
 * libkotte — the session backend interface, for backend writers.
 *
 * A backend is a struct whose first member is a kotte_session_backend,
 * filled with pointers to its operations:
 *
 *     struct my_backend { kotte_session_backend base; ... };
 *
 * The store decides ids, expiry and limits and passes the results down;
 * the backend stores and applies them atomically. All times are kotte_time
 * (µs since the epoch) computed from the store's clock and passed in, so
 * the backend never reads a clock of its own.
 *
 * Contract of every operation:
 *  - called on the store's loop thread;
 *  - returns 0 when started, then calls @p cb exactly once with @p ctx; or
 *    returns a negative code and never calls @p cb;
 *  - may call @p cb before returning (the store defers it for the user);
 *  - pointers passed in are valid only during the call; pointers passed to
 *    @p cb are valid only during the callback;
 *  - a session is alive at time now when now <= expires_at.
 *
 * A NULL optional method means "not supported": the store answers
 * KOTTE_ENOTSUP. Fields are only ever appended; set version to
 * KOTTE_SESSION_BACKEND_VERSION.
 */
#ifndef KOTTE_SYS_SESSION_BACKEND_H
#define KOTTE_SYS_SESSION_BACKEND_H

#include "kotte/session.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 2 added `check`, 3 `get_touch`; backends of versions 1 and 2 are still
 * accepted (without them). */
#define KOTTE_SESSION_BACKEND_VERSION 3

/** A session as backends see it. */
typedef struct kotte_session_record {
  const char *id;          /**< 43-character token */
  const char *user_id;     /**< owner */
  const char *data;        /**< compact JSON object text */
  size_t data_len;         /**< strlen(data) */
  kotte_time created_at;
  kotte_time last_activity;
  kotte_time expires_at;     /**< min(last_activity + idle_timeout, max_expires_at) */
  kotte_time max_expires_at; /**< never extended */
  kotte_time idle_timeout;   /**< µs; what a slide adds to now */
} kotte_session_record;

typedef void (*kotte_session_backend_record_cb)(int status, const kotte_session_record *rec,
                                                void *ctx);
typedef void (*kotte_session_backend_list_cb)(int status, const kotte_session_record *recs,
                                              size_t n, void *ctx);
typedef void (*kotte_session_backend_count_cb)(int status, uint64_t count, void *ctx);
typedef void (*kotte_session_backend_status_cb)(int status, void *ctx);

struct kotte_session_backend {
  unsigned int version;
  /** Short name, e.g. "memory". */
  const char *name;

  /**
   * Stores @p rec. With @p replace 0: KOTTE_EEXISTS if the id is taken.
   * With @p replace 1: upsert; an existing live record keeps its
   * created_at and max_expires_at (and expires_at is re-capped by it).
   * Calls back with the stored record.
   */
  int (*put)(kotte_session_backend *be, const kotte_session_record *rec, int replace,
             kotte_session_backend_record_cb cb, void *ctx);

  /**
   * Looks @p id up at time @p now. Dead or absent: KOTTE_ENOTFOUND (the
   * backend may delete a dead record). With @p slide: atomically sets
   * last_activity = now and expires_at = min(now + idle_timeout,
   * max_expires_at). Calls back with the (slid) record.
   */
  int (*get)(kotte_session_backend *be, const char *id, kotte_time now, int slide,
             kotte_session_backend_record_cb cb, void *ctx);

  /**
   * Atomically merges the top-level keys of the JSON object @p patch into
   * a live record's data and slides it, unless the merged text would exceed
   * @p max_size bytes (KOTTE_ETOOBIG, record unchanged). Dead or absent:
   * KOTTE_ENOTFOUND, and nothing is written.
   */
  int (*update)(kotte_session_backend *be, const char *id, kotte_time now, const char *patch,
                size_t patch_len, size_t max_size, kotte_session_backend_record_cb cb,
                void *ctx);

  /** Deletes @p id; calls back with the number deleted (0 or 1). */
  int (*remove)(kotte_session_backend *be, const char *id, kotte_session_backend_count_cb cb,
                void *ctx);

  /**
   * Atomically moves a live record from @p old_id to @p new_id, sliding it
   * at @p now. KOTTE_ENOTFOUND if @p old_id is dead; KOTTE_EEXISTS if
   * @p new_id is taken. Calls back with the moved record.
   */
  int (*rename)(kotte_session_backend *be, const char *old_id, const char *new_id,
                kotte_time now, kotte_session_backend_record_cb cb, void *ctx);

  /** The live records of @p user_id at @p now, oldest first. Optional. */
  int (*list_user)(kotte_session_backend *be, const char *user_id, kotte_time now,
                   kotte_session_backend_list_cb cb, void *ctx);

  /** Deletes every record of @p user_id; calls back with how many. Optional. */
  int (*remove_user)(kotte_session_backend *be, const char *user_id,
                     kotte_session_backend_count_cb cb, void *ctx);

  /**
   * Deletes at most @p limit records dead at @p now; calls back with how
   * many. The store calls it again while the count equals @p limit.
   * Optional.
   */
  int (*purge)(kotte_session_backend *be, kotte_time now, unsigned int limit,
               kotte_session_backend_count_cb cb, void *ctx);

  /**
   * Releases the backend. Called once, on the loop thread, when no
   * operation is in flight. A backend with libuv handles closes them here
   * and frees its memory in the last close callback.
   */
  void (*free)(kotte_session_backend *be);

  /**
   * Version 2. Readiness (kotte_session_store_check()): calls back with 0
   * if the backend can serve reads and writes now, else the error a write
   * would meet (e.g. KOTTE_EIO while its storage cannot be written). It
   * runs every few seconds on every replica: it must be cheap and must not
   * grow the storage while all is well. Optional: without it the store
   * asks with a get of an id that does not exist.
   */
  int (*check)(kotte_session_backend *be, kotte_session_backend_status_cb cb, void *ctx);

  /**
   * Version 3. get with a touch interval: like get with @p slide, except
   * that the slide is written only when now - last_activity >=
   * @p touch_interval (µs); otherwise the live record is answered as stored
   * and nothing is written. A negative @p touch_interval means 1 % of the
   * record's own idle_timeout (KOTTE_SESSION_TOUCH_DEFAULT); 0 slides on
   * every call. Optional: without it the store calls get with slide 1.
   */
  int (*get_touch)(kotte_session_backend *be, const char *id, kotte_time now,
                   kotte_time touch_interval, kotte_session_backend_record_cb cb, void *ctx);
};

/**
 * The rule of get_touch for backend writers: 1 when a read at @p now of a
 * record last slid at @p last_activity with @p idle_timeout (µs) must write
 * the slide back under @p touch_interval (µs; negative: 1 % of idle_timeout).
 */
static inline int kotte_session_touch_due(kotte_time touch_interval, kotte_time last_activity,
                                          kotte_time idle_timeout, kotte_time now) {
  kotte_time interval = touch_interval < 0 ? idle_timeout / 100 : touch_interval;
  return now - last_activity >= interval;
}

#ifdef __cplusplus
}
#endif
#endif /* KOTTE_SYS_SESSION_BACKEND_H */
