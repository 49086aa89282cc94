/* kotte_pg_migrate() against a real PostgreSQL: fresh databases created
 * through the superuser conninfo of tests/pg/pg.sh, migrated as the owner. */
#include <libpq-fe.h>
#include <unistd.h>

#include "pg_test_util.h"
#include <kotte/sys/credential_backend.h>
#include <kotte/sys/session_backend.h>

#ifndef KOTTE_SOURCE_DIR
#error KOTTE_SOURCE_DIR must be defined
#endif
#define SQL_DIR KOTTE_SOURCE_DIR "/sql"

static int counter;

static void su(const char *sql) {
  PGconn *c = PQconnectdb(pg_env("KOTTE_TEST_PG_SUPER_CONNINFO"));
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
  assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
  PQclear(r);
  PQfinish(c);
}

/* A fresh, empty database owned by kotte; its owner conninfo in @p ci. */
static void fresh_db(char *name, size_t n, char *ci, size_t cn) {
  snprintf(name, n, "kotte_mig_%d_%d", (int)getpid(), ++counter);
  char sql[200];
  snprintf(sql, sizeof sql, "CREATE DATABASE %s OWNER kotte", name);
  su(sql);
  snprintf(ci, cn, "host=%s port=%s user=kotte dbname=%s", pg_env("KOTTE_TEST_PG_DIR"),
           pg_env("KOTTE_TEST_PG_PORT"), name);
}

static void drop_db(const char *name) {
  char sql[200];
  snprintf(sql, sizeof sql, "DROP DATABASE %s WITH (FORCE)", name);
  su(sql);
}

static int scalar_int(const char *ci, const char *sql) {
  PGconn *c = PQconnectdb(ci);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  PGresult *r = PQexec(c, sql);
  int v = PQresultStatus(r) == PGRES_TUPLES_OK ? atoi(PQgetvalue(r, 0, 0)) : -1;
  PQclear(r);
  PQfinish(c);
  return v;
}

static void applies_every_migration_once_then_nothing(void **state) {
  (void)state;
  char db[64], ci[512];
  fresh_db(db, sizeof db, ci, sizeof ci);
  unsigned int applied = 99;
  assert_int_equal(kotte_pg_migrate(ci, SQL_DIR, NULL, &applied), 0);
  assert_int_equal(applied, KOTTE_PG_SCHEMA_VERSION);
  assert_int_equal(scalar_int(ci, "SELECT count(*) FROM kotte_schema_migrations"),
                   KOTTE_PG_SCHEMA_VERSION);
  assert_int_equal(scalar_int(ci, "SELECT count(*) FROM information_schema.columns WHERE "
                                  "table_name = 'kotte_sessions' AND column_name = 'token_sealed'"), 1);
  assert_int_equal(kotte_pg_migrate(ci, SQL_DIR, NULL, &applied), 0);
  assert_int_equal(applied, 0);
  /* the application role got its grants (sql/roles/ was re-applied) */
  char app[512];
  snprintf(app, sizeof app, "host=%s port=%s user=kotte_app dbname=%s", pg_env("KOTTE_TEST_PG_DIR"),
           pg_env("KOTTE_TEST_PG_PORT"), db);
  assert_int_equal(scalar_int(app, "SELECT count(*) FROM kotte_sessions"), 0);
  drop_db(db);
}

typedef struct mig_thread {
  const char *ci;
  int rc;
  unsigned int applied;
} mig_thread;

static void run_migrate(void *arg) {
  mig_thread *t = arg;
  t->rc = kotte_pg_migrate(t->ci, SQL_DIR, NULL, &t->applied);
}

static void concurrent_migrators_take_turns(void **state) {
  (void)state;
  char db[64], ci[512];
  fresh_db(db, sizeof db, ci, sizeof ci);
  mig_thread t[3];
  uv_thread_t th[3];
  for (int i = 0; i < 3; i++) {
    t[i] = (mig_thread){ ci, -1, 0 };
    assert_int_equal(uv_thread_create(&th[i], run_migrate, &t[i]), 0);
  }
  for (int i = 0; i < 3; i++) uv_thread_join(&th[i]);
  for (int i = 0; i < 3; i++) assert_int_equal(t[i].rc, 0);
  assert_int_equal(t[0].applied + t[1].applied + t[2].applied, KOTTE_PG_SCHEMA_VERSION);
  drop_db(db);
}

