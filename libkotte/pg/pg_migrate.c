/* Migrations: the files of sql/ applied in order over one blocking libpq
 * connection, under an advisory lock so that concurrent migrators (two
 * replicas starting at once, a Job and a test) take turns. Each migration
 * file is one transaction that records itself in kotte_schema_migrations;
 * files already recorded are skipped. */
#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "kotte/pg.h"

#define MIGRATE_LOCK_KEY "7725748207127331586"

typedef struct file_list {
  char **names;
  size_t n, cap;
} file_list;

static void files_free(file_list *l) {
  for (size_t i = 0; i < l->n; i++) kotte__free(l->names[i]);
  kotte__free(l->names);
  memset(l, 0, sizeof *l);
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.sql files of @p dir, sorted. A missing folder is an empty list
 * when @p optional. */
static int list_sql(const char *dir, int optional, file_list *out) {
  memset(out, 0, sizeof *out);
  DIR *d = opendir(dir);
  if (d == NULL) {
    if (optional && errno == ENOENT) return 0;
    return kotte__fail(KOTTE_EIO, "kotte_pg_migrate: cannot read folder %s", dir);
  }
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t len = strlen(e->d_name);
    if (len < 5 || strcmp(e->d_name + len - 4, ".sql") != 0 || e->d_name[0] == '.') continue;
    if (out->n == out->cap) {
      size_t cap = out->cap ? out->cap * 2 : 8;
      char **n = kotte__realloc(out->names, cap * sizeof *n);
      if (n == NULL) {
        closedir(d);
        files_free(out);
        return KOTTE_ENOMEM;
      }
      out->names = n;
      out->cap = cap;
    }
    if ((out->names[out->n] = kotte__strdup(e->d_name)) == NULL) {
      closedir(d);
      files_free(out);
      return KOTTE_ENOMEM;
    }
    out->n++;
  }
  closedir(d);
  if (out->n) qsort(out->names, out->n, sizeof *out->names, by_name);
  return 0;
}

static int read_file(const char *path, char **out) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (f == NULL) return kotte__fail(KOTTE_EIO, "kotte_pg_migrate: cannot open %s", path);
  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (cap - len < 4096) {
      cap = cap ? cap * 2 : 16384;
      char *n = kotte__realloc(buf, cap);
      if (n == NULL) {
        kotte__free(buf);
        fclose(f);
        return KOTTE_ENOMEM;
      }
      buf = n;
    }
    size_t got = fread(buf + len, 1, cap - len - 1, f);
    len += got;
    if (got == 0) break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    kotte__free(buf);
    return kotte__fail(KOTTE_EIO, "kotte_pg_migrate: cannot read %s", path);
  }
  buf[len] = '\0';
  *out = buf;
  return 0;
}

typedef struct mig {
  PGconn *pg;
  const kotte_pg_migrate_options *opts;
} mig;

static void say(mig *m, const char *fmt, const char *a, const char *b) {
  if (m->opts->progress == NULL) return;
  char line[512];
  snprintf(line, sizeof line, fmt, a, b);
  m->opts->progress(line, m->opts->progress_ctx);
}

/* Runs SQL text (several statements allowed). On error: KOTTE_EDB naming
 * @p what and the SQLSTATE; the server's message is about our own DDL. */
static int exec_sql(mig *m, const char *sql, const char *what) {
  PGresult *r = PQexec(m->pg, sql);
  ExecStatusType st = PQresultStatus(r);
  int rc = 0;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
    const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    rc = kotte__fail(KOTTE_EDB, "kotte_pg_migrate: %s failed: SQLSTATE %s: %s", what,
                     code ? code : "?", msg ? msg : "connection lost");
  }
  PQclear(r);
  if (rc != 0 && PQtransactionStatus(m->pg) == PQTRANS_INERROR) PQclear(PQexec(m->pg, "ROLLBACK"));
  return rc;
}

/* 1 if @p sql's first query returns a row whose first column is "t" or "1". */
static int query_true(mig *m, const char *sql, const char *param) {
  const char *values[1] = { param };
  PGresult *r = PQexecParams(m->pg, sql, param ? 1 : 0, NULL, values, NULL, NULL, 0);
  int yes = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 &&
            (strcmp(PQgetvalue(r, 0, 0), "t") == 0 || strcmp(PQgetvalue(r, 0, 0), "1") == 0);
  PQclear(r);
  return yes;
}

