/* Rate-limit counts: uthash for the keys, utlist for their order of use
 * (most recent first), a 61-second ring of counters per key. See
 * ratelimit.h for the window and the memory bound.
 *
 * Keys come from clients (any IPv6 address they like, behind a trusting
 * proxy any X-Forwarded-For), so the table hashes them with SipHash under
 * a random key (libsodium's crypto_shorthash) instead of uthash's
 * unkeyed default: nobody can aim many keys at one bucket. */
#include "ratelimit.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

static unsigned char sip_key[crypto_shorthash_KEYBYTES];
static unsigned char name_key[crypto_shorthash_siphashx24_KEYBYTES];
static int keys_set;

static void keys_init(void) {
  if (keys_set) return;
  crypto_shorthash_keygen(sip_key);
  randombytes_buf(name_key, sizeof name_key);
  keys_set = 1;
}

static unsigned sip_hash(const void *p, size_t len) {
  unsigned char out[crypto_shorthash_BYTES];
  crypto_shorthash(out, p, len, sip_key);
  unsigned v;
  memcpy(&v, out, sizeof v);
  return v;
}

/* uthash out of memory: the add did not happen */
static int hash_oom;
#define HASH_NONFATAL_OOM 1
#define uthash_nonfatal_oom(obj) (hash_oom = 1)
#define HASH_FUNCTION(keyptr, keylen, hashv) ((hashv) = sip_hash((keyptr), (keylen)))
#include <uthash.h>
#include <utlist.h>

#define SLOTS 61 /* this second and the 60 before it */

typedef struct rl_node {
  uint8_t key[KS_RL_KEY_LEN];
  UT_hash_handle hh;
  struct rl_node *prev, *next; /* use order, most recent first */
  uint32_t sec;                /* the ring holds seconds sec - 60 .. sec */
  uint32_t seen;               /* last request, admitted or refused */
  uint32_t logged;             /* last logged refusal (valid if has_logged) */
  uint32_t total;              /* sum of slot[] */
  uint32_t suppressed;         /* refusals since the last logged one */
  uint8_t has_logged;
  uint32_t slot[SLOTS];
} rl_node;

struct ks_rl {
  rl_node *by_key; /* uthash head */
  rl_node *order;  /* utlist head; order->prev is the least recent */
  unsigned limit, max_keys, nkeys;
  unsigned long long evictions;
};

int ks_rl_new(ks_rl **out, unsigned limit, unsigned max_keys) {
  *out = NULL;
  keys_init();
  ks_rl *rl = calloc(1, sizeof *rl);
  if (rl == NULL) return -1;
  rl->limit = limit;
  rl->max_keys = max_keys ? max_keys : 1;
  *out = rl;
  return 0;
}

static void drop(ks_rl *rl, rl_node *n) {
  HASH_DEL(rl->by_key, n);
  DL_DELETE(rl->order, n);
  rl->nkeys--;
}

void ks_rl_free(ks_rl *rl) {
  if (rl == NULL) return;
  rl_node *n, *tmp;
  HASH_ITER(hh, rl->by_key, n, tmp) {
    drop(rl, n);
    free(n);
  }
  HASH_CLEAR(hh, rl->by_key);
  free(rl);
}

void ks_rl_get_stats(const ks_rl *rl, ks_rl_stats *st) {
  st->keys = rl ? rl->nkeys : 0;
  st->evictions = rl ? rl->evictions : 0;
}

/* Moves the ring on to second @p sec, dropping what left the window. */
static void advance(rl_node *n, uint32_t sec) {
  if (sec <= n->sec) return; /* the same second (or a clock that did not move) */
  if (sec - n->sec >= SLOTS) {
    memset(n->slot, 0, sizeof n->slot);
    n->total = 0;
  } else {
    for (uint32_t s = n->sec + 1; s <= sec; s++) {
      n->total -= n->slot[s % SLOTS];
      n->slot[s % SLOTS] = 0;
    }
  }
  n->sec = sec;
}

/* A key is idle when it was last seen more than the window ago: nothing of
 * it is counted any more, and the least recent key is the first to be. */
static int idle(const rl_node *n, uint32_t sec) { return sec > n->seen && sec - n->seen >= SLOTS; }

static rl_node *lookup(ks_rl *rl, const ks_rl_key *key) {
  rl_node *n;
  HASH_FIND(hh, rl->by_key, key->b, KS_RL_KEY_LEN, n);
  return n;
}

