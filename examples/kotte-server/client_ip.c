/* The client's address: FORWARDED_ALLOW_IPS and X-Forwarded-For.
 *
 * Addresses are parsed and printed by libc's inet_pton()/inet_ntop(); what
 * is written here is only what they do not do: the "/prefix" of a network,
 * the prefix match (a byte compare and one masked byte), and the mapping
 * of ::ffff:a.b.c.d to IPv4. */
#include "client_ip.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void set_v6(ks_ip *out, const uint8_t b[16]) {
  memset(out, 0, sizeof *out);
  if (memcmp(b, v4_mapped, sizeof v4_mapped) == 0) {
    out->family = 4;
    memcpy(out->b, b + 12, 4);
  } else {
    out->family = 6;
    memcpy(out->b, b, 16);
  }
}

int ks_ip_parse(const char *s, size_t len, ks_ip *out) {
  char buf[64]; /* INET6_ADDRSTRLEN is 46 */
  if (len == 0 || len >= sizeof buf) return -1;
  memcpy(buf, s, len);
  buf[len] = '\0';
  uint8_t b[16];
  if (inet_pton(AF_INET, buf, b) == 1) {
    memset(out, 0, sizeof *out);
    out->family = 4;
    memcpy(out->b, b, 4);
    return 0;
  }
  if (inet_pton(AF_INET6, buf, b) == 1) {
    set_v6(out, b);
    return 0;
  }
  return -1;
}

