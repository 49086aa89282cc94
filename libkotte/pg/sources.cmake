list(APPEND KOTTE_SOURCES
  libkotte/pg/pg_conn.c
  libkotte/pg/pg_diag.c
  libkotte/pg/pg_hosts.c
  libkotte/pg/pg_listen.c
  libkotte/pg/pg_migrate.c
  libkotte/pg/pg_pool.c
  libkotte/pg/pg_report.c
  libkotte/pg/pg_schema.c)
