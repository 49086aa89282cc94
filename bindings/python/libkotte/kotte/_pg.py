"""The drop-in's PostgreSQL pool: one per process and conninfo, shared by the
session store and the credential store."""

from __future__ import annotations

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


# The session backends' key material, also for json_file (kept here under
# its old name for callers of the postgresql pool module).
session_secret = _secrets.session_secret
