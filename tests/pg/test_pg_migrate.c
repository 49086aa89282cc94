/* kotte_pg_migrate() against a real PostgreSQL: fresh databases created
 * through the superuser conninfo of tests/pg/pg.sh, migrated as the owner. */
#include <libpq-fe.h>
#include <unistd.h>

#include "pg_test_util.h"

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
  assert_int_equal(applied, 2);
  assert_int_equal(scalar_int(ci, "SELECT count(*) FROM kotte_schema_migrations"), 2);
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
  assert_int_equal(t[0].applied + t[1].applied + t[2].applied, 2);
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

static void connection_errors_never_show_the_password(void **state) {
  (void)state;
  char ci[512];
  snprintf(ci, sizeof ci, "host=127.0.0.1 port=1 user=kotte dbname=x password=hunter2-secret");
  assert_int_equal(kotte_pg_migrate(ci, SQL_DIR, NULL, NULL), KOTTE_EDB);
  assert_null(strstr(kotte_error_detail(), "hunter2"));
  assert_non_null(strstr(kotte_error_detail(), "cannot connect"));
}

int main(void) {
  pg_conninfo_or_skip("test_pg_migrate");
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(applies_every_migration_once_then_nothing),
    cmocka_unit_test(concurrent_migrators_take_turns),
    cmocka_unit_test(a_failing_migration_leaves_nothing_half_applied),
    cmocka_unit_test(connection_errors_never_show_the_password),
  };
  return cmocka_run_group_tests_name("pg migrate", tests, NULL, NULL);
}