static void a_failing_migration_leaves_nothing_half_applied(void **state) {
  (void)state;
  char dir[] = "/tmp/kotte-mig-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "mkdir -p %s/migrations %s/roles && cp %s/migrations/0001_*.sql %s/migrations/ && "
           "printf 'BEGIN;\\nCREATE TABLE kotte_half (id int);\\nSELECT nonsense_here;\\nCOMMIT;\\n' "
           "> %s/migrations/0003_broken.sql",
           dir, dir, SQL_DIR, dir, dir);
  assert_int_equal(system(cmd), 0);
  char db[64], ci[512];
  fresh_db(db, sizeof db, ci, sizeof ci);
  unsigned int applied = 0;
  assert_int_equal(kotte_pg_migrate(ci, dir, NULL, &applied), KOTTE_EDB);
  assert_non_null(strstr(kotte_error_detail(), "0003_broken.sql"));
  assert_non_null(strstr(kotte_error_detail(), "42703"));
  assert_int_equal(applied, 1);
  assert_int_equal(scalar_int(ci, "SELECT count(*) FROM pg_tables WHERE tablename = 'kotte_half'"), 0);
  assert_int_equal(scalar_int(ci, "SELECT max(version) FROM kotte_schema_migrations"), 1);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
  assert_int_equal(kotte_pg_migrate(ci, "/nonexistent/kotte-sql", NULL, NULL), KOTTE_EIO);
  drop_db(db);
}

