/* The pool's LISTEN facility on real servers: notifications arrive after
 * "up" and never inline; a killed connection, a server restart and a
 * failover to a promoted standby each say "down", then "up" again once the
 * LISTEN is confirmed on the new connection, and notifications flow again;
 * kotte_pg_listener_is_current() sees what already reached the socket. */
#include <libpq-fe.h>
#include <stdlib.h>
#include <unistd.h>

#include "pg_servers.h"

static const char *conninfo;

typedef struct ears {
  int in_call; /* set while a libkotte call is on the stack */
  int inline_events;
  int ups, downs, notes;
  char channel[64], payload[256], reason[256];
  int pid;
} ears;

static void on_note(const char *channel, const char *payload, int pid, void *ud) {
  ears *e = ud;
  if (e->in_call) e->inline_events++;
  e->notes++;
  snprintf(e->channel, sizeof e->channel, "%s", channel);
  snprintf(e->payload, sizeof e->payload, "%s", payload);
  e->pid = pid;
}

static void on_state(int up, const char *reason, void *ud) {
  ears *e = ud;
  if (e->in_call) e->inline_events++;
  if (up) {
    assert_int_equal(e->ups, e->downs); /* up and down alternate, up first */
    e->ups++;
  } else {
    e->downs++;
    assert_int_equal(e->ups, e->downs);
    snprintf(e->reason, sizeof e->reason, "%s", reason);
  }
}

static void tick(uv_timer_t *t) { (void)t; }

/* Runs the loop until *counter >= n, at most @p ms (a referenced timer
 * paces it: the listener's own handles do not hold the loop). */
static int wait_count(uv_loop_t *loop, const int *counter, int n, unsigned int ms) {
  uv_timer_t t;
  uv_timer_init(loop, &t);
  uv_timer_start(&t, tick, 10, 10);
  uint64_t end = uv_now(loop) + ms;
  while (*counter < n && uv_now(loop) < end) uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  return *counter >= n;
}

typedef struct rig {
  uv_loop_t loop;
  kotte_pg_pool *pool;
  kotte_pg_listener *l;
  ears e;
} rig;

static void rig_open(rig *r, const char *ci) {
  memset(r, 0, sizeof *r);
  assert_int_equal(uv_loop_init(&r->loop), 0);
  kotte_pg_pool_options po = KOTTE_PG_POOL_OPTIONS_INIT;
  po.conninfo = ci;
  po.reconnect_max_ms = 500;
  po.connect_timeout_ms = 2000;
  assert_int_equal(kotte_pg_pool_new(&r->pool, &r->loop, &po), 0);
  static const char *const channels[] = { "kotte_test", "Kotte \"quoted\" channel" };
  kotte_pg_listener_options lo = KOTTE_PG_LISTENER_OPTIONS_INIT;
  lo.channels = channels;
  lo.n_channels = 2;
  lo.on_notify = on_note;
  lo.on_state = on_state;
  lo.userdata = &r->e;
  lo.ping_interval_ms = 200;
  lo.ping_timeout_ms = 1000;
  r->e.in_call = 1;
  assert_int_equal(kotte_pg_listener_new(&r->l, r->pool, &lo), 0);
  r->e.in_call = 0;
}

static void rig_close(rig *r) {
  kotte_pg_listener_free(r->l);
  kotte_pg_pool_free(r->pool);
  uv_run(&r->loop, UV_RUN_DEFAULT);
  assert_int_equal(r->e.inline_events, 0);
  assert_int_equal(uv_loop_close(&r->loop), 0);
}

static kotte_pg_listener_stats lstats(rig *r) {
  kotte_pg_listener_stats s = { .version = KOTTE_PG_LISTENER_STATS_VERSION };
  assert_int_equal(kotte_pg_listener_get_stats(r->l, &s), 0);
  return s;
}

/* NOTIFY through the pool (another connection); waits for the delivery. */
static void notify_and_hear(rig *r, const char *channel, const char *payload) {
  pg_call c;
  const char *v[2] = { channel, payload };
  int before = r->e.notes;
  assert_int_equal(pg_run(r->pool, &c, 0, 0, "SELECT pg_notify($1, $2)", 2, v), 0);
  assert_true(wait_count(&r->loop, &r->e.notes, before + 1, 5000));
  assert_string_equal(r->e.channel, channel);
  assert_string_equal(r->e.payload, payload);
}

