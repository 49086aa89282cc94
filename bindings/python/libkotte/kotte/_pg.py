"""The drop-in's PostgreSQL pool: one per process and conninfo, shared by the
session store and the credential store."""

from __future__ import annotations

import hashlib
import os
import threading

from ..pg import PgPool
from . import _secrets
from .config import KotteSettings

_pools: dict[tuple[int, str], PgPool] = {}
_lock = threading.Lock()


def shared_pool(settings: KotteSettings) -> PgPool:
    """The pool for the DB_* settings (opened on first use, again after fork())."""
    conninfo = settings.conninfo()
    key = (os.getpid(), conninfo)
    with _lock:
        pool = _pools.get(key)
        if pool is None or pool.closed:
            pool = PgPool(conninfo, max_size=settings.db_pool_max_size, min_size=1,
                          connect_timeout=float(settings.db_connect_timeout))
            _pools[key] = pool
        return pool


def session_secret(settings: KotteSettings) -> bytes:
    """Key material of the postgresql session backend (the same on every replica).

    SESSION_SECRET_KEY when it is set (Kotte signs its cookies with it, so
    replicas already share it); otherwise a key derived from the master key.
    """
    if settings.session_secret_key:
        secret = settings.session_secret_key.encode()
        if len(secret) < 16:
            raise ValueError("SESSION_SECRET_KEY must be at least 16 bytes")
        return secret
    master = _secrets.master_key(settings).encode()
    return hashlib.blake2b(master, digest_size=32, person=b"kotte-pg-session").digest()