/* Text of the first row's first column, on an open connection. */
static void scalar_text(PGconn *c, const char *sql, char *out, size_t n) {
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
  assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
  snprintf(out, n, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
  PQclear(r);
}

static void exec_ok(PGconn *c, const char *sql) {
  PGresult *r = PQexec(c, sql);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
  if (!ok) fprintf(stderr, "%.80s: %s", sql, PQerrorMessage(c));
  assert_true(ok);
  PQclear(r);
}

/* What 0003 must leave, whatever was there before. */
static void check_0003_schema(PGconn *c) {
  char v[256];
  scalar_text(c, "SELECT count(*) FROM pg_indexes WHERE tablename = 'kotte_sessions' AND "
                 "indexname = 'kotte_sessions_expires_at_idx'", v, sizeof v);
  assert_string_equal(v, "0"); /* slides change expires_at: no index may cover it */
  scalar_text(c, "SELECT indexdef FROM pg_indexes WHERE indexname = "
                 "'kotte_sessions_expires_bucket_idx'", v, sizeof v);
  assert_non_null(strstr(v, "(expires_bucket)"));
  scalar_text(c, "SELECT array_to_string(reloptions, ',') FROM pg_class WHERE relname = "
                 "'kotte_sessions'", v, sizeof v);
  assert_string_equal(v, "fillfactor=80");
  scalar_text(c, "SELECT attgenerated::text || attnotnull::text FROM pg_attribute WHERE attrelid = "
                 "'kotte_sessions'::regclass AND attname = 'expires_bucket'", v, sizeof v);
  assert_string_equal(v, "strue");
  scalar_text(c, "SELECT count(*) FROM kotte_sessions WHERE expires_bucket IS DISTINCT FROM "
                 "date_bin(interval '5 minutes', expires_at, timestamptz '2000-01-01 00:00:00+00') "
                 "OR expires_bucket > expires_at OR expires_at >= expires_bucket + interval '5 minutes'",
              v, sizeof v);
  assert_string_equal(v, "0");
  scalar_text(c, "SELECT name FROM kotte_schema_migrations WHERE version = 3", v, sizeof v);
  assert_string_equal(v, "0003_session_expiry_bucket");
}

#define SESSIONS_DIGEST                                                                         \
  "SELECT count(*) || ' ' || md5(string_agg(concat_ws('|', session_id, user_id, data, created_at, " \
  "last_activity, expires_at, max_expires_at, idle_timeout_seconds, token_sealed), ',' ORDER BY "  \
  "session_id)) FROM kotte_sessions"

/* 0003 applied to a database at 0002 that holds sessions: every row kept
 * as it was, each with its bucket, the table rewritten with room for HOT
 * updates; applying it again (by kotte_pg_migrate, or the file itself)
 * changes nothing. */
static void bucket_migration_on_a_populated_0002_database(void **state) {
  (void)state;
  char dir[] = "/tmp/kotte-mig-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "mkdir -p %s/migrations && cp %s/migrations/0001_*.sql %s/migrations/0002_*.sql %s/migrations/",
           dir, SQL_DIR, SQL_DIR, dir);
  assert_int_equal(system(cmd), 0);
  char db[64], ci[512];
  fresh_db(db, sizeof db, ci, sizeof ci);
  unsigned int applied = 0;
  assert_int_equal(kotte_pg_migrate(ci, dir, NULL, &applied), 0);
  assert_int_equal(applied, 2);

  PGconn *c = PQconnectdb(ci);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  exec_ok(c, "SET client_min_messages = warning");
  /* 2000 sessions, each expiring 60-259 s into its own 5-minute bucket */
  exec_ok(c, "INSERT INTO kotte_sessions (session_id, user_id, data, created_at, last_activity, "
             "expires_at, max_expires_at, idle_timeout_seconds, token_sealed) SELECT "
             "'row-' || lpad(g::text, 5, '0'), 'user-' || (g % 37), jsonb_build_object('csrf_token', "
             "md5(g::text), 'n', g), timestamptz '2030-01-01 00:00:00+00', "
             "timestamptz '2030-01-01 00:00:00+00', timestamptz '2030-01-01 00:01:00+00' + "
             "g * interval '5 minutes' + (g % 200) * interval '1 s' + interval '0.25 s', "
             "timestamptz '2031-01-01 00:00:00+00', 1800, decode(repeat(to_hex(g % 16), 168), 'hex') "
             "FROM generate_series(1, 2000) g");
  char before[128], after[128], pages0[32], pages1[32];
  scalar_text(c, SESSIONS_DIGEST, before, sizeof before);
  scalar_text(c, "SELECT pg_relation_size('kotte_sessions') / 8192", pages0, sizeof pages0);
  PQfinish(c);

  assert_int_equal(kotte_pg_migrate(ci, SQL_DIR, NULL, &applied), 0);
  assert_int_equal(applied, KOTTE_PG_SCHEMA_VERSION - 2); /* 0003 and what came after it */
  c = PQconnectdb(ci);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  check_0003_schema(c);
  scalar_text(c, SESSIONS_DIGEST, after, sizeof after);
  assert_string_equal(after, before);
  /* the rewrite left a fifth of every page free */
  scalar_text(c, "SELECT pg_relation_size('kotte_sessions') / 8192", pages1, sizeof pages1);
  printf("  2000 sessions: %s pages before 0003, %s after\n", pages0, pages1);
  assert_true(atoi(pages1) * 100 >= atoi(pages0) * 115);

  /* slides of the rows that were there before, each its own transaction
   * as the backend's are: HOT updates, in place on their pages */
  char upd0[64], upd1[64];
  exec_ok(c, "SELECT pg_stat_force_next_flush()"); /* flushed before the next query runs */
  scalar_text(c, "SELECT n_tup_upd || ' ' || n_tup_hot_upd FROM pg_stat_user_tables WHERE "
                 "relname = 'kotte_sessions'", upd0, sizeof upd0);
  for (int i = 1; i <= 1000; i++) {
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE kotte_sessions SET last_activity = last_activity + "
                              "interval '1 s', expires_at = expires_at + interval '1 s' WHERE "
                              "session_id = 'row-%05d'", i * 2);
    exec_ok(c, sql);
  }
  exec_ok(c, "SELECT pg_stat_force_next_flush()");
  scalar_text(c, "SELECT n_tup_upd || ' ' || n_tup_hot_upd FROM pg_stat_user_tables WHERE "
                 "relname = 'kotte_sessions'", upd1, sizeof upd1);
  long long u0, h0, u1, h1;
  assert_int_equal(sscanf(upd0, "%lld %lld", &u0, &h0), 2);
  assert_int_equal(sscanf(upd1, "%lld %lld", &u1, &h1), 2);
  printf("  1000 slides of migrated rows: %lld updates, %lld HOT\n", u1 - u0, h1 - h0);
  assert_int_equal(u1 - u0, 1000);
  assert_true((h1 - h0) * 100 >= (u1 - u0) * 98);
  check_0003_schema(c);
  scalar_text(c, SESSIONS_DIGEST, before, sizeof before);
  PQfinish(c);

  /* again: nothing to apply; the file itself, run once more as the owner,
   * changes nothing either */
  assert_int_equal(kotte_pg_migrate(ci, SQL_DIR, NULL, &applied), 0);
  assert_int_equal(applied, 0);
  char path[512];
  snprintf(path, sizeof path, "%s/migrations/0003_session_expiry_bucket.sql", SQL_DIR);
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  static char text[16384];
  size_t len = fread(text, 1, sizeof text - 1, fp);
  fclose(fp);
  assert_true(len < sizeof text - 1); /* read whole */
  text[len] = '\0';
  c = PQconnectdb(ci);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  exec_ok(c, "SET client_min_messages = warning");
  exec_ok(c, text);
  check_0003_schema(c);
  scalar_text(c, SESSIONS_DIGEST, after, sizeof after);
  assert_string_equal(after, before);
  assert_int_equal(scalar_int(ci, "SELECT count(*) FROM kotte_schema_migrations"),
                   KOTTE_PG_SCHEMA_VERSION);
  PQfinish(c);

  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
  drop_db(db);
}

