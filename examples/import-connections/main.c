/* kotte-import-connections: brings the saved connections of an existing
 * Kotte installation (its connections.json) into a libkotte credential
 * store, keeping ids, names and timestamps.
 *
 *     kotte-import-connections [--dry-run] [--to json_file:PATH]
 *                              [--kotte-key-env NAME] CONNECTIONS_JSON
 *
 * Keys come from the environment, never from the command line (where `ps`
 * would show them):
 *   - Kotte's key: the variable named by --kotte-key-env (default
 *     MASTER_ENCRYPTION_KEY, the name Kotte reads);
 *   - the target's key ring: MASTER_ENCRYPTION_KEY and
 *     MASTER_ENCRYPTION_KEYS_PREVIOUS (see kotte_keyring_new()).
 * Keeping the same MASTER_ENCRYPTION_KEY for both is the usual migration;
 * a Fernet key from Kotte is a valid libkotte key.
 *
 * --dry-run decrypts and validates everything and writes nothing. Without
 * it, --to is required. A wrong key fails before anything is written (the
 * target file is not even created). Running the import again skips what is
 * already there. Exit status: 0 done, 1 failed, 2 usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kotte_import.h"

static int usage(void) {
  fprintf(stderr, "usage: kotte-import-connections [--dry-run] [--to json_file:PATH] "
                  "[--kotte-key-env NAME] CONNECTIONS_JSON\n");
  return 2;
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (n < cap) break;
    char *more = realloc(buf, cap *= 2);
    if (more == NULL) {
      free(buf);
      buf = NULL;
    }
    buf = more;
  }
  int err = ferror(f);
  fclose(f);
  if (err) {
    free(buf);
    return NULL;
  }
  *len = n;
  return buf;
}

int main(int argc, char **argv) {
  const char *to = NULL, *key_env = "MASTER_ENCRYPTION_KEY", *source = NULL;
  int dry = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--dry-run") == 0) dry = 1;
    else if (strcmp(argv[i], "--to") == 0 && i + 1 < argc) to = argv[++i];
    else if (strcmp(argv[i], "--kotte-key-env") == 0 && i + 1 < argc) key_env = argv[++i];
    else if (argv[i][0] == '-' || source) return usage();
    else source = argv[i];
  }
  if (source == NULL || (!dry && to == NULL)) return usage();
  const char *path = NULL;
  if (to && strncmp(to, "json_file:", 10) == 0 && to[10]) {
    path = to + 10;
  } else if (to) {
    fprintf(stderr, "kotte-import-connections: --to %s: this tool writes to json_file:PATH "
                    "(the PostgreSQL backend arrives with the pool; use the C API "
                    "kotte_import_write() with any store meanwhile)\n", to);
    return 2;
  }

  const char *kotte_key = getenv(key_env);
  if (kotte_key == NULL || kotte_key[0] == '\0') {
    fprintf(stderr, "kotte-import-connections: %s is not set: it must hold Kotte's "
                    "MASTER_ENCRYPTION_KEY\n", key_env);
    return 1;
  }
  kotte_keyring *kr;
  int rc = kotte_keyring_from_env(&kr);
  if (rc != 0) {
    fprintf(stderr, "kotte-import-connections: key ring: %s\n", kotte_error_detail());
    return 1;
  }
  size_t len = 0;
  char *json = slurp(source, &len);
  if (json == NULL) {
    fprintf(stderr, "kotte-import-connections: cannot read %s: %s\n", source, strerror(errno));
    kotte_keyring_free(kr);
    return 1;
  }
  kotte_import_set *set = NULL;
  kotte_import_report rep;
  rc = kotte_import_load(json, len, kotte_key, kr, &set, &rep);
  free(json);
  if (rc != 0) {
    fprintf(stderr, "kotte-import-connections: %s: %s\n", source, rep.message);
    kotte_keyring_free(kr);
    return 1;
  }
  if (dry) {
    printf("%zu connections of %zu users decrypt and are valid; nothing written (dry run)\n",
           rep.connections, rep.users);
    kotte_import_set_free(set);
    kotte_keyring_free(kr);
    return 0;
  }

  kotte_runtime *rt = NULL;
  kotte_cred_backend *be = NULL;
  kotte_cred_store *st = NULL;
  rc = kotte_runtime_new(&rt, NULL);
  if (rc == 0) rc = kotte_cred_backend_json_file_new(&be, kotte_runtime_loop(rt), path);
  if (rc == 0 && (rc = kotte_cred_store_open(&st, rt, be, kr, NULL)) != 0)
    kotte_cred_backend_free(be);
  if (rc != 0) {
    fprintf(stderr, "kotte-import-connections: %s: %s (%s)\n", to, kotte_strerror(rc),
            kotte_error_detail());
  } else {
    rc = kotte_import_write(st, set, &rep, 30000);
    if (rc != 0) fprintf(stderr, "kotte-import-connections: %s\n", rep.message);
    else
      printf("imported %zu connections of %zu users into %s (%zu were there already)\n",
             rep.imported, rep.users, to, rep.skipped);
  }
  kotte_cred_store_free(st);
  kotte_runtime_free(rt);
  kotte_import_set_free(set);
  kotte_keyring_free(kr);
  return rc == 0 ? 0 : 1;
}