static void notifications_arrive_after_up_and_never_inline(void **state) {
  (void)state;
  rig r;
  rig_open(&r, conninfo);
  assert_int_equal(kotte_pg_listener_is_current(r.l), 0); /* not up yet */
  assert_true(wait_count(&r.loop, &r.e.ups, 1, 5000));
  assert_int_equal(kotte_pg_listener_is_current(r.l), 1);
  notify_and_hear(&r, "kotte_test", "hello");
  notify_and_hear(&r, "Kotte \"quoted\" channel", "");
  assert_true(r.e.pid > 0); /* the notifying backend (the pool's connection) */
  /* a channel it does not listen on is not heard */
  pg_call c;
  assert_int_equal(pg_run(r.pool, &c, 0, 0, "SELECT pg_notify('other', 'x')", 0, NULL), 0);
  notify_and_hear(&r, "kotte_test", "after other");
  assert_int_equal(lstats(&r).notifications, 3);
  assert_int_equal(r.e.downs, 0);
  rig_close(&r);
}

static void is_current_sees_what_reached_the_socket(void **state) {
  (void)state;
  rig r;
  rig_open(&r, conninfo);
  assert_true(wait_count(&r.loop, &r.e.ups, 1, 5000));
  /* a NOTIFY from a connection of its own, while this loop does not run */
  PGconn *other = PQconnectdb(conninfo);
  assert_int_equal(PQstatus(other), CONNECTION_OK);
  PQclear(PQexec(other, "NOTIFY kotte_test, 'pending'"));
  PQfinish(other);
  usleep(200 * 1000); /* it reaches the listener's socket */
  r.e.in_call = 1;
  assert_int_equal(kotte_pg_listener_is_current(r.l), 0); /* read, queued, not delivered */
  r.e.in_call = 0;
  assert_int_equal(r.e.notes, 0);
  assert_true(wait_count(&r.loop, &r.e.notes, 1, 5000));
  assert_string_equal(r.e.payload, "pending");
  assert_int_equal(kotte_pg_listener_is_current(r.l), 1);
  rig_close(&r);
}

static void a_killed_connection_says_down_then_listens_again(void **state) {
  (void)state;
  rig r;
  rig_open(&r, conninfo);
  assert_true(wait_count(&r.loop, &r.e.ups, 1, 5000));
  char pid[16];
  snprintf(pid, sizeof pid, "%d", lstats(&r).backend_pid);
  assert_true(atoi(pid) > 0);
  pg_call c;
  const char *v[1] = { pid };
  assert_int_equal(pg_run(r.pool, &c, 0, 0, "SELECT pg_terminate_backend($1::int)", 1, v), 0);
  assert_string_equal(c.value, "t");
  assert_true(wait_count(&r.loop, &r.e.downs, 1, 5000));
  printf("  down: %s\n", r.e.reason);
  assert_int_equal(kotte_pg_listener_is_current(r.l), 0);
  assert_true(wait_count(&r.loop, &r.e.ups, 2, 5000));
  assert_int_not_equal(lstats(&r).backend_pid, atoi(pid));
  notify_and_hear(&r, "kotte_test", "after the kill");
  rig_close(&r);
}

static void a_bad_channel_or_version_is_refused(void **state) {
  (void)state;
  rig r;
  rig_open(&r, conninfo);
  kotte_pg_listener *l;
  kotte_pg_listener_options lo = KOTTE_PG_LISTENER_OPTIONS_INIT;
  assert_int_equal(kotte_pg_listener_new(&l, r.pool, &lo), KOTTE_EINVAL); /* no channel */
  static const char *const empty[] = { "" };
  lo.channels = empty;
  lo.n_channels = 1;
  assert_int_equal(kotte_pg_listener_new(&l, r.pool, &lo), KOTTE_EINVAL);
  static const char *const long_name[] = {
    "a234567890123456789012345678901234567890123456789012345678901234" };
  lo.channels = long_name;
  assert_int_equal(kotte_pg_listener_new(&l, r.pool, &lo), KOTTE_EINVAL);
  lo.version = 99;
  assert_int_equal(kotte_pg_listener_new(&l, r.pool, &lo), KOTTE_EVERSION);
  rig_close(&r);
}