static void connection_errors_never_show_the_password(void **state) {
  (void)state;
  char ci[512];
  snprintf(ci, sizeof ci, "host=127.0.0.1 port=1 user=kotte dbname=x password=hunter2-secret");
  assert_int_equal(kotte_pg_migrate(ci, SQL_DIR, NULL, NULL), KOTTE_EDB);
  assert_null(strstr(kotte_error_detail(), "hunter2"));
  assert_non_null(strstr(kotte_error_detail(), "cannot connect"));
}

/* ---- the schema check, and what a failing statement tells its caller ---- */

/* Runs @p sql on @p ci (the owner's conninfo). */
static void owner_exec(const char *ci, const char *sql) {
  PGconn *c = PQconnectdb(ci);
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) fail_msg("%s: %s", sql, PQerrorMessage(c));
  PQclear(r);
  PQfinish(c);
}

/* A runtime and a pool on @p ci (as the owner). */
static void open_pool(const char *ci, kotte_runtime **rt, kotte_pg_pool **pool) {
  assert_int_equal(kotte_runtime_new(rt, NULL), 0);
  kotte_pg_pool_options o = KOTTE_PG_POOL_OPTIONS_INIT;
  o.conninfo = ci;
  o.max_size = 2;
  assert_int_equal(kotte_pg_pool_open(pool, *rt, &o), 0);
}

static const unsigned char SECRET[] = "schema-check-session-secret";

/* Opening each store on @p pool: both refused with KOTTE_ESCHEMA and a
 * detail holding each of @p needles. */
static void stores_refused(kotte_runtime *rt, kotte_pg_pool *pool, const char *const *needles) {
  kotte_session_backend *be;
  kotte_session_store *st = NULL;
  assert_int_equal(kotte_session_backend_postgresql_new(&be, pool, SECRET, sizeof SECRET), 0);
  assert_int_equal(kotte_session_store_open(&st, rt, be, NULL), KOTTE_ESCHEMA);
  assert_null(st);
  for (const char *const *n = needles; *n; n++) {
    if (strstr(kotte_error_detail(), *n) == NULL) fail_msg("%s lacks %s", kotte_error_detail(), *n);
  }
  be->free(be); /* a refused open leaves the backend to its owner */
  kotte_cred_backend *cb;
  kotte_cred_store *cs = NULL;
  kotte_keyring *kr;
  assert_int_equal(kotte_keyring_new(&kr, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
                                     NULL), 0);
  assert_int_equal(kotte_cred_backend_postgresql_new(&cb, pool), 0);
  assert_int_equal(kotte_cred_store_open(&cs, rt, cb, kr, NULL), KOTTE_ESCHEMA);
  for (const char *const *n = needles; *n; n++) assert_non_null(strstr(kotte_error_detail(), *n));
  cb->free(cb);
  kotte_keyring_free(kr);
}

