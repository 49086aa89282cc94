/* Failed statements of the PostgreSQL backends, explained (pg_diag.h). */
#include "pg/pg_diag.h"

#include <libpq-fe.h>
#include <string.h>

#include "core/internal.h"

/* A kotte_pg_result is the libpq result (pg_pool.c). */
#define RES(r) ((const PGresult *)(r))

static int starts(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

const char *kotte__pg_hint(const char *code) {
  static const struct {
    const char *code; /* a SQLSTATE, or a class ("08") */
    const char *hint;
  } hints[] = {
    { "42P01", "the database lacks a table this libkotte needs: " KOTTE__PG_MIGRATE_HINT },
    { "42703", "the database lacks a column this libkotte needs: " KOTTE__PG_MIGRATE_HINT },
    { "42883", "the database lacks a function this libkotte needs: " KOTTE__PG_MIGRATE_HINT },
    { "42501", "the application role lacks a privilege: re-apply sql/roles/app_role.sql as "
               "the database owner (kotte-migrate does)" },
    { "28P01", "password authentication failed: check DB_USER and DB_PASSWORD" },
    { "28000", "the server refused this role: check DB_USER and pg_hba.conf" },
    { "3D000", "the database does not exist: check DB_NAME" },
    { "53300", "the server has no connection slot left: lower DB_POOL_MAX_SIZE or raise "
               "max_connections" },
    { "25006", "the server is a read-only standby: point DB_HOST at the primary (the -rw "
               "service on CloudNativePG)" },
    { "57014", "the statement was canceled (statement_timeout or an operator): retry" },
    { "40001", "a concurrent transaction conflicted: retry" },
    { "40P01", "a deadlock was broken: retry" },
    { "22021", "a value is not valid UTF-8" },
    { "54000", "a value is larger than PostgreSQL allows" },
    { "57P", "the server is shutting down or restarting: the pool reconnects; retry" },
    { "08", "the connection to PostgreSQL failed: check that it is up and DB_HOST/DB_PORT; the "
            "pool reconnects" },
    { "53", "the server is out of resources (disk, memory): see its log" },
  };
  for (size_t i = 0; i < sizeof hints / sizeof hints[0]; i++)
    if (starts(code, hints[i].code)) return hints[i].hint;
  return "see the PostgreSQL server log for this SQLSTATE";
}

int kotte__pg_fail(int status, const char *who, const kotte_pg_result *res) {
  if (status == KOTTE_EPOOLTIMEOUT) {
    char pool[256];
    snprintf(pool, sizeof pool, "%s", kotte__detail_for(status));
    return kotte__fail(status, "%s: %s; hint: is PostgreSQL up, and are DB_HOST, DB_PORT, "
                               "DB_USER and DB_PASSWORD right? the pool logs why it cannot "
                               "connect", who, pool[0] ? pool : "no connection in time");
  }
  if (status != KOTTE_EDB) return status;
  const char *code = res ? PQresultErrorField(RES(res), PG_DIAG_SQLSTATE) : NULL;
  if (code == NULL || code[0] == '\0')
    return kotte__fail(status, "%s: the connection to PostgreSQL was lost; hint: the pool "
                               "reconnects; retry", who);
  /* PostgreSQL's primary message and hint only: its DETAIL and CONTEXT
   * can quote the row's values (session data, names). */
  const char *msg = PQresultErrorField(RES(res), PG_DIAG_MESSAGE_PRIMARY);
  const char *hint = PQresultErrorField(RES(res), PG_DIAG_MESSAGE_HINT);
  return kotte__fail(status, "%s: SQLSTATE %s: %s; hint: %s", who, code,
                     msg && *msg ? msg : "(no message)", hint && *hint ? hint : kotte__pg_hint(code));
}
