/* kotte-server: request counts for Kotte's rate limits (RateLimitMiddleware:
 * RATE_LIMIT_PER_MINUTE per client address, RATE_LIMIT_PER_USER per user,
 * over the last 60 seconds, in this process's memory). One table per limit;
 * used on the loop thread only.
 *
 * The window: each key keeps a ring of 61 one-second counters, so a
 * request is counted from the second it was admitted through the 60 seconds
 * after it, i.e. for 60 to 61 s. Kotte keeps every timestamp and forgets
 * one exactly 60 s on; this never admits a request Kotte would refuse, may
 * refuse one for up to a second longer, and needs the same ~300 bytes per
 * key whatever the limit, with O(1) work per request. A refused request is
 * not counted.
 *
 * Memory: at most max_keys keys per table. A key none of whose requests is
 * in the window any more is freed (a few per request, oldest first). At the
 * cap, a new key takes the place of the key seen least recently, whose
 * count is forgotten: a client that keeps sending, refused or not, stays
 * at the front and keeps its count, so only a quiet key can be pushed out,
 * and pushing one out takes max_keys other keys since it was last seen. */
#ifndef KS_RATELIMIT_H
#define KS_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "client_ip.h"

#define KS_RL_KEY_LEN 17

/* A tag byte, then 16 bytes: an IPv4 address, an IPv6 prefix, or a
 * keyed 128-bit digest of a name (a user id, a client that is not an IP). */
typedef struct ks_rl_key {
  uint8_t b[KS_RL_KEY_LEN];
} ks_rl_key;

typedef struct ks_rl ks_rl;

typedef struct ks_rl_verdict {
  int admitted;
  unsigned count;       /* requests in the window, this one included if admitted */
  uint32_t sec;         /* admitted: the second it was counted in (for ks_rl_undo) */
  unsigned retry_after; /* refused: seconds until one more would be admitted */
  int log;              /* refused: the key's first refusal in 60 s */
  unsigned suppressed;  /* with log: refusals of this key since the last logged one */
} ks_rl_verdict;

typedef struct ks_rl_stats {
  unsigned keys;
  unsigned long long evictions; /* keys pushed out at the cap while in use */
} ks_rl_stats;

/* A table admitting @p limit requests per key and window, holding at most
 * @p max_keys keys. 0, or -1 when out of memory. Free with ks_rl_free(). */
int ks_rl_new(ks_rl **out, unsigned limit, unsigned max_keys);
void ks_rl_free(ks_rl *rl);

/* Decides one request of @p key at @p now_ms (a monotonic clock, e.g.
 * uv_now()) and counts it if admitted. If no memory can be had for a new
 * key the request is admitted uncounted. */
void ks_rl_hit(ks_rl *rl, const ks_rl_key *key, uint64_t now_ms, ks_rl_verdict *v);

/* Takes back one admitted request of @p key counted in second @p sec (a
 * request a later check refused), if it is still in the window. */
void ks_rl_undo(ks_rl *rl, const ks_rl_key *key, uint32_t sec);

void ks_rl_get_stats(const ks_rl *rl, ks_rl_stats *st);

/* Key of a client address; IPv6 addresses are cut to their first
 * @p v6_prefix bits (one key per /64 by default: a subscriber's share). */
void ks_rl_key_ip(ks_rl_key *k, const ks_ip *ip, unsigned v6_prefix);
/* Key of a name: @p tag, then a digest of the @p len bytes at @p s. */
void ks_rl_key_name(ks_rl_key *k, uint8_t tag, const char *s, size_t len);

#endif