static void stores_refuse_a_database_without_or_with_an_older_schema(void **state) {
  (void)state;
  char db[64], ci[512], need[64], older[64];
  fresh_db(db, sizeof db, ci, sizeof ci);
  kotte_runtime *rt;
  kotte_pg_pool *pool;
  open_pool(ci, &rt, &pool);
  int version = 99;
  assert_int_equal(kotte_pg_schema_check_sync(pool, &version, -1), KOTTE_ESCHEMA);
  assert_int_equal(version, 0);
  snprintf(need, sizeof need, "version needed %d", KOTTE_PG_SCHEMA_VERSION);
  const char *missing[] = { "version found none", need, "kotte-migrate", NULL };
  stores_refused(rt, pool, missing);

  /* migrated, then its newest migration taken back: one version behind */
  assert_int_equal(kotte_pg_migrate(ci, SQL_DIR, NULL, NULL), 0);
  assert_int_equal(kotte_pg_schema_check_sync(pool, &version, -1), 0);
  assert_int_equal(version, KOTTE_PG_SCHEMA_VERSION);
  char sql[128];
  snprintf(sql, sizeof sql, "DELETE FROM kotte_schema_migrations WHERE version = %d",
           KOTTE_PG_SCHEMA_VERSION);
  owner_exec(ci, sql);
  assert_int_equal(kotte_pg_schema_check_sync(pool, &version, -1), KOTTE_ESCHEMA);
  assert_int_equal(version, KOTTE_PG_SCHEMA_VERSION - 1);
  snprintf(older, sizeof older, "at version %d", KOTTE_PG_SCHEMA_VERSION - 1);
  snprintf(need, sizeof need, "needs version %d", KOTTE_PG_SCHEMA_VERSION);
  const char *behind[] = { older, need, "kotte-migrate", NULL };
  stores_refused(rt, pool, behind);

  kotte_pg_pool_free(pool);
  kotte_runtime_free(rt);
  drop_db(db);
}

static void a_failed_statement_tells_its_sqlstate_message_and_hint(void **state) {
  (void)state;
  char db[64], ci[512];
  fresh_db(db, sizeof db, ci, sizeof ci);
  assert_int_equal(kotte_pg_migrate(ci, SQL_DIR, NULL, NULL), 0);
  kotte_runtime *rt;
  kotte_pg_pool *pool;
  open_pool(ci, &rt, &pool);
  kotte_session_backend *be;
  kotte_session_store *st;
  assert_int_equal(kotte_session_backend_postgresql_new(&be, pool, SECRET, sizeof SECRET), 0);
  assert_int_equal(kotte_session_store_open(&st, rt, be, NULL), 0);
  assert_string_equal(kotte_error_detail(), "");
  /* the table goes away under the running store (a restore, a careless DBA) */
  owner_exec(ci, "DROP TABLE kotte_sessions");
  kotte_session *s = NULL;
  assert_int_equal(kotte_session_create_sync(st, "alice", NULL, &s, -1), KOTTE_EDB);
  const char *d = kotte_error_detail();
  assert_non_null(strstr(d, "postgresql session backend: SQLSTATE 42P01: "));
  assert_non_null(strstr(d, "relation \"kotte_sessions\" does not exist"));
  assert_non_null(strstr(d, "; hint: "));
  assert_non_null(strstr(d, "kotte-migrate"));
  /* the next failure without a detail of its own shows none */
  assert_int_equal(kotte_session_get_sync(st, "not-a-token", &s, -1), KOTTE_EBADID);
  assert_string_equal(kotte_error_detail(), "");
  kotte_session_store_free(st);
  kotte_pg_pool_free(pool);
  kotte_runtime_free(rt);
  drop_db(db);
}

/* 0004 renames kotte_credentials' sealed columns to encrypted_username and
 * encrypted_password. A database of the 0003 layout holding rows sealed by
 * libkotte (made here by saving with this libkotte, then putting the table
 * back into 0003's shape): refused until migrated; migrated, every row is
 * there and opens to the same secrets. */