static void free_in_cb(int up, const char *reason, void *ud) {
  (void)reason;
  rig *r = ud;
  if (up && r->l) {
    kotte_pg_listener_free(r->l);
    r->l = NULL;
    r->e.ups++;
  }
}

static void freeing_the_listener_in_its_callback_is_safe(void **state) {
  (void)state;
  rig r;
  rig_open(&r, conninfo);
  kotte_pg_listener_free(r.l);
  static const char *const channels[] = { "kotte_test" };
  kotte_pg_listener_options lo = KOTTE_PG_LISTENER_OPTIONS_INIT;
  lo.channels = channels;
  lo.n_channels = 1;
  lo.on_state = free_in_cb;
  lo.userdata = &r;
  assert_int_equal(kotte_pg_listener_new(&r.l, r.pool, &lo), 0);
  assert_true(wait_count(&r.loop, &r.e.ups, 1, 5000));
  assert_null(r.l);
  rig_close(&r);
}

/* A restart of the server: down, then up on the restarted server. */
static void a_server_restart_says_down_then_up(void **state) {
  (void)state;
  server s;
  server_start(&s, "start");
  char ci[512];
  snprintf(ci, sizeof ci, "host=127.0.0.1 port=%s dbname=kotte user=kotte_app", s.port);
  rig r;
  rig_open(&r, ci);
  assert_true(wait_count(&r.loop, &r.e.ups, 1, 5000));
  server_cmd("restart", &s, "fast");
  assert_true(wait_count(&r.loop, &r.e.downs, 1, 10000));
  assert_true(wait_count(&r.loop, &r.e.ups, 2, 15000));
  notify_and_hear(&r, "kotte_test", "after the restart");
  rig_close(&r);
  server_cmd("stop", &s, NULL);
}

/* Failover: the primary stops, the standby is promoted; the listener
 * (target_session_attrs=read-write over both hosts) says down, then up on
 * the new primary, where notifications reach it. */
static void a_failover_is_followed_to_the_promoted_standby(void **state) {
  (void)state;
  server p, sb;
  server_start(&p, "start");
  char args[512];
  snprintf(args, sizeof args, "start --standby-of %s", p.dir);
  server_start(&sb, args);
  char ci[512];
  snprintf(ci, sizeof ci, "host=127.0.0.1,127.0.0.1 port=%s,%s dbname=kotte user=kotte_app "
                          "target_session_attrs=read-write", p.port, sb.port);
  rig r;
  rig_open(&r, ci);
  assert_true(wait_count(&r.loop, &r.e.ups, 1, 5000));
  server_cmd("stop-server", &p, "fast");
  assert_true(wait_count(&r.loop, &r.e.downs, 1, 10000));
  server_cmd("promote", &sb, NULL);
  assert_true(wait_count(&r.loop, &r.e.ups, 2, 20000));
  notify_and_hear(&r, "kotte_test", "on the new primary");
  rig_close(&r);
  server_cmd("stop", &sb, NULL);
  server_cmd("stop", &p, NULL);
}

int main(void) {
  conninfo = pg_conninfo_or_skip("test_pg_listen");
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(notifications_arrive_after_up_and_never_inline),
    cmocka_unit_test(is_current_sees_what_reached_the_socket),
    cmocka_unit_test(a_killed_connection_says_down_then_listens_again),
    cmocka_unit_test(a_bad_channel_or_version_is_refused),
    cmocka_unit_test(freeing_the_listener_in_its_callback_is_safe),
    cmocka_unit_test(a_server_restart_says_down_then_up),
    cmocka_unit_test(a_failover_is_followed_to_the_promoted_standby),
  };
  return cmocka_run_group_tests_name("pg listener", tests, NULL, NULL);
}
