"""PostgreSQL: libkotte's asynchronous connection pool and the schema migrator.

The pool runs on a :class:`~libkotte.Runtime`'s loop thread (libpq in
non-blocking mode on libuv); Python only opens, closes and reads its
statistics. Stores opened with ``pool=`` use it.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Optional

from . import capi
from ._runtime import Runtime, _Guard, default_runtime
from .sessions import from_micros


#: The schema version this libkotte needs (KOTTE_PG_SCHEMA_VERSION).
SCHEMA_VERSION: int = capi.KOTTE_PG_SCHEMA_VERSION


def _timeout_ms(timeout: Optional[float]) -> int:
    return -1 if timeout is None else int(timeout * 1000)


class PgPool:
    """A pool of PostgreSQL connections for libkotte's postgresql backends.

    Args:
        conninfo: a libpq connection string or URI (multi-host and
            ``target_session_attrs=read-write`` work as in libpq).
        min_size, max_size: connections kept open / open at most.
        acquire_timeout: seconds a query waits for a connection (PoolTimeoutError).
        query_timeout: seconds a query may run (OperationTimeoutError; the
            server gets a cancel request). 0 disables it.
        pipeline_depth: queries in flight on one connection (1: no pipelining).
        connect_timeout: seconds for one connection attempt, all hosts together.
        on_connect_sql: SQL run on every new connection.
        runtime: the runtime to run on (default: the process-wide one).

    Close the stores that use a pool before the pool (``close()`` does it).
    """

    def __init__(self, conninfo: str, *, min_size: int = 1, max_size: int = 10,
                 acquire_timeout: float = 5.0, query_timeout: float = 30.0,
                 pipeline_depth: int = 1, connect_timeout: float = 10.0,
                 on_connect_sql: Optional[str] = None,
                 runtime: Optional[Runtime] = None) -> None:
        self._runtime = runtime or default_runtime()
        opts = capi.kotte_pg_pool_options()
        opts.conninfo = conninfo
        opts.min_size = int(min_size)
        opts.max_size = int(max_size)
        opts.acquire_timeout_ms = int(acquire_timeout * 1000)
        opts.query_timeout_ms = int(query_timeout * 1000)
        opts.pipeline_depth = int(pipeline_depth)
        opts.connect_timeout_ms = int(connect_timeout * 1000)
        if on_connect_sql:
            opts.on_connect_sql = on_connect_sql
        self._guard = _Guard("the PostgreSQL pool")
        self._handle = capi.kotte_pg_pool_open(self._runtime.handle, opts)
        # rank 1: the runtime closes stores (rank 0) first
        self._guard.own(self, functools.partial(capi.kotte_pg_pool_free, self._handle),
                        self._runtime, rank=1)

    @property
    def runtime(self) -> Runtime:
        return self._runtime

    @property
    def handle(self) -> Any:
        if self._guard.closed:
            from .errors import ClosedError

            raise ClosedError("KOTTE_ECLOSED: the PostgreSQL pool is closed",
                              code=capi.KOTTE_ECLOSED, name="KOTTE_ECLOSED")
        return self._handle

    def stats(self) -> dict[str, int]:
        """The pool's counters (see kotte_pg_pool_stats in kotte/pg.h)."""
        st = capi.kotte_pg_pool_stats()
        with self._guard:
            capi.kotte_pg_pool_get_stats(self._handle, st)
        # the struct's fields (SWIG -builtin: getset descriptors; dir() also
        # lists SwigPyObject's methods)
        names = [n for n, v in vars(type(st)).items()
                 if type(v).__name__ == "getset_descriptor" and not n.startswith("_")
                 and n not in ("this", "thisown", "version")]
        return {n: int(getattr(st, n)) for n in names}

    def state(self) -> dict[str, Any]:
        """What the pool knows about its server now, without asking it
        (kotte_pg_pool_state in kotte/pg.h): ``ready`` and ``connecting``
        connections, ``failures`` in a row, ``failing`` (no connection and
        the last attempt failed), ``failing_since`` (a UTC datetime or
        None), ``retry_in_ms`` and ``last_error`` (no password)."""
        st = capi.kotte_pg_pool_state()
        with self._guard:
            capi.kotte_pg_pool_get_state(self._handle, st)
        return {"ready": st.ready, "connecting": st.connecting, "failures": st.failures,
                "failing": bool(st.failing),
                "failing_since": from_micros(st.failing_since) if st.failing_since else None,
                "retry_in_ms": st.retry_in_ms, "last_error": st.last_error}

    def schema_version(self, timeout: Optional[float] = None) -> int:
        """The database's libkotte schema version, once it is what this
        libkotte needs (``SCHEMA_VERSION`` or newer).

        Raises :class:`~libkotte.errors.SchemaError` for a missing or older
        schema (its ``detail`` names both versions and the command that
        migrates), or the pool's error when the database cannot be asked.
        """
        with self._guard:
            out = capi.kotte_pg_schema_check_sync(self._handle, _timeout_ms(timeout))
        return int(out[1] if isinstance(out, (list, tuple)) else out)

    @property
    def closed(self) -> bool:
        return self._guard.closed

    def close(self) -> None:
        """Closes the stores using the pool, then the pool. Idempotent. A pool
        that is garbage-collected, or still open when its runtime closes, is
        closed then."""
        self._guard.close()

    def __enter__(self) -> "PgPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def migrate(conninfo: str, sql_dir: str | os.PathLike[str], *, extensions: bool = False,
            roles: bool = True) -> int:
    """Applies the repository's sql/ migrations (as the database owner); returns how many ran.

    Blocking (plain libpq), GIL released.
    """
    opts = capi.kotte_pg_migrate_options()
    opts.extensions = 1 if extensions else 0
    opts.roles = 1 if roles else 0
    return capi.kotte_pg_migrate(conninfo, os.fspath(sql_dir), opts)