static void credential_rows_survive_the_column_rename(void **state) {
  (void)state;
  char db[64], ci[512];
  fresh_db(db, sizeof db, ci, sizeof ci);
  assert_int_equal(kotte_pg_migrate(ci, SQL_DIR, NULL, NULL), 0);
  kotte_runtime *rt;
  kotte_pg_pool *pool;
  open_pool(ci, &rt, &pool);
  kotte_keyring *kr;
  assert_int_equal(kotte_keyring_new(&kr, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
                                     NULL), 0);
  kotte_cred_backend *be;
  kotte_cred_store *cs;
  char ids[2][KOTTE_CRED_ID_LEN + 1];
  static const char *const users[2] = { "reader", "writer" }, *const pws[2] = { "pw-1-Ω", "pw-2" };
  assert_int_equal(kotte_cred_backend_postgresql_new(&be, pool), 0);
  assert_int_equal(kotte_cred_store_open(&cs, rt, be, kr, NULL), 0);
  for (int i = 0; i < 2; i++) {
    kotte_cred_input in = KOTTE_CRED_INPUT_INIT;
    in.name = users[i];
    in.host = "db1";
    in.port = 5432;
    in.database = "graphs";
    in.username = users[i];
    in.password = pws[i];
    kotte_cred *c;
    assert_int_equal(kotte_cred_save_sync(cs, "alice", &in, &c, -1), 0);
    memcpy(ids[i], kotte_cred_id(c), sizeof ids[i]);
    kotte_cred_free(c);
  }
  kotte_cred_store_free(cs);
  owner_exec(ci, "ALTER TABLE kotte_credentials RENAME encrypted_username TO username; "
                 "ALTER TABLE kotte_credentials RENAME encrypted_password TO password; "
                 "DELETE FROM kotte_schema_migrations WHERE version >= 4"); /* 0004's layout, and later ones undone on paper */
  assert_int_equal(kotte_cred_backend_postgresql_new(&be, pool), 0);
  assert_int_equal(kotte_cred_store_open(&cs, rt, be, kr, NULL), KOTTE_ESCHEMA);
  be->free(be);

  unsigned int applied = 0;
  assert_int_equal(kotte_pg_migrate(ci, SQL_DIR, NULL, &applied), 0);
  assert_int_equal(applied, KOTTE_PG_SCHEMA_VERSION - 3); /* 0004 and what came after it (idempotent) */
  assert_int_equal(scalar_int(ci, "SELECT count(*) FROM information_schema.columns WHERE table_name "
                                  "= 'kotte_credentials' AND column_name IN ('encrypted_username', "
                                  "'encrypted_password')"), 2);
  assert_int_equal(scalar_int(ci, "SELECT count(*) FROM information_schema.columns WHERE table_name "
                                  "= 'kotte_credentials' AND column_name IN ('username', 'password')"),
                   0);
  assert_int_equal(scalar_int(ci, "SELECT count(*) FROM kotte_credentials"), 2);
  assert_int_equal(kotte_pg_migrate(ci, SQL_DIR, NULL, &applied), 0); /* idempotent */
  assert_int_equal(applied, 0);
  assert_int_equal(kotte_cred_backend_postgresql_new(&be, pool), 0);
  assert_int_equal(kotte_cred_store_open(&cs, rt, be, kr, NULL), 0);
  for (int i = 0; i < 2; i++) {
    kotte_cred *c;
    assert_int_equal(kotte_cred_get_sync(cs, "alice", ids[i], &c, -1), 0);
    assert_string_equal(kotte_cred_username(c), users[i]);
    assert_string_equal(kotte_cred_password(c), pws[i]);
    kotte_cred_free(c);
  }
  kotte_cred_store_free(cs);
  kotte_keyring_free(kr);
  kotte_pg_pool_free(pool);
  kotte_runtime_free(rt);
  drop_db(db);
}

/* KOTTE_PG_SCHEMA_VERSION is the newest file of sql/migrations. */
static void the_needed_version_is_the_newest_migration(void **state) {
  (void)state;
  char cmd[512], out[32] = "";
  snprintf(cmd, sizeof cmd, "ls %s/migrations | sed -n 's/^0*\\([0-9][0-9]*\\)_.*/\\1/p' | "
           "sort -n | tail -1", SQL_DIR);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  assert_non_null(fgets(out, sizeof out, p));
  pclose(p);
  assert_int_equal(atoi(out), KOTTE_PG_SCHEMA_VERSION);
}

int main(void) {
  pg_conninfo_or_skip("test_pg_migrate");
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(applies_every_migration_once_then_nothing),
    cmocka_unit_test(concurrent_migrators_take_turns),
    cmocka_unit_test(a_failing_migration_leaves_nothing_half_applied),
    cmocka_unit_test(bucket_migration_on_a_populated_0002_database),
    cmocka_unit_test(connection_errors_never_show_the_password),
    cmocka_unit_test(stores_refuse_a_database_without_or_with_an_older_schema),
    cmocka_unit_test(a_failed_statement_tells_its_sqlstate_message_and_hint),
    cmocka_unit_test(the_needed_version_is_the_newest_migration),
    cmocka_unit_test(credential_rows_survive_the_column_rename),
  };
  return cmocka_run_group_tests_name("pg migrate", tests, NULL, NULL);
}