/* The extension a file creates ("CREATE EXTENSION IF NOT EXISTS age"), or "". */
static void extension_of(const char *sql, char *name, size_t n) {
  name[0] = '\0';
  const char *p = strstr(sql, "CREATE EXTENSION");
  if (p == NULL) return;
  p += strlen("CREATE EXTENSION");
  while (*p == ' ') p++;
  if (strncmp(p, "IF NOT EXISTS", 13) == 0) p += 13;
  while (*p == ' ') p++;
  size_t i = 0;
  while (p[i] && (p[i] == '_' || (p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9')) &&
         i + 1 < n) {
    name[i] = p[i];
    i++;
  }
  name[i] = '\0';
}

static int apply_folder(mig *m, const char *sql_dir, const char *sub, int migrations,
                        unsigned int *applied) {
  char dir[4096], path[4096 + 256];
  snprintf(dir, sizeof dir, "%s/%s", sql_dir, sub);
  file_list files;
  int rc = list_sql(dir, !migrations, &files);
  if (rc != 0) return rc;
  for (size_t i = 0; rc == 0 && i < files.n; i++) {
    const char *name = files.names[i];
    snprintf(path, sizeof path, "%s/%.255s", dir, name);
    char version[16] = "";
    if (migrations) {
      size_t k = 0;
      while (name[k] >= '0' && name[k] <= '9' && k < 9) {
        version[k] = name[k];
        k++;
      }
      version[k] = '\0';
      if (k == 0 || name[k] != '_') {
        rc = kotte__fail(KOTTE_EINVAL, "kotte_pg_migrate: %s is not named NNNN_name.sql", name);
        break;
      }
      if (query_true(m, "SELECT to_regclass('kotte_schema_migrations') IS NOT NULL", NULL) &&
          query_true(m, "SELECT count(*) FROM kotte_schema_migrations WHERE version = $1::int",
                     version)) {
        say(m, "%s/%s: already applied", sub, name);
        continue;
      }
    }
    char *sql;
    if ((rc = read_file(path, &sql)) != 0) break;
    if (!migrations && strcmp(sub, "extensions") == 0) {
      char ext[64];
      extension_of(sql, ext, sizeof ext);
      if (ext[0] && !query_true(m, "SELECT count(*) FROM pg_available_extensions WHERE name = $1",
                                ext)) {
        say(m, "%s/%s: skipped (extension not installed here)", sub, name);
        kotte__free(sql);
        continue;
      }
    }
    char what[300];
    snprintf(what, sizeof what, "%.40s/%.200s", sub, name);
    rc = exec_sql(m, sql, what);
    kotte__free(sql);
    if (rc != 0) break;
    if (migrations) {
      if (!query_true(m, "SELECT count(*) FROM kotte_schema_migrations WHERE version = $1::int",
                      version)) {
        rc = kotte__fail(KOTTE_EDB, "kotte_pg_migrate: %s did not record version %s in "
                                    "kotte_schema_migrations", what, version);
        break;
      }
      if (applied) (*applied)++;
    }
    say(m, "%s/%s: applied", sub, name);
  }
  files_free(&files);
  return rc;
}

int kotte_pg_migrate(const char *conninfo, const char *sql_dir, const kotte_pg_migrate_options *opts,
                     unsigned int *applied) {
  kotte__clear_detail();
  kotte_pg_migrate_options defaults = KOTTE_PG_MIGRATE_OPTIONS_INIT;
  if (applied) *applied = 0;
  if (conninfo == NULL || sql_dir == NULL) return KOTTE_EINVAL;
  if (opts == NULL) opts = &defaults;
  if (opts->version != KOTTE_PG_MIGRATE_OPTIONS_VERSION) return KOTTE_EVERSION;
  mig m = { PQconnectdb(conninfo), opts };
  if (m.pg == NULL) return KOTTE_ENOMEM;
  if (PQstatus(m.pg) != CONNECTION_OK) {
    /* libpq names host, port and user here, never the password */
    const char *msg = PQerrorMessage(m.pg);
    char line[300];
    size_t i = 0;
    while (msg[i] && msg[i] != '\n' && i + 1 < sizeof line) {
      line[i] = msg[i];
      i++;
    }
    line[i] = '\0';
    PQfinish(m.pg);
    return kotte__fail(KOTTE_EDB, "kotte_pg_migrate: cannot connect: %s", line);
  }
  int rc = exec_sql(&m, "SET client_min_messages = warning", "set up");
  if (rc == 0) rc = exec_sql(&m, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", "lock");
  if (rc == 0 && opts->extensions) rc = apply_folder(&m, sql_dir, "extensions", 0, NULL);
  if (rc == 0) rc = apply_folder(&m, sql_dir, "migrations", 1, applied);
  if (rc == 0 && opts->roles) rc = apply_folder(&m, sql_dir, "roles", 0, NULL);
  PQclear(PQexec(m.pg, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")"));
  PQfinish(m.pg);
  return rc;
}
