"""Graph database pools a replica re-opens for sessions connected elsewhere.

Kotte's ``POST /session/connect`` opens a ``DatabaseConnection`` (a psycopg
pool with ``LOAD 'age'`` and AGE's ``search_path`` on every connection) in the
process that handled it and keeps it in the session's side table. Another
replica that serves the same session opens its own with Kotte's own class
(:mod:`libkotte.kotte.db_follow` decides when); this module owns those:

* one pool per process, event loop and *target*: host, port, database, user,
  password and sslmode. Sessions share a pool only when all six match;
  the registry keys pools by a keyed BLAKE2b of the six (a per-process random
  key), so it never compares or keeps a password. The only plaintext copy is
  Kotte's own ``DatabaseConnection`` (which needs it to open connections);
* concurrent first uses of a target open it once (single flight): every
  waiter gets the result of the one ``connect()``;
* a failed open answers as Kotte's ``connect`` does (its ``APIException``,
  ``DB_CONNECT_FAILED``), and is remembered for ``DB_FOLLOW_RETRY_AFTER``
  seconds so that a database that is down does not cost every request a
  connect timeout;
* at most ``DB_FOLLOW_MAX_POOLS`` pools: at the cap the pools unused for
  ``DB_FOLLOW_IDLE_TIMEOUT`` are closed first; if none is, a new target is
  refused with Kotte's failed-connect answer (retryable) and nothing that is
  in use is closed;
* each session holds a pool through its own :class:`FollowedConnection`; the
  pool closes with its last holder, or when it has been idle (no session
  handed it out and none of its connections checked out) for
  ``DB_FOLLOW_IDLE_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import logging
import os
import time
from typing import Any, Callable, Mapping, Optional

log = logging.getLogger("libkotte.kotte")

# Key of the target fingerprints, new in every process (a fork shares it,
# which is harmless: fingerprints never leave the process).
_FP_KEY = os.urandom(32)


class Target:
    """Where a session's ``connection_config`` connects, without its password.

    ``fp`` is the keyed fingerprint of the six fields that decide whether two
    sessions may share a pool (the password among them).
    """

    __slots__ = ("host", "port", "database", "user", "sslmode", "fp")

    def __init__(self, host: str, port: int, database: str, user: str,
                 sslmode: Optional[str], fp: bytes) -> None:
        self.host, self.port, self.database, self.user = host, port, database, user
        self.sslmode, self.fp = sslmode, fp

    def __repr__(self) -> str:  # no password, no fingerprint
        return f"<{self.user}@{self.host}:{self.port}/{self.database}>"


def _port(value: Any) -> Optional[int]:
    if value is None:
        return 5432  # Kotte's ConnectionConfig default
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return value if isinstance(value, int) and 0 < value < 65536 else None


def target_of(cfg: Any) -> Optional[Target]:
    """The target of a ``connection_config``, or None when it describes no
    connection (the login's ``{"username": ...}``, ``{}``).

    Connected means what Kotte's ``connect`` writes: non-empty ``host``,
    ``database`` and ``user`` strings and a valid ``port`` (5432 if absent).
    kotte-server's ``/session/status`` applies the same rule.
    """
    if not isinstance(cfg, Mapping):
        return None
    host, database, user = cfg.get("host"), cfg.get("database"), cfg.get("user")
    if not all(isinstance(v, str) and v for v in (host, database, user)):
        return None
    port = _port(cfg.get("port"))
    if port is None:
        return None
    sslmode = cfg.get("sslmode")
    sslmode = sslmode if isinstance(sslmode, str) and sslmode else None
    ident = json.dumps([host, port, database, user, cfg.get("password"), sslmode],
                       ensure_ascii=False, default=str).encode()
    fp = hashlib.blake2b(ident, key=_FP_KEY, digest_size=32,
                         person=b"kotte-db-target").digest()
    return Target(host, port, database, user, sslmode, fp)  # type: ignore[arg-type]


class KotteErrors:
    """Kotte's error answers (``app.core.errors``), built the way Kotte builds them."""

    def __init__(self, package: str) -> None:
        try:
            mod = importlib.import_module(f"{package}.core.errors")
            self._exc: Any = mod.APIException
        except (ImportError, AttributeError):
            self._exc = None

    def _make(self, code: str, message: str, *, retryable: bool,
              details: Optional[dict] = None, category: str = "upstream",
              status_code: int = 500) -> BaseException:
        if self._exc is None:
            return RuntimeError(f"{code}: {message}")
        return self._exc(code=code, message=message, category=category,
                         status_code=status_code, details=details, retryable=retryable)

    def connect_failed(self, exc: BaseException) -> BaseException:
        """What Kotte's ``connect`` answers for ``exc``: its own APIException as
        it is, anything else as the route wraps it."""
        if self._exc is not None and isinstance(exc, self._exc):
            return exc
        return self._make("DB_CONNECT_FAILED", f"Connection failed: {exc}", retryable=True)

    def refused(self, message: str) -> BaseException:
        return self._make("DB_CONNECT_FAILED", f"Failed to connect to database: {message}",
                          retryable=True)

    def unavailable(self) -> BaseException:
        # Kotte's answer for a DatabaseConnection used after disconnect().
        return self._make("DB_UNAVAILABLE", "Database connection pool not initialized",
                          retryable=False)

    def fresh(self, exc: BaseException) -> BaseException:
        """A new exception equal to ``exc`` (one raised object per request)."""
        if self._exc is not None and isinstance(exc, self._exc):
            return self._make(exc.code, exc.message, retryable=exc.retryable,
                              details=dict(exc.details or {}), category=exc.category,
                              status_code=exc.status_code)
        return type(exc)(*exc.args)


def _in_use(conn: Any) -> bool:
    """Whether any connection of Kotte's pool is checked out or awaited
    (psycopg_pool's statistics; False when they cannot be read)."""
    stats = getattr(getattr(conn, "_pool", None), "get_stats", None)
    if stats is None:
        return False
    try:
        s = stats()
        return (s.get("pool_size", 0) > s.get("pool_available", 0)
                or s.get("requests_waiting", 0) > 0)
    except Exception:  # statistics are a courtesy, never a reason to fail
        return False


class _Pool:
    __slots__ = ("fp", "target", "conn", "loop", "holders", "last_used", "closing")

    def __init__(self, fp: bytes, target: Target, conn: Any, loop: asyncio.AbstractEventLoop,
                 now: float) -> None:
        self.fp, self.target, self.conn, self.loop = fp, target, conn, loop
        self.holders: set[FollowedConnection] = set()
        self.last_used = now
        self.closing = False


class FollowedConnection:
    """Kotte's ``DatabaseConnection`` for one session, on a pool it shares.

    Every attribute is the shared connection's (``execute_query``,
    ``transaction``, ...) except ``disconnect()``, which lets go of this
    session's hold (the pool closes with its last holder). After that, or once
    the pool closed, every attribute raises Kotte's "Database connection pool
    not initialized": an old reference of a session that let go cannot reach
    the pool.
    """

    __slots__ = ("_registry", "_pool", "_released")

    def __init__(self, registry: "PoolRegistry", pool: _Pool) -> None:
        self._registry = registry
        self._pool = pool
        self._released = False

    @property
    def fp(self) -> bytes:
        return self._pool.fp

    @property
    def alive(self) -> bool:
        return not self._released and not self._pool.closing

    def __getattr__(self, name: str) -> Any:
        if not self.alive:
            raise self._registry.errors.unavailable()
        return getattr(self._pool.conn, name)

    async def disconnect(self) -> None:
        closing = self._registry.release(self)
        if closing is not None:
            await closing

    def __repr__(self) -> str:
        state = "live" if self.alive else "released"
        return f"<libkotte FollowedConnection {self._pool.target!r} {state}>"


class PoolRegistry:
    """The pools this process re-opened (see the module docstring)."""

    def __init__(self, package: str, *, max_pools: int, idle_timeout: float,
                 retry_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.package = package
        self.errors = KotteErrors(package)
        self.max_pools = max_pools
        self.idle_timeout = idle_timeout
        self.retry_after = retry_after
        self._clock = clock
        self._pools: dict[bytes, _Pool] = {}
        self._opening: dict[bytes, asyncio.Task[_Pool]] = {}
        self._failed: dict[bytes, tuple[float, BaseException]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.opened = 0  # pools opened over the process's life

    # ---- holding ------------------------------------------------------------

    async def hold(self, target: Target, cfg: Mapping[str, Any]) -> FollowedConnection:
        """A new hold on the pool of ``target`` (opened with ``cfg``'s password
        when this process has none); raises Kotte's failed-connect answer."""
        loop = asyncio.get_running_loop()
        while True:
            pool = self._pools.get(target.fp)
            if pool is not None and pool.loop is not loop:
                self._discard(pool, "it belongs to another event loop")
                pool = None
            if pool is None:
                pool = await self._open(target, cfg, loop)
            if not pool.closing:  # it may have closed while we waited
                handle = FollowedConnection(self, pool)
                pool.holders.add(handle)
                pool.last_used = self._clock()
                return handle

    def touch(self, handle: FollowedConnection) -> None:
        handle._pool.last_used = self._clock()

    def release(self, handle: FollowedConnection) -> Optional["asyncio.Task[None]"]:
        """Ends ``handle``'s hold; returns the pool's close when it was the last
        holder (awaiting it is optional)."""
        if handle._released:
            return None
        handle._released = True
        pool = handle._pool
        pool.holders.discard(handle)
        if pool.holders or pool.closing:
            return None
        return self._discard(pool, "no session holds it")

    async def _open(self, target: Target, cfg: Mapping[str, Any],
                    loop: asyncio.AbstractEventLoop) -> _Pool:
        fp = target.fp
        task = self._opening.get(fp)
        if task is not None and task.get_loop() is not loop:
            task = None
        if task is None:
            failed = self._failed.get(fp)
            if failed is not None and self._clock() - failed[0] < self.retry_after:
                raise self.errors.fresh(failed[1])
            if len(self._pools) + len(self._opening) >= self.max_pools:
                await self.close_idle()
            if len(self._pools) + len(self._opening) >= self.max_pools:
                raise self.errors.refused(
                    f"this replica already holds DB_FOLLOW_MAX_POOLS ({self.max_pools}) "
                    "connections of sessions connected elsewhere, all in use; retry later")
            task = loop.create_task(self._connect(target, dict(cfg), loop))
            self._opening[fp] = task
        try:
            # shield: a waiter that is cancelled (client gone) does not cancel
            # the open the other waiters share.
            return await asyncio.shield(task)
        except BaseException as e:
            if isinstance(e, asyncio.CancelledError):
                raise
            raise self.errors.fresh(e) from None

    async def _connect(self, target: Target, cfg: dict[str, Any],
                       loop: asyncio.AbstractEventLoop) -> _Pool:
        fp = target.fp
        try:
            cls = importlib.import_module(f"{self.package}.core.database").DatabaseConnection
            conn = cls(host=target.host, port=target.port, database=target.database,
                       user=target.user, password=cfg.get("password"), sslmode=target.sslmode)
            cfg.clear()  # our copy of the password goes; Kotte's object keeps its own
            await conn.connect()
        except Exception as e:
            answer = self.errors.connect_failed(e)
            self._failed[fp] = (self._clock(), answer)
            log.warning("re-opening the graph database connection %r of a session connected "
                        "on another replica failed: %s", target, answer)
            raise answer from None
        finally:
            cfg.clear()
            if self._opening.get(fp) is asyncio.current_task():
                del self._opening[fp]
        self._failed.pop(fp, None)
        pool = _Pool(fp, target, conn, loop, self._clock())
        self._pools[fp] = pool
        self.opened += 1
        log.info("re-opened the graph database connection %r for a session connected on "
                 "another replica (%d pools)", target, len(self._pools))
        return pool

    # ---- closing ------------------------------------------------------------

    def _discard(self, pool: _Pool, why: str) -> Optional["asyncio.Task[None]"]:
        """Takes ``pool`` out of the registry and closes it on its own loop."""
        pool.closing = True
        if self._pools.get(pool.fp) is pool:
            del self._pools[pool.fp]
        log.info("closing the re-opened graph database connection %r: %s", pool.target, why)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if pool.loop is running:
            task = running.create_task(_disconnect(pool.conn, pool.target))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
            return task
        if not pool.loop.is_closed():
            try:
                pool.loop.call_soon_threadsafe(
                    lambda: pool.loop.create_task(_disconnect(pool.conn, pool.target)))
            except RuntimeError:  # the loop closed meanwhile: its sockets went with it
                pass
        return None

    async def close_idle(self) -> int:
        """Closes the pools unused for the idle timeout; returns how many."""
        now = self._clock()
        for fp, (when, _) in list(self._failed.items()):
            if now - when >= self.retry_after:
                del self._failed[fp]
        idle = [p for p in self._pools.values()
                if now - p.last_used >= self.idle_timeout and not _in_use(p.conn)]
        closes = [self._discard(p, f"unused for {self.idle_timeout:g} s") for p in idle]
        waits = [c for c in closes if c is not None]
        if waits:
            await asyncio.gather(*waits, return_exceptions=True)
        return len(idle)

    async def close_all(self) -> None:
        closes = [self._discard(p, "shutdown") for p in list(self._pools.values())]
        waits = [c for c in closes if c is not None] + list(self._closing)
        if waits:
            await asyncio.gather(*waits, return_exceptions=True)

    def stats(self) -> dict[str, int]:
        return {"pools": len(self._pools), "opening": len(self._opening),
                "holders": sum(len(p.holders) for p in self._pools.values()),
                "opened": self.opened}


async def _disconnect(conn: Any, target: Target) -> None:
    try:
        await conn.disconnect()
    except Exception as e:  # a pool that fails to close is gone for us all the same
        log.warning("closing the graph database connection %r failed: %s", target, e)
