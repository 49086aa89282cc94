/* kotte-server's client address (examples/kotte-server/client_ip.c):
 * FORWARDED_ALLOW_IPS read as uvicorn reads it (stricter: a bad entry is an
 * error), and the client chosen from X-Forwarded-For as uvicorn's
 * proxy-headers middleware chooses it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "client_ip.h"

/* ---- FORWARDED_ALLOW_IPS ---------------------------------------------- */

static int trust_err(const char *spec, const char *needle) {
  ks_trust t;
  char err[256] = "";
  int rc = ks_trust_parse(&t, spec, err, sizeof err);
  if (rc == 0) return 0;
  if (needle && strstr(err, needle) == NULL) fail_msg("'%s': message '%s' lacks '%s'", spec, err, needle);
  return 1;
}

static int trusted(const ks_trust *t, const char *ip) {
  ks_ip a;
  assert_int_equal(ks_ip_parse(ip, strlen(ip), &a), 0);
  return ks_trust_has(t, &a);
}

static void forwarded_allow_ips_is_parsed_as_uvicorn_does(void **state) {
  (void)state;
  ks_trust t;
  char err[256];
  assert_int_equal(ks_trust_parse(&t, NULL, err, sizeof err), 0); /* unset */
  assert_true(trusted(&t, "127.0.0.1"));
  assert_false(trusted(&t, "127.0.0.2"));
  assert_false(trusted(&t, "::1"));
  assert_int_equal(ks_trust_parse(&t, "", err, sizeof err), 0); /* set, empty: nobody */
  assert_false(trusted(&t, "127.0.0.1"));
  assert_int_equal(ks_trust_parse(&t, " * ", err, sizeof err), 0);
  assert_true(trusted(&t, "203.0.113.9"));
  assert_int_equal(ks_trust_parse(&t, "10.0.0.0/8, 192.0.2.7 ,::1,fd00::/8,", err, sizeof err), 0);
  assert_true(trusted(&t, "10.200.3.4"));
  assert_false(trusted(&t, "11.0.0.1"));
  assert_true(trusted(&t, "192.0.2.7"));
  assert_true(trusted(&t, "::1"));
  assert_true(trusted(&t, "fd12:3456::1"));
  assert_false(trusted(&t, "fe80::1"));
  assert_true(trusted(&t, "::ffff:10.1.1.1")); /* a mapped peer is its IPv4 address */
  assert_int_equal(ks_trust_parse(&t, "::ffff:10.0.0.0/104, 0.0.0.0/0", err, sizeof err), 0);
  assert_true(trusted(&t, "10.9.9.9"));
  assert_int_equal(t.nets[0].prefix, 8);

  assert_true(trust_err("10.0.0.1/8", "host bits"));
  assert_true(trust_err("10.0.0.0/33", "prefix"));
  assert_true(trust_err("fd00::/129", "prefix"));
  assert_true(trust_err("10.0.0.0/", "prefix"));
  assert_true(trust_err("10.0.0.0/x", "prefix"));
  assert_true(trust_err("300.1.1.1", "not an IP address"));
  assert_true(trust_err("localhost", "not an IP address"));
  assert_true(trust_err("[::1]", "not an IP address"));
  assert_true(trust_err("127.0.0.1, *", "only entry"));
  char many[2048] = "";
  for (int i = 0; i < 65; i++) snprintf(many + strlen(many), sizeof many - strlen(many), "10.0.0.%d,", i);
  assert_true(trust_err(many, "at most"));
}

/* ---- the client --------------------------------------------------------- */

static const char *client_of(const char *trust, const char *peer, const char *xff) {
  static ks_client c;
  ks_trust t;
  char err[256];
  assert_int_equal(ks_trust_parse(&t, trust, err, sizeof err), 0);
  ks_ip p;
  assert_int_equal(ks_ip_parse(peer, strlen(peer), &p), 0);
  ks_client_resolve(&c, &t, &p, peer, xff, xff ? strlen(xff) : 0);
  return c.text;
}

static void x_forwarded_for_only_from_a_trusted_peer(void **state) {
  (void)state;
  /* an untrusted peer's header is ignored */
  assert_string_equal(client_of(NULL, "192.0.2.50", "203.0.113.9"), "192.0.2.50");
  assert_string_equal(client_of("", "127.0.0.1", "203.0.113.9"), "127.0.0.1");
  /* a trusted one: walking from the right, the first hop that is not a trusted proxy */
  assert_string_equal(client_of(NULL, "127.0.0.1", "203.0.113.9"), "203.0.113.9");
  assert_string_equal(client_of(NULL, "127.0.0.1", "198.51.100.1, 203.0.113.9"), "203.0.113.9");
  assert_string_equal(client_of("127.0.0.1,10.0.0.0/8", "127.0.0.1", "198.51.100.1,10.1.1.1 , 10.2.2.2"),
                      "198.51.100.1");
  /* every hop trusted: the first */
  assert_string_equal(client_of("127.0.0.1,10.0.0.0/8", "127.0.0.1", "10.1.1.1, 10.2.2.2"), "10.1.1.1");
  /* "*": the first entry, whatever follows */
  assert_string_equal(client_of("*", "192.0.2.50", "198.51.100.1, 203.0.113.9"), "198.51.100.1");
  /* no header, an empty header, an empty last entry: the peer */
  assert_string_equal(client_of(NULL, "127.0.0.1", NULL), "127.0.0.1");
  assert_string_equal(client_of(NULL, "127.0.0.1", ""), "127.0.0.1");
  assert_string_equal(client_of(NULL, "127.0.0.1", "203.0.113.9,"), "127.0.0.1");
  /* IPv6, canonical; a name that is no address is passed on as sent */
  assert_string_equal(client_of(NULL, "127.0.0.1", "2001:DB8:0::1"), "2001:db8::1");
  assert_string_equal(client_of(NULL, "127.0.0.1", "unknown"), "unknown");
  /* a mapped peer is logged as IPv4 */
  assert_string_equal(client_of(NULL, "::ffff:192.0.2.1", NULL), "192.0.2.1");
  assert_string_equal(client_of("::1", "::1", "2001:db8::7"), "2001:db8::7");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(forwarded_allow_ips_is_parsed_as_uvicorn_does),
      cmocka_unit_test(x_forwarded_for_only_from_a_trusted_peer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
