/* kotte-server's rate-limit table (examples/kotte-server/ratelimit.c), with
 * a clock the test moves: the sliding window, refusals not counted, taking
 * a count back, the key cap, idle keys freed, IPv6 prefixes. The server
 * around it is tested over HTTP by ratelimit.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "client_ip.h"
#include "ratelimit.h"

#define S(sec) ((uint64_t)(sec) * 1000) /* ms of a whole second */

static ks_rl_key key_of(const char *ip) {
  ks_ip a;
  assert_int_equal(ks_ip_parse(ip, strlen(ip), &a), 0);
  ks_rl_key k;
  ks_rl_key_ip(&k, &a, 64);
  return k;
}

static int hit(ks_rl *rl, const char *ip, uint64_t ms, ks_rl_verdict *v) {
  ks_rl_key k = key_of(ip);
  ks_rl_hit(rl, &k, ms, v);
  return v->admitted;
}

static void admits_the_limit_then_refuses(void **state) {
  (void)state;
  ks_rl *rl;
  assert_int_equal(ks_rl_new(&rl, 3, 100), 0);
  ks_rl_verdict v;
  for (unsigned i = 1; i <= 3; i++) {
    assert_true(hit(rl, "192.0.2.1", S(1000), &v));
    assert_int_equal(v.count, i);
  }
  assert_false(hit(rl, "192.0.2.1", S(1000), &v));
  assert_int_equal(v.count, 3);
  assert_int_equal(v.retry_after, 61); /* counted through second 1060 */
  assert_true(v.log);                   /* the first refusal is logged */
  assert_false(hit(rl, "192.0.2.1", S(1000) + 500, &v));
  assert_false(v.log);
  assert_false(hit(rl, "192.0.2.1", S(1030), &v));
  assert_false(v.log);
  assert_int_equal(v.retry_after, 31);
  /* another client is not affected */
  assert_true(hit(rl, "192.0.2.2", S(1000), &v));
  assert_int_equal(v.count, 1);
  /* a minute after the last logged refusal the next one is logged again,
   * with the number left out */
  assert_false(hit(rl, "192.0.2.1", S(1060), &v));
  assert_true(v.log);
  assert_int_equal(v.suppressed, 2);
  ks_rl_free(rl);
}

static void window_slides_over_sixty_seconds(void **state) {
  (void)state;
  ks_rl *rl;
  assert_int_equal(ks_rl_new(&rl, 2, 100), 0);
  ks_rl_verdict v;
  assert_true(hit(rl, "192.0.2.1", S(100) + 999, &v)); /* late in second 100 */
  assert_true(hit(rl, "192.0.2.1", S(130), &v));
  assert_false(hit(rl, "192.0.2.1", S(130), &v));
  assert_int_equal(v.retry_after, 31);
  /* 60 s after the first: still counted (never earlier than Kotte) */
  assert_false(hit(rl, "192.0.2.1", S(160) + 999, &v));
  /* the second it leaves: one more, and only one (the one of 130 stays) */
  assert_true(hit(rl, "192.0.2.1", S(161), &v));
  assert_int_equal(v.count, 2);
  assert_false(hit(rl, "192.0.2.1", S(161), &v));
  assert_int_equal(v.retry_after, 30);
  assert_true(hit(rl, "192.0.2.1", S(191), &v));
  ks_rl_free(rl);
}

static void refused_requests_are_not_counted(void **state) {
  (void)state;
  ks_rl *rl;
  assert_int_equal(ks_rl_new(&rl, 1, 100), 0);
  ks_rl_verdict v;
  assert_true(hit(rl, "192.0.2.1", S(100), &v));
  for (int i = 0; i < 1000; i++) assert_false(hit(rl, "192.0.2.1", S(100) + (uint64_t)i * 60, &v));
  assert_true(hit(rl, "192.0.2.1", S(161), &v)); /* 1000 refusals did not extend it */
  ks_rl_free(rl);
}

static void undo_takes_a_count_back(void **state) {
  (void)state;
  ks_rl *rl;
  assert_int_equal(ks_rl_new(&rl, 1, 100), 0);
  ks_rl_key k = key_of("192.0.2.1");
  ks_rl_verdict v;
  ks_rl_hit(rl, &k, S(100), &v);
  assert_true(v.admitted);
  ks_rl_undo(rl, &k, v.sec);
  ks_rl_hit(rl, &k, S(101), &v);
  assert_true(v.admitted);
  assert_int_equal(v.count, 1);
  /* a count that left the window, or a key that is gone: nothing happens */
  ks_rl_undo(rl, &k, 0);
  ks_rl_key other = key_of("192.0.2.9");
  ks_rl_undo(rl, &other, v.sec);
  ks_rl_hit(rl, &k, S(101), &v);
  assert_false(v.admitted);
  ks_rl_free(rl);
}

