/* kotte-server: who the client is. The TCP peer, or, when the peer is one of
 * FORWARDED_ALLOW_IPS (a proxy we trust), the address its X-Forwarded-For
 * names, chosen as uvicorn's proxy-headers middleware chooses it; so the
 * rate limits and the logs see what Kotte behind uvicorn sees. */
#ifndef KS_CLIENT_IP_H
#define KS_CLIENT_IP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* An IP address. IPv4 sits in b[0..3]; an IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d, what a dual-stack socket reports for an IPv4 peer) is
 * stored as the IPv4 address it maps. */
typedef struct ks_ip {
  uint8_t family; /* 0: none, 4 or 6 */
  uint8_t b[16];
} ks_ip;

typedef struct ks_net {
  ks_ip ip; /* host bits zero */
  unsigned prefix;
} ks_net;

#define KS_TRUST_MAX 64

/* FORWARDED_ALLOW_IPS: addresses and networks, or "*" for every peer. */
typedef struct ks_trust {
  int any;
  unsigned n;
  ks_net nets[KS_TRUST_MAX];
} ks_trust;

/* Parses an IPv4 or IPv6 address of @p len bytes (no brackets, no port).
 * 0, or -1 if it is not one. */
int ks_ip_parse(const char *s, size_t len, ks_ip *out);

/* The address of an AF_INET or AF_INET6 sockaddr; -1 for anything else. */
int ks_ip_from_sockaddr(const struct sockaddr *sa, ks_ip *out);

/* Canonical text ("192.0.2.1", "2001:db8::1"). */
void ks_ip_format(const ks_ip *ip, char out[64]);

/* Parses FORWARDED_ALLOW_IPS: "*", or comma-separated addresses and
 * networks (address/prefix, host bits zero). @p spec NULL means unset:
 * "127.0.0.1", uvicorn's default; "" trusts no peer, as in uvicorn. On a
 * bad entry writes a message into @p err and returns -1. */
int ks_trust_parse(ks_trust *t, const char *spec, char *err, size_t errlen);

/* 1 if @p ip is in @p t. */
int ks_trust_has(const ks_trust *t, const ks_ip *ip);

/* The client of one request. */
typedef struct ks_client {
  ks_ip ip;          /* family 0 when the name is not an IP address */
  const char *entry; /* ip.family == 0: the X-Forwarded-For entry (not NUL-terminated) */
  size_t entry_len;
  char text[64]; /* for logs: the address, or the entry as sent (cut at 63 bytes) */
} ks_client;

/* Decides the client of a request from @p peer (its text @p peer_text)
 * and @p xff, the value of its last X-Forwarded-For header (NULL if none):
 * the peer, unless it is trusted and @p xff names someone. Then, as
 * uvicorn: with "*" the first entry; otherwise, walking from the right
 * (each proxy appends the address it received from), the first entry that
 * is not a trusted proxy, or the first entry if all are. An empty choice
 * leaves the peer. out->entry points into @p xff. */
void ks_client_resolve(ks_client *out, const ks_trust *t, const ks_ip *peer, const char *peer_text,
                       const char *xff, size_t xff_len);

#endif
