/*
 * kotte-migrate: brings a database up to date with libkotte's sql/ folder
 * (kotte_pg_migrate()): every migration not yet recorded in
 * kotte_schema_migrations, in order, then the grants of sql/roles/.
 * Run it as the database owner; it is safe to run from several places at
 * once (an advisory lock serialises them) and again and again.
 *
 *   kotte-migrate [--sql-dir DIR] [--extensions] [--no-roles] [CONNINFO]
 *
 * Without CONNINFO it connects with Kotte's variables DB_HOST, DB_PORT,
 * DB_NAME, DB_USER and DB_PASSWORD (the password goes to libpq through
 * PGPASSWORD, never into a conninfo string or a message); libpq's own PG*
 * variables work too. The SQL folder is --sql-dir, else $KOTTE_SQL_DIR,
 * else the installed share/kotte/sql, else the source tree's sql/. Exit
 * status 0 on success (also when another migrator did the work: it waits
 * for the advisory lock, then finds nothing to do), 1 on failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <kotte.h>
#include <kotte/pg.h>

static void progress(const char *line, void *ctx) {
  (void)ctx;
  printf("kotte-migrate: %s\n", line);
}

/* Appends key='value' with libpq's quoting. */
static int add(char *buf, size_t n, const char *key, const char *value) {
  if (value == NULL || *value == '\0') return 0;
  size_t len = strlen(buf);
  int w = snprintf(buf + len, n - len, "%s%s='", len ? " " : "", key);
  if (w < 0 || (size_t)w >= n - len) return -1;
  len += (size_t)w;
  for (const char *p = value; *p; p++) {
    if (len + 3 >= n) return -1;
    if (*p == '\'' || *p == '\\') buf[len++] = '\\';
    buf[len++] = *p;
  }
  buf[len++] = '\'';
  buf[len] = '\0';
  return 0;
}

int main(int argc, char **argv) {
  kotte_pg_migrate_options opts = KOTTE_PG_MIGRATE_OPTIONS_INIT;
  const char *sql_dir = getenv("KOTTE_SQL_DIR");
  const char *conninfo = NULL;
  opts.progress = progress;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--sql-dir") == 0 && i + 1 < argc) sql_dir = argv[++i];
    else if (strcmp(argv[i], "--extensions") == 0) opts.extensions = 1;
    else if (strcmp(argv[i], "--no-roles") == 0) opts.roles = 0;
    else if (argv[i][0] != '-' && conninfo == NULL) conninfo = argv[i];
    else {
      fprintf(stderr, "usage: %s [--sql-dir DIR] [--extensions] [--no-roles] [CONNINFO]\n", argv[0]);
      return 2;
    }
  }
  struct stat st;
  if ((sql_dir == NULL || *sql_dir == '\0') && stat(KOTTE_INSTALLED_SQL_DIR, &st) == 0)
    sql_dir = KOTTE_INSTALLED_SQL_DIR;
  if (sql_dir == NULL || *sql_dir == '\0') sql_dir = KOTTE_DEFAULT_SQL_DIR;
  char built[2048] = "";
  if (conninfo == NULL) {
    if (add(built, sizeof built, "host", getenv("DB_HOST")) != 0 ||
        add(built, sizeof built, "port", getenv("DB_PORT")) != 0 ||
        add(built, sizeof built, "dbname", getenv("DB_NAME")) != 0 ||
        add(built, sizeof built, "user", getenv("DB_USER")) != 0) {
      fprintf(stderr, "kotte-migrate: DB_* values too long\n");
      return 1;
    }
    const char *pw = getenv("DB_PASSWORD");
    if (pw && *pw) setenv("PGPASSWORD", pw, 1);
    conninfo = built;
  }
  unsigned int applied = 0;
  int rc = kotte_pg_migrate(conninfo, sql_dir, &opts, &applied);
  if (rc != 0) {
    fprintf(stderr, "kotte-migrate: %s: %s\n", kotte_strerror(rc), kotte_error_detail());
    return 1;
  }
  printf("kotte-migrate: done, %u migration(s) applied\n", applied);
  return 0;
}
