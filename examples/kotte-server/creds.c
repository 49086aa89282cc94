/* The saved-connection store and its key ring. */
#include "creds.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "log.h"

#define DEV_KEY_FILENAME ".master_encryption_key"

struct ks_creds {
  kotte_cred_store *store;
};

typedef struct ping_ctx {
  void (*cb)(int status, void *ud);
  void *ud;
} ping_ctx;

/* Reads the development key file, or creates it (O_EXCL: a concurrent
 * starter's key wins). The key goes into @p out (sodium_malloc'd). */
static int dev_key(const ks_config *cfg, char **out, char *err, size_t errlen) {
  char path[1100];
  const char *slash = strrchr(cfg->credential_path, '/');
  if (slash)
    snprintf(path, sizeof path, "%.*s/%s", (int)(slash - cfg->credential_path),
             cfg->credential_path, DEV_KEY_FILENAME);
  else
    snprintf(path, sizeof path, "%s", DEV_KEY_FILENAME);
  char *key = sodium_malloc(128);
  if (key == NULL) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  for (int attempt = 0; attempt < 2; attempt++) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ssize_t n = read(fd, key, 127);
      close(fd);
      if (n < 0) n = 0;
      key[n] = '\0';
      while (n && (key[n - 1] == '\n' || key[n - 1] == ' ' || key[n - 1] == '\r')) key[--n] = '\0';
      if (n < 32) {
        snprintf(err, errlen, "unusable development key file %s", path);
        sodium_free(key);
        return -1;
      }
      *out = key;
      return 0;
    }
    unsigned char raw[32];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(key, 128, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE);
    sodium_memzero(raw, sizeof raw);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) continue; /* another process won: read its key */
    if (fd < 0 || write(fd, key, strlen(key)) != (ssize_t)strlen(key) || fsync(fd) != 0) {
      snprintf(err, errlen, "cannot write the development key file %s: %s", path,
               strerror(errno));
      if (fd >= 0) close(fd);
      sodium_free(key);
      return -1;
    }
    close(fd);
    ks_logf(KOTTE_LOG_WARN, "development_key",
            "MASTER_ENCRYPTION_KEY is not set: using the development key in %s. Set "
            "MASTER_ENCRYPTION_KEY in production.",
            path);
    *out = key;
    return 0;
  }
  snprintf(err, errlen, "cannot read the development key file %s", path);
  sodium_free(key);
  return -1;
}

int ks_keyring_open(const ks_config *cfg, kotte_keyring **kr, char *err, size_t errlen) {
  const char *key = getenv("MASTER_ENCRYPTION_KEY");
  const char *prev = getenv("MASTER_ENCRYPTION_KEYS_PREVIOUS");
  char *dev = NULL;
  if (key == NULL || *key == '\0') {
    if (cfg->production) {
      snprintf(err, errlen, "MASTER_ENCRYPTION_KEY must be set in production");
      return -1;
    }
    if (dev_key(cfg, &dev, err, errlen) != 0) return -1;
    key = dev;
  }
  int rc = kotte_keyring_new(kr, key, prev);
  if (dev) sodium_free(dev);
  if (rc != 0) {
    /* the detail says what a key must look like; it never repeats one */
    snprintf(err, errlen, "MASTER_ENCRYPTION_KEY: %s %s", kotte_strerror(rc),
             kotte_error_detail());
    return -1;
  }
  return 0;
}

int ks_creds_open(ks_creds **out, uv_loop_t *loop, kotte_pg_pool *pool, const ks_config *cfg,
                  char *err, size_t errlen) {
  *out = NULL;
  kotte_cred_backend *be = NULL;
  int rc;
  switch (cfg->credential_storage) {
    case KS_STORE_MEMORY: rc = kotte_cred_backend_memory_new(&be); break;
    case KS_STORE_JSON_FILE:
      if (ks_make_parent(cfg->credential_path) != 0) {
        snprintf(err, errlen, "cannot create the directory of %.900s: %s", cfg->credential_path,
                 strerror(errno));
        return -1;
      }
      rc = kotte_cred_backend_json_file_new(&be, loop, cfg->credential_path);
      break;
    case KS_STORE_POSTGRESQL: rc = kotte_cred_backend_postgresql_new(&be, pool); break;
    default: rc = KOTTE_EINVAL;
  }
  if (rc != 0) {
    snprintf(err, errlen, "credential store (%s): %s %s", ks_storage_name(cfg->credential_storage),
             kotte_strerror(rc), kotte_error_detail());
    return -1;
  }
  kotte_keyring *kr;
  if (ks_keyring_open(cfg, &kr, err, errlen) != 0) {
    kotte_cred_backend_free(be);
    return -1;
  }
  ks_creds *c = calloc(1, sizeof *c);
  if (c == NULL) {
    kotte_keyring_free(kr);
    kotte_cred_backend_free(be);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  rc = kotte_cred_store_new(&c->store, loop, be, kr, NULL);
  kotte_keyring_free(kr); /* the store holds its own reference */
  if (rc != 0) {
    kotte_cred_backend_free(be);
    free(c);
    snprintf(err, errlen, "credential store: %s %s", kotte_strerror(rc), kotte_error_detail());
    return -1;
  }
  *out = c;
  return 0;
}

kotte_cred_store *ks_creds_store(ks_creds *c) { return c ? c->store : NULL; }

const char *ks_creds_backend(const ks_creds *c) {
  return c ? kotte_cred_store_backend_name(c->store) : "none";
}

static void on_probe(int status, kotte_cred_list *list, void *ud) {
  ping_ctx *p = ud;
  kotte_cred_list_free(list);
  p->cb(status, p->ud);
  free(p);
}

void ks_creds_ping(ks_creds *c, void (*cb)(int status, void *ud), void *ud) {
  ping_ctx *p = malloc(sizeof *p);
  int rc = KOTTE_ENOMEM;
  if (p) {
    p->cb = cb;
    p->ud = ud;
    /* a list of a user nobody is: the backend answers or it does not */
    rc = kotte_cred_list_user(c->store, "kotte-server-ready-probe", on_probe, p);
    if (rc == 0) return;
    free(p);
  }
  cb(rc, ud); /* (called from ks_h_ready, which counts this answer synchronously too) */
}

void ks_creds_close(ks_creds *c) {
  if (c == NULL) return;
  kotte_cred_store_free(c->store);
  free(c);
}
