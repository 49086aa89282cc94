/* Users: the password-check limiter, deferred callbacks and the file
 * backend. Hashes are checked with well-kept code only: libsodium's
 * crypto_pwhash_str_verify() (argon2id) and libxcrypt's crypt_rn()
 * (bcrypt). */
#include <crypt.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include <kotte.h>

#include "log.h"
#include "users_internal.h"

typedef struct deferred {
  struct deferred *next;
  int result;
  char *user_id, *username;
  ks_user_cb cb;
  void *ud;
} deferred;

typedef struct check_job {
  uv_work_t work;
  struct check_job *next;
  ks_users *u;
  ks_hash_kind kind;
  int known, ok;
  char *hash, *password, *user_id, *username;
  ks_user_cb cb;
  void *ud;
} check_job;

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static void wipe_free(char *s) {
  if (s) {
    sodium_memzero(s, strlen(s));
    free(s);
  }
}

static void maybe_free(ks_users *u);

/* ---- deferred callbacks ------------------------------------------------ */

static void on_async(uv_async_t *a) {
  ks_users *u = a->data;
  deferred *d = u->dq_head;
  u->dq_head = u->dq_tail = NULL;
  while (d) {
    deferred *next = d->next;
    d->cb(d->result, d->user_id, d->username, d->ud);
    free(d->user_id);
    free(d->username);
    free(d);
    u->pending--;
    d = next;
  }
  maybe_free(u);
}

void ks__users_defer(ks_users *u, int result, const char *user_id, const char *username,
                     ks_user_cb cb, void *ud) {
  deferred *d = calloc(1, sizeof *d);
  if (d) {
    d->user_id = dup_or_null(user_id);
    d->username = dup_or_null(username);
  }
  if (d == NULL || (user_id && !d->user_id) || (username && !d->username)) {
    if (d) {
      free(d->user_id);
      free(d->username);
      free(d);
    }
    /* Out of memory even for this record: answer now rather than never
     * (every caller tolerates it; they answer their request and return). */
    cb(KOTTE_ENOMEM, NULL, NULL, ud);
    return;
  }
  d->result = result;
  d->cb = cb;
  d->ud = ud;
  if (u->dq_tail)
    u->dq_tail->next = d;
  else
    u->dq_head = d;
  u->dq_tail = d;
  u->pending++;
  uv_async_send(&u->async);
}

void ks__users_hold(ks_users *u) { u->pending++; }
void ks__users_release(ks_users *u) {
  u->pending--;
  maybe_free(u);
}

/* ---- password checks on the thread pool ------------------------------- */

static void check_work(uv_work_t *w) {
  check_job *j = w->data;
  if (j->kind == KS_HASH_ARGON2ID) {
    j->ok = crypto_pwhash_str_verify(j->hash, j->password, strlen(j->password)) == 0;
  } else {
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (cd) {
      const char *out = crypt_rn(j->password, j->hash, cd, sizeof *cd);
      size_t hl = strlen(j->hash);
      j->ok = out && out[0] != '*' && strlen(out) == hl && sodium_memcmp(out, j->hash, hl) == 0;
      sodium_memzero(cd, sizeof *cd);
      free(cd);
    }
  }
  if (!j->known) j->ok = 0;
}

static void start_checks(ks_users *u);

static void job_free(check_job *j) {
  wipe_free(j->password);
  free(j->hash);
  free(j->user_id);
  free(j->username);
  free(j);
}

static void check_done(uv_work_t *w, int status) {
  check_job *j = w->data;
  ks_users *u = j->u;
  u->running--;
  int result = status < 0 ? KOTTE_ECANCELED : j->ok ? KS_USER_OK : KS_USER_DENIED;
  j->cb(result, j->ok ? j->user_id : NULL, j->ok ? j->username : NULL, j->ud);
  job_free(j);
  u->pending--;
  start_checks(u);
  maybe_free(u);
}

static void start_checks(ks_users *u) {
  while (u->cq_head && u->running < u->max_running && !u->closing) {
    check_job *j = u->cq_head;
    u->cq_head = j->next;
    if (u->cq_head == NULL) u->cq_tail = NULL;
    u->queued--;
    j->work.data = j;
    if (uv_queue_work(u->loop, &j->work, check_work, check_done) != 0) {
      ks__users_defer(u, KOTTE_EINTERNAL, NULL, NULL, j->cb, j->ud);
      job_free(j);
      u->pending--;
      continue;
    }
    u->running++;
  }
}

