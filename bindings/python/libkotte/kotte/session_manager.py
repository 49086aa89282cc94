"""``SessionManager``: Kotte's session manager over a libkotte session store.

Same methods, arguments and results as Kotte's ``app.core.auth`` managers:

* ``create_session(user_id, connection_config=None) -> str``
* ``get_session(session_id) -> dict | None`` (slides the idle expiry)
* ``update_session(session_id, updates) -> None`` (no-op for a dead session)
* ``delete_session(session_id) -> None``
* ``get_user_id(session_id) -> str | None``

A session dict holds ``user_id``, ``created_at`` and ``last_activity``
(timezone-aware UTC datetimes, from the store's own bookkeeping), and the
data keys: ``connection_config``, ``graph_context``, ``csrf_token`` and
whatever ``update_session`` added.

Differences that come from sharing sessions between processes:

* values that JSON cannot hold (Kotte keeps a live pool under
  ``db_connection``) stay in a per-process side table, as Kotte's Redis
  manager keeps them in ``_local_session_objects``; every other value is in
  the store, shared by all replicas;
* the password inside ``connection_config`` and the ``csrf_token`` are
  marked as secrets, which the C session store seals with the key ring
  (MASTER_ENCRYPTION_KEY) before any backend sees them and opens on read;
  a session whose secret this replica cannot open (a key it lacks, a
  tampered blob) reads as None. Session ids themselves are stored only as
  keyed hashes (json_file and postgresql, keys from SESSION_SECRET_KEY);
* a store failure (database down, I/O error) raises a
  :class:`libkotte.KotteError` instead of looking like a logged-out session;
* ``_sessions`` (which Kotte's tests use) is a view of the sessions this
  process created or read that are still alive, not of every replica's;
* a session connected on another replica gets its ``db_connection`` on this
  one too, and loses it here when it ends anywhere
  (:mod:`libkotte.kotte.db_follow`); ``get_session(..., follow=False)``
  reads without that.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, Awaitable, Optional

from ..errors import BadIdError, IntegrityError, KeyRingError, KotteError, NotFoundError
from ..sessions import SessionStore, from_micros
from . import _secrets
from .config import KotteSettings
from .db_follow import DB_CONNECTION, Follow

log = logging.getLogger("libkotte.kotte")

# Keys whose values the store keeps itself; an update cannot change them.
_RESERVED = frozenset(("user_id", "created_at", "last_activity"))
# (key, field) pairs sealed before they are stored.
_SECRET_FIELDS = (("connection_config", "password"),)
# Top-level keys whose whole value is sealed before it is stored.
_SECRET_KEYS = frozenset(("csrf_token",))
_GONE = (NotFoundError, BadIdError)
# A secret inside the session that this process cannot open.
_UNREADABLE = (KeyRingError, IntegrityError)

PURGE_INTERVAL_S = 300.0


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def open_session_store(settings: KotteSettings) -> SessionStore:
    """The store SESSION_STORAGE_TYPE asks for."""
    kind = settings.session_storage_type
    common = dict(idle_timeout=settings.session_idle_timeout, max_age=settings.session_max_age,
                  keyring=_secrets.keyring(settings))
    if kind == "memory":
        return SessionStore("memory", **common)
    if kind == "json_file":
        return SessionStore("json_file", settings.session_storage_path,
                            secret=_secrets.session_secret(settings), **common)
    from ._pg import session_secret, shared_pool

    return SessionStore("postgresql", pool=shared_pool(settings), secret=session_secret(settings),
                        **common)


class SessionManager:
    """Kotte's session manager, backed by libkotte (see the module docstring).

    Args:
        settings: where and how to store sessions (default: from the environment).
        store: use this store instead of opening one from ``settings``.
        side_table: the dict that holds non-serialisable values per session
            (``install()`` passes Kotte's ``_local_session_objects``).
        kotte_package: the name of Kotte's package (``install()`` passes it);
            with it a session connected on another replica gets a
            ``db_connection`` opened with that package's ``DatabaseConnection``.
    """

    def __init__(self, settings: Optional[KotteSettings] = None, *,
                 store: Optional[SessionStore] = None,
                 side_table: Optional[dict[str, dict[str, Any]]] = None,
                 kotte_package: Optional[str] = None) -> None:
        self.settings = settings if settings is not None else KotteSettings.from_env()
        self._given_store = store
        self._store: Optional[SessionStore] = None
        self._pid = 0
        self._lock = threading.Lock()
        self._side: dict[str, dict[str, Any]] = side_table if side_table is not None else {}
        # session id -> (user id, absolute expiry in µs) of the sessions this
        # process created or read; backs the `_sessions` view.
        self._index: dict[str, tuple[str, int]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._last_purge = time.monotonic()
        self._sessions = SessionsView(self)
        self.follow = Follow(self, kotte_package)

    # ---- plumbing -----------------------------------------------------------

    @property
    def store(self) -> SessionStore:
        """The libkotte store (opened on first use, and again in a forked child)."""
        st = self._store
        if st is not None and self._pid == os.getpid() and not st.closed:
            return st
        with self._lock:
            st = self._store
            if st is None or self._pid != os.getpid() or st.closed:
                st = self._given_store or open_session_store(self.settings)
                if self._pid and self._pid != os.getpid():
                    self._index.clear()  # the parent's view
                self._store, self._pid = st, os.getpid()
            return st

    def close(self) -> None:
        """Closes the store this manager opened (a store passed in stays open)."""
        st, self._store = self._store, None
        if st is not None and st is not self._given_store and self._pid == os.getpid():
            st.close()

    def _split(self, user_id: str, values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(what goes to the store, sealed; what stays in this process)."""
        stored: dict[str, Any] = {}
        local: dict[str, Any] = {}
        for key, value in values.items():
            if key in _RESERVED:
                log.debug("update of the store-managed key %r ignored", key)
            elif _jsonable(value):
                stored[key] = self._seal(user_id, key, value)
            else:
                local[key] = value
        return stored, local

    @staticmethod
    def _seal(user_id: str, key: str, value: Any) -> Any:
        """Marks the secret fields; the C store seals them."""
        if key in _SECRET_KEYS and value is not None:
            return _secrets.mark(value)
        for k, field in _SECRET_FIELDS:
            if k == key and isinstance(value, dict) and value.get(field) is not None:
                value = dict(value)
                value[field] = _secrets.mark(value[field])
        return value

    def _to_dict(self, sid: str, user_id: str, data: dict[str, Any], created: datetime,
                 last: datetime) -> dict[str, Any]:
        _secrets.unmark(data)
        local = self._side.get(sid)
        if local:
            data.update(local)
        data["user_id"] = user_id
        data["created_at"] = created
        data["last_activity"] = last
        return data

    def _from_raw(self, t: tuple[str, str, str, int, int, int, int]) -> dict[str, Any]:
        self._index[t[0]] = (t[1], t[6])
        return self._to_dict(t[0], t[1], json.loads(t[2]), from_micros(t[3]), from_micros(t[4]))

    def _forget(self, sid: str, *, ended: bool = False) -> Optional[Awaitable[Any]]:
        """Drops what this process keeps of the session; returns the close of
        its database connection, if any (see Follow.forget)."""
        self._index.pop(sid, None)
        self._side.pop(sid, None)
        return self.follow.forget(sid, ended=ended)

    def _keep(self, task: "asyncio.Task[Any]") -> None:
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _maybe_purge(self) -> None:
        now = time.monotonic()
        if now - self._last_purge < PURGE_INTERVAL_S:
            return
        self._last_purge = now
        self._keep(asyncio.ensure_future(self.purge_expired()))

    async def purge_expired(self) -> int:
        """Deletes expired sessions from the store and drops what this process kept of them."""
        try:
            n = await self.store.aio.purge_expired()
        except KotteError as e:
            log.warning("purging expired sessions failed: %s", e)
            return 0
        now_us = int(time.time() * 1_000_000)
        closing = []
        for sid, (_, max_exp) in list(self._index.items()):
            if max_exp < now_us:
                closing.append(self._forget(sid, ended=True))
        for sid in list(self._side):
            if sid not in self._index:
                closing.append(self._forget(sid, ended=True))
        waits = [c for c in closing if c is not None]
        if waits:
            await asyncio.gather(*waits, return_exceptions=True)
        return n

    # ---- Kotte's interface --------------------------------------------------

    async def create_session(self, user_id: str, connection_config: Optional[dict] = None) -> str:
        data = {
            "connection_config": connection_config or {},
            "graph_context": None,
            "csrf_token": secrets.token_urlsafe(32),
        }
        stored, local = self._split(user_id, data)
        t = await self.store.aio.create_raw(user_id, stored)
        sid = t[0]
        self._index[sid] = (t[1], t[6])
        if local:
            self._side[sid] = local
        log.info("created session %s... for user %s", sid[:8], user_id)
        self._maybe_purge()
        return sid

    async def get_session(self, session_id: str, *, follow: bool = True) -> Optional[dict]:
        if not isinstance(session_id, str) or not session_id:
            return None
        gen = self.follow.gen(session_id)
        try:
            t = await self.store.aio.get_raw(session_id)
        except _GONE:
            # ended here or on another replica: what we hold for it goes first
            closing = self._forget(session_id, ended=True)
            if closing is not None:
                await closing
            return None
        except _UNREADABLE as e:
            log.warning("session %s... holds a secret this process cannot open (%s): "
                        "treated as invalid", session_id[:8], e.name)
            return None
        data = self._from_raw(t)
        # A db_connection put or taken while we read was judged by whoever did
        # it against a read at least as new as ours: leave it be.
        if follow and self.follow.gen(session_id) == gen:
            await self.follow.reconcile(session_id, data)
        return data

    async def update_session(self, session_id: str, updates: dict) -> None:
        if not isinstance(session_id, str) or not session_id:
            return
        aio = self.store.aio
        entry = self._index.get(session_id)
        try:
            if entry is None:  # a session another replica created: learn its user
                entry = (await aio.get_raw(session_id))[1], 0
            stored, local = self._split(entry[0], updates)
            if stored:
                t = await aio.update_raw(session_id, stored)
                self._index[session_id] = (t[1], t[6])
            else:  # nothing for the store: still a use of the session
                await aio.touch(session_id)
        except _GONE:
            closing = self._forget(session_id, ended=True)
            if closing is not None:
                await closing
            return
        except _UNREADABLE as e:
            log.warning("session %s... holds a secret this process cannot open (%s): "
                        "update dropped", session_id[:8], e.name)
            return
        side = self._side.get(session_id)
        if side:
            for key in stored:
                side.pop(key, None)
        closing = None
        if DB_CONNECTION in stored:
            closing = self.follow.taken(session_id)
        if local:
            self._side.setdefault(session_id, {}).update(local)
            if DB_CONNECTION in local:
                closing = self.follow.attached(session_id, local[DB_CONNECTION],
                                               updates.get("connection_config"))
        if closing is not None:
            await closing

    async def delete_session(self, session_id: str) -> None:
        if not isinstance(session_id, str) or not session_id:
            return
        # Kotte's routes disconnect their db_connection before they delete;
        # a shared pool of this process is let go here.
        closing = self._forget(session_id)
        try:
            await self.store.aio.delete(session_id)
        except _GONE:
            return
        finally:
            if closing is not None:
                await closing
        log.info("deleted session %s...", session_id[:8])

    async def get_user_id(self, session_id: str) -> Optional[str]:
        session = await self.get_session(session_id, follow=False)
        return session["user_id"] if session else None

    def __repr__(self) -> str:
        return (f"<libkotte.kotte.SessionManager {self.settings.session_storage_type}"
                f" known={len(self._index)}>")


class SessionsView(Mapping[str, dict]):
    """``session_manager._sessions``: the live sessions this process knows.

    Blocking (it uses the store's blocking calls, which do not slide the
    idle expiry): meant for tests and debugging, as Kotte's tests use it.
    ``clear()`` deletes those sessions from the store.
    """

    def __init__(self, manager: SessionManager) -> None:
        self._m = manager

    def _live(self) -> dict[str, dict[str, Any]]:
        m = self._m
        users = {u for u, _ in list(m._index.values())}
        found: dict[str, Any] = {}
        for user in users:
            for s in m.store.list_user(user):
                found[s.id] = s
        live: dict[str, dict[str, Any]] = {}
        for sid in list(m._index):
            s = found.get(sid)
            if s is None:
                m._forget(sid)
            else:
                live[sid] = m._to_dict(sid, s.user_id, dict(s.data), s.created_at,
                                       s.last_activity)
        return live

    def __getitem__(self, session_id: str) -> dict[str, Any]:
        return self._live()[session_id]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._live()))

    def __len__(self) -> int:
        return len(self._live())

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._live()

    def keys(self):  # type: ignore[override]
        return self._live().keys()

    def values(self):  # type: ignore[override]
        return self._live().values()

    def items(self):  # type: ignore[override]
        return self._live().items()

    def clear(self) -> None:
        """Deletes every session this process knows from the store."""
        m = self._m
        store = m.store
        for sid in list(m._index):
            try:
                store.delete(sid)
            except _GONE:
                pass
        m._index.clear()
        m._side.clear()
        m.follow.forget_all()

    def __repr__(self) -> str:
        return f"<sessions view of {self._m!r}>"
