/* A program that uses an installed libkotte and includes only <kotte.h>. */
#include <stdio.h>
#include <string.h>

#include <kotte.h>

int main(void) {
  if (kotte_version_hex() != KOTTE_VERSION_HEX) {
    fprintf(stderr, "header %s, library %s\n", KOTTE_VERSION_STRING, kotte_version());
    return 1;
  }
  kotte_runtime *rt;
  kotte_session_backend *be;
  kotte_session_store *st;
  kotte_session *s;
  if (kotte_runtime_new(&rt, NULL) || kotte_session_backend_memory_new(&be) ||
      kotte_session_store_open(&st, rt, be, NULL))
    return 1;
  if (kotte_session_create_sync(st, "consumer", "{\"ok\":true}", &s, -1) != 0) return 1;
  char id[KOTTE_SESSION_ID_LEN + 1];
  memcpy(id, kotte_session_id(s), sizeof id);
  kotte_session_free(s);
  if (kotte_session_get_sync(st, id, &s, -1) != 0) return 1;
  int ok = strcmp(kotte_session_data(s), "{\"ok\":true}") == 0;
  kotte_session_free(s);
  kotte_session_store_free(st);
  kotte_runtime_free(rt);
  printf("consumer: libkotte %s %s\n", kotte_version(), ok ? "works" : "FAILED");
  return ok ? 0 : 1;
}
