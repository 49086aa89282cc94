/* Prints the exact SQL the PostgreSQL session backend runs for a sliding
 * get and for an update (one statement a line), so that the benchmark
 * driver gives pgbench and asyncpg the very same statements. */
#include <stdio.h>

#include "session/backend_postgresql.c"

int main(void) {
  printf("%s\n%s\n", STMTS[S_GET_SLIDE].sql, STMTS[S_UPDATE].sql);
  return 0;
}
