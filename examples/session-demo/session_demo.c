/* kotte-session-demo: creates, reads, updates and deletes a session on the
 * json_file backend through the blocking API, printing each step.
 *
 *     kotte-session-demo [PATH]     (default ./data/sessions.journal)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <kotte.h>

static int fail(const char *what, int rc) {
  fprintf(stderr, "%s: %s (%s) %s\n", what, kotte_strerror(rc), kotte_err_name(rc),
          kotte_error_detail());
  return 1;
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "data/sessions.journal";
  if (argc <= 1 && mkdir("data", 0700) != 0 && errno != EEXIST) {
    perror("mkdir data");
    return 1;
  }
  kotte_runtime *rt;
  int rc = kotte_runtime_new(&rt, NULL);
  if (rc != 0) return fail("runtime", rc);

  /* The keys that keep session ids out of the file come from a secret
   * (SESSION_SECRET_KEY in Kotte); the same one every time the file opens. */
  const char *secret = getenv("SESSION_SECRET_KEY");
  if (secret == NULL || strlen(secret) < 16) secret = "session-demo-only-secret-not-for-production";
  kotte_session_backend *be;
  rc = kotte_session_backend_json_file_new(&be, kotte_runtime_loop(rt), path,
                                           (const unsigned char *)secret, strlen(secret));
  if (rc != 0) return fail("open json_file backend", rc);
  kotte_session_store *store;
  rc = kotte_session_store_open(&store, rt, be, NULL);
  if (rc != 0) {
    kotte_session_backend_free(be);
    return fail("open store", rc);
  }
  printf("libkotte %s, backend %s at %s\n", kotte_version(),
         kotte_session_store_backend_name(store), path);

  kotte_session *s = NULL;
  rc = kotte_session_create_sync(store, "alice", "{\"graph_context\":null}", &s, -1);
  if (rc != 0) return fail("create", rc);
  char id[KOTTE_SESSION_ID_LEN + 1];
  memcpy(id, kotte_session_id(s), sizeof id);
  printf("created  %.8s... for %s: %s\n", id, kotte_session_user_id(s), kotte_session_data(s));
  kotte_session_free(s);

  rc = kotte_session_update_sync(store, id, "{\"graph_context\":\"movies\"}", &s, -1);
  if (rc != 0) return fail("update", rc);
  kotte_session_free(s);

  rc = kotte_session_get_sync(store, id, &s, -1);
  if (rc != 0) return fail("get", rc);
  printf("read     %.8s...: %s (expires in %lld s)\n", id, kotte_session_data(s),
         (long long)((kotte_session_expires_at(s) - kotte_clock_now()) / 1000000));
  kotte_session_free(s);

  rc = kotte_session_delete_sync(store, id, -1);
  if (rc != 0) return fail("delete", rc);
  rc = kotte_session_get_sync(store, id, &s, -1);
  printf("deleted  %.8s...: get now says \"%s\"\n", id, kotte_strerror(rc));

  kotte_session_store_free(store);
  kotte_runtime_free(rt);
  return rc == KOTTE_ENOTFOUND ? 0 : 1;
}