static void at_the_cap_the_least_recent_key_goes(void **state) {
  (void)state;
  ks_rl *rl;
  assert_int_equal(ks_rl_new(&rl, 2, 2), 0);
  ks_rl_verdict v;
  ks_rl_stats st;
  assert_true(hit(rl, "192.0.2.1", S(100), &v));
  assert_true(hit(rl, "192.0.2.1", S(100), &v)); /* A is at its limit */
  assert_true(hit(rl, "192.0.2.2", S(101), &v)); /* B */
  assert_false(hit(rl, "192.0.2.1", S(102), &v)); /* A again: refused, and now the most recent */
  assert_true(hit(rl, "192.0.2.3", S(103), &v));  /* C takes B's place, not A's */
  ks_rl_get_stats(rl, &st);
  assert_int_equal(st.keys, 2);
  assert_int_equal(st.evictions, 1);
  assert_false(hit(rl, "192.0.2.1", S(104), &v)); /* A kept its count */
  /* a client that keeps sending cannot be pushed out by fewer than
   * max_keys others in between: here B returns, C goes, A stays */
  assert_true(hit(rl, "192.0.2.2", S(105), &v));
  assert_int_equal(v.count, 1); /* B was forgotten */
  assert_false(hit(rl, "192.0.2.1", S(106), &v));
  ks_rl_free(rl);
}

static void memory_stays_bounded(void **state) {
  (void)state;
  ks_rl *rl;
  assert_int_equal(ks_rl_new(&rl, 60, 1000), 0);
  ks_rl_verdict v;
  ks_rl_stats st;
  ks_ip a = {.family = 6};
  for (uint32_t i = 0; i < 200000; i++) { /* 200,000 /64s in one second */
    memcpy(a.b, &i, sizeof i);
    ks_rl_key k;
    ks_rl_key_ip(&k, &a, 64);
    ks_rl_hit(rl, &k, S(100), &v);
    assert_true(v.admitted);
  }
  ks_rl_get_stats(rl, &st);
  assert_int_equal(st.keys, 1000);
  assert_int_equal(st.evictions, 199000);
  /* a minute later idle keys are freed as requests come */
  for (int i = 0; i < 300; i++) hit(rl, "192.0.2.1", S(162), &v);
  ks_rl_get_stats(rl, &st);
  assert_int_equal(st.keys, 1);
  ks_rl_free(rl);
}

static void ipv6_keys_are_per_prefix(void **state) {
  (void)state;
  ks_rl_key a = key_of("2001:db8::1"), b = key_of("2001:db8::ffff:2"),
            c = key_of("2001:db8:0:1::1");
  assert_memory_equal(a.b, b.b, KS_RL_KEY_LEN); /* one /64 */
  assert_memory_not_equal(a.b, c.b, KS_RL_KEY_LEN);
  ks_ip x, y;
  ks_rl_key kx, ky;
  assert_int_equal(ks_ip_parse("2001:db8::1", 11, &x), 0);
  assert_int_equal(ks_ip_parse("2001:db8::2", 11, &y), 0);
  ks_rl_key_ip(&kx, &x, 128);
  ks_rl_key_ip(&ky, &y, 128);
  assert_memory_not_equal(kx.b, ky.b, KS_RL_KEY_LEN);
  ks_rl_key_ip(&kx, &x, 60); /* a prefix that cuts a byte */
  assert_int_equal(ks_ip_parse("2001:db8:0:f::", 14, &y), 0);
  ks_rl_key_ip(&ky, &y, 60);
  assert_memory_equal(kx.b, ky.b, KS_RL_KEY_LEN);
  /* an IPv4 client is the same key whether the socket says 192.0.2.1 or
   * ::ffff:192.0.2.1 */
  ks_rl_key m = key_of("::ffff:192.0.2.1"), p = key_of("192.0.2.1");
  assert_memory_equal(m.b, p.b, KS_RL_KEY_LEN);
  /* names are digests under their own tag */
  ks_rl_key u, n;
  ks_rl_key_name(&u, 'u', "admin", 5);
  ks_rl_key_name(&n, 'n', "admin", 5);
  assert_memory_not_equal(u.b, n.b, KS_RL_KEY_LEN);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(admits_the_limit_then_refuses),
      cmocka_unit_test(window_slides_over_sixty_seconds),
      cmocka_unit_test(refused_requests_are_not_counted),
      cmocka_unit_test(undo_takes_a_count_back),
      cmocka_unit_test(at_the_cap_the_least_recent_key_goes),
      cmocka_unit_test(memory_stays_bounded),
      cmocka_unit_test(ipv6_keys_are_per_prefix),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
