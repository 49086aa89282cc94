/* Private: the key ring's entry points for the stores and the tests. The
 * public API is include/kotte/keyring.h. */
#ifndef KOTTE_KEYRING_INTERNAL_H
#define KOTTE_KEYRING_INTERNAL_H

#include "core/internal.h"

/* Takes another reference (released by kotte_keyring_free()). Every store
 * that is given a ring keeps one. */
kotte_keyring *kotte__keyring_ref(kotte_keyring *kr);

/* How many times kotte_keyring_open() was called on @p kr (tests). */
uint64_t kotte__keyring_open_count(kotte_keyring *kr);

/* Where the keys live (tests: it must be inaccessible between uses). */
const volatile unsigned char *kotte__keyring_key_memory(kotte_keyring *kr);

#endif
