/* Prints the exact SQL the PostgreSQL session backend runs for a sliding
 * get, for an update and for a get inside the touch interval (one
 * statement a line), so that the benchmark drivers give pgbench and
 * asyncpg the very same statements. */
#include <stdio.h>

#include "session/backend_postgresql.c"

int main(void) {
  printf("%s\n%s\n%s\n", STMTS[S_GET_SLIDE].sql, STMTS[S_UPDATE].sql, STMTS[S_GET].sql);
  return 0;
}
