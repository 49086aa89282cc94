/* uthash (Debian uthash-dev) configured for libkotte: our allocator, and
 * out-of-memory reported instead of exit(). Every hash table in libkotte
 * includes uthash through this header. A caller clears kotte__uthash_oom
 * before a HASH_ADD and reads it after (defined in core/alloc.c). */
#ifndef KOTTE_UTHASH_CONFIG_H
#define KOTTE_UTHASH_CONFIG_H

#include "core/internal.h"

extern _Thread_local int kotte__uthash_oom;
#define HASH_NONFATAL_OOM 1
#define uthash_malloc(sz) kotte__malloc(sz)
#define uthash_free(ptr, sz) kotte__free(ptr)
#define uthash_nonfatal_oom(obj) (kotte__uthash_oom = 1)
#include <uthash.h>
#include <utlist.h>

#endif
