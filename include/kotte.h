/*
 * libkotte — shared session and credential stores for Kotte.
 *
 * The umbrella header: include only this one.
 *
 *   kotte/common.h   error codes, version, export macro
 *   kotte/core.h     allocator, logging, clock, random tokens
 *   kotte/runtime.h  a library-owned libuv loop thread for blocking calls
 *   kotte/keyring.h  the key ring: sealing with XChaCha20-Poly1305, key rotation
 *   kotte/session.h  the session store and its built-in backends
 *   kotte/credential.h  the credential store (saved connections)
 *   kotte/pg.h       the asynchronous PostgreSQL pool and the migration function
 *   kotte/query.h    the query registry: running queries, cancel from any replica
 *
 * Backend writers additionally include kotte/sys/session_backend.h or
 * kotte/sys/credential_backend.h.
 */
#ifndef KOTTE_H
#define KOTTE_H

#include "kotte/common.h"
#include "kotte/core.h"
#include "kotte/runtime.h"
#include "kotte/keyring.h"
#include "kotte/session.h"
#include "kotte/credential.h"
#include "kotte/pg.h"
#include "kotte/query.h"

#endif /* KOTTE_H */
