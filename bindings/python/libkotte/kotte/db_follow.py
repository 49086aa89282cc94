"""Kotte's graph database connection follows the session to every replica.

Kotte keeps the live ``DatabaseConnection`` a session's ``POST
/session/connect`` opened in the side table of the process that handled it
(``_local_session_objects``); the session in the shared store holds only its
``connection_config`` (the password sealed by libkotte). On any other replica
``session/status`` said "not connected" and every graph route failed.

What the drop-in does instead, on every session read (:meth:`Follow.reconcile`):

* the session always comes from the shared store first; the side table is
  only looked at for a session the store still has;
* the store's ``connection_config`` describes a connection
  (:func:`~libkotte.kotte.db_pools.target_of`) and this process holds none
  for the session: it opens one with Kotte's own ``DatabaseConnection`` (so
  ``LOAD 'age'``, the ``search_path`` and Kotte's pool settings stay Kotte's)
  on a pool shared per process and target (:mod:`libkotte.kotte.db_pools`:
  single flight, keyed by a hash that includes the password, capped), and
  puts it into the side table;
* the connection this process holds was made for another target than the
  store now says, or the session is no longer connected: it is let go (a
  connection Kotte opened here is disconnected) before anything can use it;
* opening fails (database down, password changed): the read still succeeds,
  without ``db_connection``, so ``session/status`` answers what is true on
  this replica (``connected: false``), and Kotte's ``get_db_connection``
  (wrapped by ``install()``) answers the failure as Kotte answers a failed
  ``connect`` (``DB_CONNECT_FAILED``, 500, retryable) instead of
  ``DB_UNAVAILABLE``.

Ending. Disconnect and logout on this replica go through Kotte's routes
(``db_connection.disconnect()``, then ``delete_session``). A session that
ended on another replica (disconnect, logout, expiry, revoke) is seen here

* at its next read on this replica: the store has no session, so what this
  process holds for it is closed before the read returns (no request of a
  logged-out session gets a ``db_connection``);
* without traffic, by a check every ``DB_FOLLOW_CHECK_INTERVAL`` seconds
  (default 30) that lists the sessions of the users this process holds
  connections for (a read that does not slide their idle expiry) and closes
  what belongs to sessions that are gone or connected elsewhere.

The bound: an idle pool of a session that ended on another replica stays open
here at most ``DB_FOLLOW_CHECK_INTERVAL`` seconds plus one store round trip.
Should the store be unreachable during the checks, a re-opened pool still
closes ``DB_FOLLOW_IDLE_TIMEOUT`` seconds (default 300) after its last use.
The same check closes re-opened pools of live sessions that went unused for
``DB_FOLLOW_IDLE_TIMEOUT``; the next read opens them again.

Issue 13 (session change notifications over LISTEN/NOTIFY) replaces the
periodic check: its listener calls :meth:`Follow.session_ended` or
:meth:`Follow.session_changed` with the session id, and the check interval
only needs to cover a lost notification connection.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional

from ..errors import KotteError
from . import _secrets
from .db_pools import FollowedConnection, PoolRegistry, target_of

if TYPE_CHECKING:
    from .session_manager import SessionManager

log = logging.getLogger("libkotte.kotte")

# Key, in the dict of one session read, of the failed-connect answer that
# Kotte's get_db_connection raises (never stored, never in the side table).
CONNECT_FAILURE = "_libkotte_connect_failure"
DB_CONNECTION = "db_connection"


class _Held:
    """A ``db_connection`` this manager put into the side table: ``fp`` is the
    fingerprint of the target it was made for (None: not known)."""

    __slots__ = ("conn", "fp")

    def __init__(self, conn: Any, fp: Optional[bytes]) -> None:
        self.conn, self.fp = conn, fp


async def _disconnect_kotte(conn: Any, why: str) -> None:
    try:
        await conn.disconnect()
        log.info("closed a graph database connection: %s", why)
    except Exception as e:  # Kotte's routes log and go on, too
        log.warning("closing a graph database connection (%s) failed: %s", why, e)


class Follow:
    """The per-session half of the follow (see the module docstring)."""

    def __init__(self, manager: "SessionManager", package: Optional[str]) -> None:
        s = manager.settings
        self._m = manager
        # Without Kotte's package there is no DatabaseConnection to open: the
        # manager then only keeps what it holds in step with the store.
        self.registry: Optional[PoolRegistry] = None
        if package:
            self.registry = PoolRegistry(package, max_pools=s.db_follow_max_pools,
                                         idle_timeout=float(s.db_follow_idle_timeout),
                                         retry_after=float(s.db_follow_retry_after))
        self.check_interval = float(s.db_follow_check_interval)
        self._held: dict[str, _Held] = {}
        # A value per session that changes whenever its db_connection is put
        # or taken (values never repeat), so a read that awaited can tell.
        self._gen: dict[str, int] = {}
        self._counter = itertools.count(1)
        self._timer: Optional[asyncio.TimerHandle] = None
        self._timer_loop: Optional[asyncio.AbstractEventLoop] = None

    def gen(self, sid: str) -> Optional[int]:
        return self._gen.get(sid)

    def _bump(self, sid: str) -> None:
        self._gen[sid] = next(self._counter)

    # ---- the read path ------------------------------------------------------

    async def reconcile(self, sid: str, data: dict[str, Any]) -> None:
        """Brings ``data`` (a session just read from the store, side table
        merged in) and the side table in line with the store's
        ``connection_config`` (see the module docstring)."""
        target = target_of(data.get("connection_config"))
        side = self._m._side.get(sid)
        conn = side.get(DB_CONNECTION) if side else None
        if conn is not None:
            held = self._held.get(sid)
            if held is None or held.conn is not conn:
                return  # not ours to judge: Kotte's as Kotte put it
            if isinstance(conn, FollowedConnection) and not conn.alive:
                why = "its pool was closed"
            elif held.fp is not None and (target is None or target.fp != held.fp):
                why = "the session is no longer connected to its target"
            else:
                if isinstance(conn, FollowedConnection) and self.registry is not None:
                    self.registry.touch(conn)
                return
            await self._detach(sid, data, close_kotte=True, why=why)
        if target is None or self.registry is None:
            return
        gen0 = self._gen.get(sid)
        try:
            handle = await self.registry.hold(target, data["connection_config"])
        except Exception as e:  # Kotte's failed-connect answer, raised by get_db_connection
            data[CONNECT_FAILURE] = e
            return
        if self._gen.get(sid) != gen0 or sid not in self._m._index:
            # While we waited, another request put or took the session's
            # connection, or the session ended here: theirs wins.
            await handle.disconnect()
            current = self._m._side.get(sid, {}).get(DB_CONNECTION)
            if current is not None:
                data[DB_CONNECTION] = current
            return
        self._m._side.setdefault(sid, {})[DB_CONNECTION] = handle
        self._held[sid] = _Held(handle, target.fp)
        self._bump(sid)
        data[DB_CONNECTION] = handle
        self._arm()

    # ---- the manager's writes -----------------------------------------------

    def attached(self, sid: str, conn: Any, cfg: Any) -> Optional[Awaitable[Any]]:
        """``update_session`` put ``conn`` into the side table (Kotte's
        ``connect``), with ``cfg`` when the same update wrote the
        ``connection_config``. Returns the release of what it replaced."""
        prev = self._held.pop(sid, None)
        target = target_of(cfg)
        self._held[sid] = _Held(conn, target.fp if target is not None else None)
        self._bump(sid)
        self._arm()
        if prev is not None and prev.conn is not conn:
            return self._close(prev, close_kotte=False, why="replaced")
        return None

    def taken(self, sid: str) -> Optional[Awaitable[Any]]:
        """``update_session`` stored a plain value under ``db_connection``."""
        held = self._held.pop(sid, None)
        self._bump(sid)
        return self._close(held, close_kotte=False, why="replaced") if held else None

    def forget(self, sid: str, *, ended: bool) -> Optional[Awaitable[Any]]:
        """The manager forgot the session (side table entry already gone).
        ``ended``: it ended elsewhere or expired, so a connection Kotte opened
        here is disconnected too; otherwise Kotte's route already did."""
        self._gen.pop(sid, None)
        held = self._held.pop(sid, None)
        if held is None:
            return None
        return self._close(held, close_kotte=ended,
                           why="the session ended" if ended else "the session was deleted")

    def forget_all(self) -> None:
        for sid in list(self._held):
            self.forget(sid, ended=False)
        self._gen.clear()

    async def _detach(self, sid: str, data: Optional[dict[str, Any]], *, close_kotte: bool,
                      why: str) -> None:
        held = self._held.pop(sid, None)
        self._bump(sid)
        if held is None:
            return
        side = self._m._side.get(sid)
        if side is not None and side.get(DB_CONNECTION) is held.conn:
            del side[DB_CONNECTION]
            if not side:
                self._m._side.pop(sid, None)
        if data is not None and data.get(DB_CONNECTION) is held.conn:
            del data[DB_CONNECTION]
        closing = self._close(held, close_kotte=close_kotte, why=why)
        if closing is not None:
            await closing

    def _close(self, held: _Held, *, close_kotte: bool, why: str) -> Optional[Awaitable[Any]]:
        """Lets go of ``held``: a hold on a shared pool is released; a
        connection Kotte opened is disconnected when ``close_kotte``."""
        conn = held.conn
        if isinstance(conn, FollowedConnection):
            return conn._registry.release(conn)
        if not close_kotte or not callable(getattr(conn, "disconnect", None)):
            return None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None  # no loop to close it on: Kotte's pool dies with its loop
        task = loop.create_task(_disconnect_kotte(conn, why))
        self._m._keep(task)
        return task

    # ---- the check without traffic ------------------------------------------

    def _arm(self) -> None:
        if not self._held:
            return
        loop = asyncio.get_running_loop()
        if self._timer is not None and self._timer_loop is loop and not loop.is_closed():
            return
        self._timer_loop = loop
        self._timer = loop.call_later(self.check_interval, self._tick)

    def _tick(self) -> None:
        self._timer = None
        loop = self._timer_loop
        if loop is not None and not loop.is_closed():
            self._m._keep(loop.create_task(self.check()))

    async def check(self) -> None:
        """One round: closes re-opened pools idle for the idle timeout, then
        re-checks every session this process holds a connection for."""
        try:
            if self.registry is not None:
                await self.registry.close_idle()
            await self._revalidate(list(self._held))
        except Exception:  # the next round tries again
            log.exception("checking the sessions' graph database connections failed")
        finally:
            self._arm()

    async def _revalidate(self, sids: list[str]) -> None:
        by_user: dict[str, list[tuple[str, _Held]]] = {}
        for sid in sids:
            held = self._held.get(sid)
            if held is None:
                continue
            if isinstance(held.conn, FollowedConnection) and not held.conn.alive:
                await self._detach(sid, None, close_kotte=False, why="its pool was closed")
                continue
            entry = self._m._index.get(sid)
            if entry is not None:
                by_user.setdefault(entry[0], []).append((sid, held))
        for user, items in by_user.items():
            try:
                # list_user does not slide the idle expiry, as a check must not
                live = {s.id: s for s in await self._m.store.aio.list_user(user)}
            except KotteError as e:
                log.warning("re-checking the sessions of a user failed (%s): their graph "
                            "database connections are kept until the next round", e)
                continue
            for sid, held in items:
                if self._held.get(sid) is not held:
                    continue  # changed while we listed
                s = live.get(sid)
                if s is None:
                    closing = self._m._forget(sid, ended=True)
                    if closing is not None:
                        await closing
                elif held.fp is not None:
                    data = _secrets.unmark(dict(s.data))
                    target = target_of(data.get("connection_config"))
                    if target is None or target.fp != held.fp:
                        await self._detach(sid, None, close_kotte=True,
                                           why="the session is no longer connected to its target")

    # ---- hooks --------------------------------------------------------------

    def session_ended(self, sid: str) -> Optional[Awaitable[Any]]:
        """For issue 13's notifications: the session ended on some replica
        (logout, disconnect, expiry, revoke). Drops what this process holds
        for it now; returns the close (awaiting it is optional)."""
        return self._m._forget(sid, ended=True)

    async def session_changed(self, sid: str) -> None:
        """For issue 13's notifications: the session's data changed on some
        replica. Re-checks it now (without sliding its expiry)."""
        await self._revalidate([sid])

    async def aclose(self) -> None:
        """Closes every pool this process re-opened (at shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.registry is not None:
            await self.registry.close_all()
        for sid, held in list(self._held.items()):
            if isinstance(held.conn, FollowedConnection):  # its pool is closed
                await self._detach(sid, None, close_kotte=False, why="shutdown")

    def stats(self) -> dict[str, int]:
        """What this process holds: sessions with a connection here, and the
        registry's pools (for tests and debugging)."""
        out = {"sessions": len(self._held),
               "followed": sum(isinstance(h.conn, FollowedConnection)
                               for h in self._held.values())}
        if self.registry is not None:
            out.update(self.registry.stats())
        return out


def wrap_get_db_connection(original: Callable[..., Any]) -> Callable[..., Any]:
    """Kotte's ``get_db_connection`` dependency, answering a connection this
    replica failed to re-open as Kotte answers a failed connect.

    Same signature (FastAPI reads it), so the same ``Depends(get_session)``.
    """
    sig = inspect.signature(original)

    async def get_db_connection(*args: Any, **kwargs: Any) -> Any:
        bound = sig.bind(*args, **kwargs)
        session = next(iter(bound.arguments.values()), None)
        if isinstance(session, dict) and not session.get(DB_CONNECTION):
            failure = session.get(CONNECT_FAILURE)
            if failure is not None:
                raise failure
        return await original(*args, **kwargs)

    get_db_connection.__signature__ = sig  # type: ignore[attr-defined]
    for attr in ("__name__", "__qualname__", "__doc__", "__module__"):
        setattr(get_db_connection, attr, getattr(original, attr, None))
    get_db_connection.__libkotte_original__ = original  # type: ignore[attr-defined]
    return get_db_connection