static rl_node *insert(ks_rl *rl, const ks_rl_key *key, uint32_t sec) {
  rl_node *n = NULL;
  if (rl->nkeys >= rl->max_keys) {
    /* at the cap: the least recently seen key makes room */
    n = rl->order->prev;
    if (!idle(n, sec)) rl->evictions++;
    drop(rl, n);
  } else {
    n = malloc(sizeof *n);
    if (n == NULL && rl->order) { /* no memory: reuse the least recent key */
      n = rl->order->prev;
      drop(rl, n);
    }
    if (n == NULL) return NULL;
  }
  memset(n, 0, sizeof *n);
  memcpy(n->key, key->b, KS_RL_KEY_LEN);
  n->sec = n->seen = sec;
  hash_oom = 0;
  HASH_ADD(hh, rl->by_key, key, KS_RL_KEY_LEN, n);
  if (hash_oom) {
    free(n);
    return NULL;
  }
  DL_PREPEND(rl->order, n);
  rl->nkeys++;
  return n;
}

void ks_rl_hit(ks_rl *rl, const ks_rl_key *key, uint64_t now_ms, ks_rl_verdict *v) {
  uint32_t sec = (uint32_t)(now_ms / 1000);
  memset(v, 0, sizeof *v);
  /* free a few idle keys, oldest first: each key is freed once, so this
   * keeps up with the keys created */
  for (int i = 0; i < 4 && rl->order && idle(rl->order->prev, sec); i++) {
    rl_node *old = rl->order->prev;
    drop(rl, old);
    free(old);
  }
  rl_node *n = lookup(rl, key);
  if (n == NULL) {
    n = insert(rl, key, sec);
    if (n == NULL) { /* out of memory: admitted, not counted */
      v->admitted = 1;
      v->count = 1;
      v->sec = sec;
      return;
    }
  } else if (n != rl->order) {
    DL_DELETE(rl->order, n);
    DL_PREPEND(rl->order, n);
  }
  advance(n, sec);
  n->seen = sec;
  if (n->total < rl->limit) {
    n->slot[sec % SLOTS]++;
    n->total++;
    v->admitted = 1;
    v->count = n->total;
    v->sec = sec;
    return;
  }
  v->count = n->total;
  /* the first second whose expiry brings the count under the limit */
  uint32_t need = n->total - rl->limit + 1, freed = 0;
  uint32_t first = sec - (SLOTS - 1);
  for (uint32_t s = first; s <= sec; s++) {
    freed += n->slot[s % SLOTS];
    if (freed >= need) {
      /* second s is counted until the end of second s + 60 */
      uint64_t at_ms = ((uint64_t)s + SLOTS) * 1000;
      v->retry_after = (unsigned)((at_ms - now_ms + 999) / 1000);
      break;
    }
  }
  if (!n->has_logged || sec - n->logged >= 60) {
    v->log = 1;
    v->suppressed = n->suppressed;
    n->suppressed = 0;
    n->logged = sec;
    n->has_logged = 1;
  } else {
    n->suppressed++;
  }
}

void ks_rl_undo(ks_rl *rl, const ks_rl_key *key, uint32_t sec) {
  rl_node *n = lookup(rl, key);
  if (n == NULL || sec > n->sec || n->sec - sec >= SLOTS) return;
  if (n->slot[sec % SLOTS] > 0) {
    n->slot[sec % SLOTS]--;
    n->total--;
  }
}

void ks_rl_key_ip(ks_rl_key *k, const ks_ip *ip, unsigned v6_prefix) {
  memset(k, 0, sizeof *k);
  k->b[0] = ip->family;
  if (ip->family == 4) {
    memcpy(k->b + 1, ip->b, 4);
  } else {
    if (v6_prefix > 128) v6_prefix = 128;
    memcpy(k->b + 1, ip->b, v6_prefix / 8);
    if (v6_prefix % 8)
      k->b[1 + v6_prefix / 8] = (uint8_t)(ip->b[v6_prefix / 8] & (0xff << (8 - v6_prefix % 8)));
  }
}

void ks_rl_key_name(ks_rl_key *k, uint8_t tag, const char *s, size_t len) {
  /* 128-bit SipHash under a random key: a fifth of BLAKE2b's cost here,
   * and nobody without the key can make two names collide */
  keys_init();
  k->b[0] = tag;
  crypto_shorthash_siphashx24(k->b + 1, (const unsigned char *)s, len, name_key);
}