void ks__users_check(ks_users *u, ks_hash_kind kind, const char *hash, int known,
                     const char *user_id, const char *username, const char *password, ks_user_cb cb,
                     void *ud) {
  if (u->closing) {
    ks__users_defer(u, KOTTE_ECANCELED, NULL, NULL, cb, ud);
    return;
  }
  if (u->queued >= u->max_queued) {
    ks__users_defer(u, KS_USER_BUSY, NULL, NULL, cb, ud);
    return;
  }
  check_job *j = calloc(1, sizeof *j);
  if (j) {
    j->hash = strdup(hash);
    j->password = strdup(password);
    j->user_id = dup_or_null(user_id);
    j->username = dup_or_null(username);
  }
  if (j == NULL || !j->hash || !j->password || (user_id && !j->user_id) ||
      (username && !j->username)) {
    if (j) job_free(j);
    ks__users_defer(u, KOTTE_ENOMEM, NULL, NULL, cb, ud);
    return;
  }
  j->u = u;
  j->kind = kind;
  j->known = known;
  j->cb = cb;
  j->ud = ud;
  if (u->cq_tail)
    u->cq_tail->next = j;
  else
    u->cq_head = j;
  u->cq_tail = j;
  u->queued++;
  u->pending++;
  start_checks(u);
}

/* ---- common object ------------------------------------------------------ */

int ks__users_init(ks_users *u, uv_loop_t *loop, const ks_users_ops *ops, unsigned max_running) {
  u->ops = ops;
  u->loop = loop;
  u->max_running = max_running;
  u->max_queued = 64 * max_running;
  /* The dummy hash: a real argon2id hash of random bytes, checked for
   * unknown users so that they take as long as known ones. */
  unsigned char rnd[16];
  randombytes_buf(rnd, sizeof rnd);
  if (crypto_pwhash_str_alg(u->dummy_hash, (const char *)rnd, sizeof rnd,
                            crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE,
                            crypto_pwhash_ALG_ARGON2ID13) != 0)
    return -1;
  u->async.data = u;
  return uv_async_init(loop, &u->async, on_async) == 0 ? 0 : -1;
}

void ks_users_verify(ks_users *u, const char *username, const char *password, ks_user_cb cb,
                     void *ud) {
  if (u->closing)
    ks__users_defer(u, KOTTE_ECANCELED, NULL, NULL, cb, ud);
  else
    u->ops->verify(u, username, password, cb, ud);
}

void ks_users_lookup(ks_users *u, const char *user_id, ks_user_cb cb, void *ud) {
  if (u->closing)
    ks__users_defer(u, KOTTE_ECANCELED, NULL, NULL, cb, ud);
  else
    u->ops->lookup(u, user_id, cb, ud);
}

void ks_users_ping(ks_users *u, ks_user_cb cb, void *ud) {
  if (u->closing)
    ks__users_defer(u, KOTTE_ECANCELED, NULL, NULL, cb, ud);
  else
    u->ops->ping(u, cb, ud);
}

const char *ks_users_backend(const ks_users *u) { return u ? u->ops->name : "none"; }

void ks_users_get_stats(const ks_users *u, ks_users_stats *out) {
  out->running = u ? u->running : 0;
  out->queued = u ? u->queued : 0;
}

static void on_async_closed(uv_handle_t *h) {
  ks_users *u = h->data;
  u->ops->free_impl(u);
  free(u);
}

static void maybe_free(ks_users *u) {
  if (!u->closing || u->pending > 0 || uv_is_closing((uv_handle_t *)&u->async)) return;
  uv_close((uv_handle_t *)&u->async, on_async_closed);
}

void ks_users_close(ks_users *u) {
  if (u == NULL || u->closing) return;
  u->closing = 1;
  /* queued (not yet running) checks end now */
  check_job *j = u->cq_head;
  u->cq_head = u->cq_tail = NULL;
  while (j) {
    check_job *next = j->next;
    u->queued--;
    ks__users_defer(u, KOTTE_ECANCELED, NULL, NULL, j->cb, j->ud);
    job_free(j);
    u->pending--;
    j = next;
  }
  maybe_free(u);
}

/* ---- the file backend ---------------------------------------------------- */

typedef struct file_impl {
  char path[1024];
  ks_user_rec *recs;
  size_t n;
  int loaded;
  struct stat st; /* of the content in recs */
  char error[1200];
} file_impl;