int ks_ip_from_sockaddr(const struct sockaddr *sa, ks_ip *out) {
  memset(out, 0, sizeof *out);
  if (sa == NULL) return -1;
  if (sa->sa_family == AF_INET) {
    out->family = 4;
    memcpy(out->b, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    return 0;
  }
  if (sa->sa_family == AF_INET6) {
    set_v6(out, ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
    return 0;
  }
  return -1;
}

void ks_ip_format(const ks_ip *ip, char out[64]) {
  out[0] = '\0';
  if (ip->family == 4 || ip->family == 6)
    inet_ntop(ip->family == 4 ? AF_INET : AF_INET6, ip->b, out, 64);
}

/* 1 if the first @p prefix bits of @p a and @p b agree. */
static int prefix_equal(const uint8_t *a, const uint8_t *b, unsigned prefix) {
  unsigned whole = prefix / 8, rest = prefix % 8;
  if (memcmp(a, b, whole) != 0) return 0;
  if (rest == 0) return 1;
  uint8_t mask = (uint8_t)(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

int ks_trust_has(const ks_trust *t, const ks_ip *ip) {
  if (t->any) return 1;
  if (ip->family == 0) return 0;
  for (unsigned i = 0; i < t->n; i++)
    if (t->nets[i].ip.family == ip->family &&
        prefix_equal(t->nets[i].ip.b, ip->b, t->nets[i].prefix))
      return 1;
  return 0;
}

static int is_space(char c) { return c == ' ' || c == '\t'; }

/* Trims spaces and tabs (all a header value may hold) off [*s, *s + *n). */
static void trim(const char **s, size_t *n) {
  while (*n && is_space(**s)) (*s)++, (*n)--;
  while (*n && is_space((*s)[*n - 1])) (*n)--;
}

/* One FORWARDED_ALLOW_IPS entry: an address or address/prefix. */
static int parse_net(const char *s, size_t n, ks_net *out, char *err, size_t errlen) {
  const char *slash = memchr(s, '/', n);
  size_t alen = slash ? (size_t)(slash - s) : n;
  if (ks_ip_parse(s, alen, &out->ip) != 0) {
    snprintf(err, errlen,
             "FORWARDED_ALLOW_IPS: '%.*s' is not an IP address or network (address/prefix)",
             (int)(n > 80 ? 80 : n), s);
    return -1;
  }
  /* a mapped network (::ffff:a.b.c.d/n) is the IPv4 network it maps */
  int mapped = 0;
  if (out->ip.family == 4 && alen >= 2 && memchr(s, ':', alen)) mapped = 1;
  unsigned max = out->ip.family == 4 ? 32 : 128;
  if (slash == NULL) {
    out->prefix = max;
    return 0;
  }
  const char *p = slash + 1;
  size_t plen = n - alen - 1;
  unsigned v = 0;
  int ok = plen > 0 && plen <= 3;
  for (size_t i = 0; ok && i < plen; i++) {
    if (p[i] < '0' || p[i] > '9')
      ok = 0;
    else
      v = v * 10 + (unsigned)(p[i] - '0');
  }
  if (mapped) {
    if (v < 96) ok = 0;
    v -= 96;
  }
  if (!ok || v > max) {
    snprintf(err, errlen, "FORWARDED_ALLOW_IPS: '%.*s' has a bad prefix length (0 to %u)",
             (int)(n > 80 ? 80 : n), s, mapped ? 128 : max);
    return -1;
  }
  out->prefix = v;
  ks_ip masked = out->ip;
  for (unsigned bit = v; bit < max; bit++) masked.b[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
  if (memcmp(&masked, &out->ip, sizeof masked) != 0) {
    /* as Python's ip_network(): 10.0.0.1/8 is refused, not read as 10.0.0.0/8 */
    snprintf(err, errlen, "FORWARDED_ALLOW_IPS: '%.*s' has host bits set",
             (int)(n > 80 ? 80 : n), s);
    return -1;
  }
  return 0;
}

int ks_trust_parse(ks_trust *t, const char *spec, char *err, size_t errlen) {
  memset(t, 0, sizeof *t);
  if (spec == NULL) spec = "127.0.0.1";
  const char *s = spec;
  size_t n = strlen(spec);
  trim(&s, &n);
  if (n == 1 && s[0] == '*') {
    t->any = 1;
    return 0;
  }
  while (n > 0) {
    const char *comma = memchr(s, ',', n);
    size_t len = comma ? (size_t)(comma - s) : n;
    const char *e = s;
    size_t el = len;
    trim(&e, &el);
    if (el == 1 && e[0] == '*') {
      snprintf(err, errlen, "FORWARDED_ALLOW_IPS: '*' (trust every peer) must be the only entry");
      return -1;
    }
    if (el > 0) {
      if (t->n == KS_TRUST_MAX) {
        snprintf(err, errlen, "FORWARDED_ALLOW_IPS: at most %d entries", KS_TRUST_MAX);
        return -1;
      }
      if (parse_net(e, el, &t->nets[t->n], err, errlen) != 0) return -1;
      t->n++;
    }
    if (comma == NULL) break;
    s = comma + 1;
    n -= len + 1;
  }
  return 0;
}

static void set_entry(ks_client *out, const char *e, size_t n) {
  if (ks_ip_parse(e, n, &out->ip) == 0) {
    ks_ip_format(&out->ip, out->text);
  } else {
    /* not an address (uvicorn passes it on as the client's name) */
    memset(&out->ip, 0, sizeof out->ip);
    size_t k = n < sizeof out->text ? n : sizeof out->text - 1;
    memcpy(out->text, e, k);
    out->text[k] = '\0';
  }
  out->entry = e;
  out->entry_len = n;
}

void ks_client_resolve(ks_client *out, const ks_trust *t, const ks_ip *peer, const char *peer_text,
                       const char *xff, size_t xff_len) {
  out->ip = *peer;
  out->entry = NULL;
  out->entry_len = 0;
  size_t plen = strlen(peer_text);
  if (peer->family == 4 && memchr(peer_text, ':', plen)) {
    ks_ip_format(peer, out->text); /* ::ffff:a.b.c.d, logged as a.b.c.d */
  } else { /* every request: a copy, not snprintf */
    if (plen >= sizeof out->text) plen = sizeof out->text - 1;
    memcpy(out->text, peer_text, plen);
    out->text[plen] = '\0';
  }
  if (xff == NULL || !ks_trust_has(t, peer)) return;

  if (t->any) { /* the first entry, whatever the chain */
    const char *comma = memchr(xff, ',', xff_len);
    const char *e = xff;
    size_t n = comma ? (size_t)(comma - xff) : xff_len;
    trim(&e, &n);
    if (n > 0) set_entry(out, e, n);
    return;
  }
  /* from the right: the first hop that is not a trusted proxy */
  size_t end = xff_len;
  for (;;) {
    size_t start = end;
    while (start > 0 && xff[start - 1] != ',') start--;
    const char *e = xff + start;
    size_t n = end - start;
    trim(&e, &n);
    ks_ip ip;
    int trusted = n > 0 && ks_ip_parse(e, n, &ip) == 0 && ks_trust_has(t, &ip);
    if (!trusted) {
      if (n > 0) set_entry(out, e, n);
      return; /* an empty entry: uvicorn keeps the peer */
    }
    if (start == 0) break;
    end = start - 1;
  }
  /* every hop is a trusted proxy: the first one is the client */
  const char *comma = memchr(xff, ',', xff_len);
  const char *e = xff;
  size_t n = comma ? (size_t)(comma - xff) : xff_len;
  trim(&e, &n);
  if (n > 0) set_entry(out, e, n);
}