/* Re-reads the file when it changed since the last read. 0 or -1. */
static int file_refresh(file_impl *f) {
  struct stat st;
  if (stat(f->path, &st) != 0) {
    snprintf(f->error, sizeof f->error, "users file %s: %s", f->path, strerror(errno));
    return -1;
  }
  if (f->loaded && st.st_ino == f->st.st_ino && st.st_size == f->st.st_size &&
      st.st_mtim.tv_sec == f->st.st_mtim.tv_sec && st.st_mtim.tv_nsec == f->st.st_mtim.tv_nsec)
    return 0;
  ks_user_rec *recs;
  size_t n;
  char err[256];
  if (ks__users_file_read(f->path, &recs, &n, err, sizeof err) != 0) {
    snprintf(f->error, sizeof f->error, "%s", err);
    return -1;
  }
  ks__users_recs_free(f->recs, f->n);
  f->recs = recs;
  f->n = n;
  f->st = st;
  if (f->loaded) ks_logf(KOTTE_LOG_INFO, "users_reloaded", "users file re-read: %zu users", n);
  f->loaded = 1;
  return 0;
}

static const ks_user_rec *file_find(file_impl *f, const char *name) {
  for (size_t i = 0; i < f->n; i++)
    if (strcmp(f->recs[i].name, name) == 0) return &f->recs[i];
  return NULL;
}

static void file_verify(ks_users *u, const char *username, const char *password, ks_user_cb cb,
                        void *ud) {
  file_impl *f = u->impl;
  /* A stat per login, and a re-read only when another process changed
   * the file: small enough for the loop thread. */
  if (file_refresh(f) != 0) {
    ks_log(KOTTE_LOG_ERROR, "users_unavailable", NULL, f->error);
    ks__users_defer(u, KOTTE_EIO, NULL, NULL, cb, ud);
    return;
  }
  const ks_user_rec *r = file_find(f, username);
  if (r && strncmp(r->hash, "$argon2id$", 10) == 0)
    ks__users_check(u, KS_HASH_ARGON2ID, r->hash, 1, r->name, r->name, password, cb, ud);
  else
    ks__users_check(u, KS_HASH_ARGON2ID, u->dummy_hash, 0, NULL, NULL, password, cb, ud);
}

static void file_lookup(ks_users *u, const char *user_id, ks_user_cb cb, void *ud) {
  file_impl *f = u->impl;
  if (file_refresh(f) != 0) {
    ks__users_defer(u, KOTTE_EIO, NULL, NULL, cb, ud);
    return;
  }
  const ks_user_rec *r = file_find(f, user_id);
  ks__users_defer(u, r ? KS_USER_OK : KS_USER_DENIED, r ? r->name : NULL, r ? r->name : NULL, cb,
                  ud);
}

static void file_ping(ks_users *u, ks_user_cb cb, void *ud) {
  file_impl *f = u->impl;
  ks__users_defer(u, file_refresh(f) == 0 ? 0 : KOTTE_EIO, NULL, NULL, cb, ud);
}

static void file_free(ks_users *u) {
  file_impl *f = u->impl;
  if (f) ks__users_recs_free(f->recs, f->n);
  free(f);
}

static const ks_users_ops file_ops = {"file", file_verify, file_lookup, file_ping, file_free};

int ks_users_open_file(ks_users **out, uv_loop_t *loop, const ks_config *cfg, char *err,
                       size_t errlen) {
  *out = NULL;
  struct stat st;
  if (stat(cfg->users_file, &st) != 0) {
    if (errno != ENOENT) {
      snprintf(err, errlen, "users file %s: %s", cfg->users_file, strerror(errno));
      return -1;
    }
    const char *pw = getenv("ADMIN_PASSWORD");
    if (pw == NULL || *pw == '\0') {
      if (cfg->production) {
        snprintf(err, errlen,
                 "users file %s does not exist; create it with `kotte-server user add NAME` or "
                 "set ADMIN_PASSWORD (ENVIRONMENT=production refuses the default admin password)",
                 cfg->users_file);
        return -1;
      }
      pw = "admin";
      ks_logf(KOTTE_LOG_WARN, "default_admin_password",
              "default admin password in use; set ADMIN_PASSWORD or manage users with "
              "`kotte-server user add`");
    }
    if (ks_users_file_put(cfg->users_file, "admin", pw, 0, err, errlen) != 0) return -1;
    ks_logf(KOTTE_LOG_INFO, "users_seeded", "created users file %s with the user admin",
            cfg->users_file);
  }
  ks_users *u = calloc(1, sizeof *u);
  file_impl *f = calloc(1, sizeof *f);
  if (u == NULL || f == NULL) {
    free(u);
    free(f);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  snprintf(f->path, sizeof f->path, "%s", cfg->users_file);
  u->impl = f;
  if (file_refresh(f) != 0) {
    snprintf(err, errlen, "%s", f->error);
    free(f);
    free(u);
    return -1;
  }
  if (ks__users_init(u, loop, &file_ops, cfg->max_password_checks) != 0) {
    snprintf(err, errlen, "could not set up the users store");
    ks__users_recs_free(f->recs, f->n);
    free(f);
    free(u);
    return -1;
  }
  *out = u;
  return 0;
}
