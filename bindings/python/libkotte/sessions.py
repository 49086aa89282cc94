"""Sessions: :class:`SessionStore` (blocking) and :class:`AsyncSessionStore` (asyncio).

Both wrap one C ``kotte_session_store``; the semantics (ids, sliding idle
expiry, absolute maximum age, atomic merge on update, "logout wins") are the
C library's, described in ``include/kotte/session.h``.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, Optional

from . import _aio, capi
from ._runtime import Runtime, _Guard, default_runtime
from .errors import InvalidArgumentError

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

BACKENDS = ("memory", "json_file", "postgresql")

RawSession = tuple[str, str, str, int, int, int, int]


def from_micros(us: int) -> datetime:
    """A timezone-aware UTC datetime from microseconds since the epoch (exact)."""
    return _EPOCH + timedelta(microseconds=us)


def _dumps(data: Optional[Mapping[str, Any]]) -> Optional[str]:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise TypeError(f"session data must be a mapping, not {type(data).__name__}")
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@dataclass(frozen=True)
class Session:
    """One session as the store returned it."""

    id: str
    user_id: str
    data: dict[str, Any]
    created_at: datetime
    last_activity: datetime
    expires_at: datetime
    """When it expires unless used again (the idle expiry, capped by max_expires_at)."""
    max_expires_at: datetime
    """The absolute expiry (created_at + max age); nothing extends it."""

    @classmethod
    def _from_tuple(cls, t: RawSession) -> "Session":
        return cls(t[0], t[1], json.loads(t[2]), from_micros(t[3]), from_micros(t[4]),
                   from_micros(t[5]), from_micros(t[6]))


def _ms(timeout: Optional[float]) -> int:
    return -1 if timeout is None else max(0, int(timeout * 1000))


class SessionStore:
    """A session store over one backend, with blocking calls (the GIL is released).

    Args:
        backend: ``"memory"``, ``"json_file"`` (needs ``path`` and
            ``secret``) or ``"postgresql"`` (needs ``pool`` and ``secret``).
        path: the journal file of the json_file backend.
        idle_timeout: seconds of inactivity after which a session expires;
            every get/update/touch slides it (Kotte: 1800).
        max_age: seconds after creation after which a session expires
            whatever happens (Kotte: 3600).
        max_data_size: largest serialised session data in bytes.
        timeout: seconds a blocking call waits (None: the runtime's default, 5 s).
        runtime: the :class:`Runtime` to run on (default: the pool's, or the
            process-wide one).
        pool: the :class:`libkotte.pg.PgPool` of the postgresql backend.
        secret: the json_file and postgresql backends' key material (at
            least 16 bytes, the same on every replica and every time the
            journal is opened): records are keyed by keyed hashes of the
            session ids and the ids themselves are stored sealed under it,
            so the file or table never holds a usable id.
        touch_interval: seconds; a get or touch writes its slide back only
            once the session's stored last activity is this old (a session
            may then expire up to one interval early, never late). None:
            1 % of the idle timeout (libkotte's default); 0: every read
            writes.
        cache: postgresql only: keep a per-process cache of sessions kept
            true by LISTEN/NOTIFY (one more connection; see
            docs/session-cache.md). Off by default.
        keyring: a :class:`libkotte.credentials.KeyRing`: values written as
            ``{"$secret": value}`` anywhere in session data are then sealed
            by the C store before any backend sees them, and read back as
            ``{"$secret": value}``. Without one such data is refused
            (KeyRingError).

    Use it as a context manager, or call :meth:`close`. ``store.aio`` is the
    asyncio face of the same store.
    """

    def __init__(self, backend: str = "memory", path: Optional[str | os.PathLike[str]] = None, *,
                 idle_timeout: int = 1800, max_age: int = 3600, max_data_size: int = 65536,
                 timeout: Optional[float] = None, runtime: Optional[Runtime] = None,
                 pool: Any = None, secret: Optional[bytes | str] = None,
                 keyring: Any = None, touch_interval: Optional[int] = None,
                 cache: bool = False) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown session backend {backend!r}: use one of {', '.join(BACKENDS)}")
        if idle_timeout <= 0 or max_age <= 0:
            raise ValueError("idle_timeout and max_age must be positive")
        if runtime is None and pool is not None:
            runtime = pool.runtime
        self._runtime = runtime or default_runtime()
        self._timeout_ms = _ms(timeout)
        self._guard = _Guard("the session store")
        rt = self._runtime.handle
        if backend == "memory":
            be = capi.kotte_session_backend_memory_new()
        elif backend == "json_file":
            if path is None:
                raise ValueError("the json_file backend needs a path")
            path = os.fspath(path)
            parent = os.path.dirname(os.path.abspath(path))
            os.makedirs(parent, exist_ok=True)
            be = capi.kotte_session_backend_json_file_new(capi.kotte_runtime_loop(rt), path,
                                                          _secret_bytes(secret))
        else:
            be = _postgresql_backend(pool, self._runtime, secret, cache)
        opts = capi.kotte_session_options()
        opts.idle_timeout_s = int(idle_timeout)
        opts.max_age_s = int(max_age)
        opts.max_data_size = int(max_data_size)
        if touch_interval is not None:
            if not 0 <= int(touch_interval) <= int(idle_timeout):
                raise ValueError("touch_interval must be between 0 and idle_timeout")
            opts.touch_interval_s = int(touch_interval)
        if keyring is not None:
            opts.keyring = keyring._kr  # the store takes its own reference
        try:
            self._st = capi.kotte_session_store_open(rt, be, opts)
        except BaseException:
            capi.kotte_session_backend_free(be)  # on failure the backend is still ours
            raise
        self._rt = rt
        self.backend = capi.kotte_session_store_backend_name(self._st)
        self.idle_timeout = int(idle_timeout)
        self.max_age = int(max_age)
        self.aio = AsyncSessionStore(self)
        self._pool = pool  # a pool closes its stores: keep it while this one lives
        self._guard.own(self, functools.partial(capi.kotte_session_store_free, self._st),
                        self._runtime, parent=pool._guard if pool is not None else None)

    # ---- lifecycle ----------------------------------------------------------

    def close(self) -> None:
        """Frees the store (waits for calls in flight; async ones end with CanceledError).

        A store that is garbage-collected, or still open when its runtime
        closes (at interpreter exit), is closed then."""
        self._guard.close()

    @property
    def closed(self) -> bool:
        return self._guard.closed

    def __enter__(self) -> "SessionStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> "SessionStore":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<libkotte.SessionStore {self.backend} {state}>"

    # ---- operations ---------------------------------------------------------

    def create(self, user_id: str, data: Optional[Mapping[str, Any]] = None) -> Session:
        """A new session for ``user_id`` holding ``data`` (a JSON-serialisable mapping)."""
        js = _dumps(data)
        with self._guard:
            t = capi.kotte_session_create_sync(self._st, user_id, js, self._timeout_ms)
        return Session._from_tuple(t)

    def get(self, session_id: str) -> Session:
        """The session; slides its idle expiry. NotFoundError if dead, BadIdError if malformed."""
        with self._guard:
            t = capi.kotte_session_get_sync(self._st, session_id, self._timeout_ms)
        return Session._from_tuple(t)

    def update(self, session_id: str, patch: Mapping[str, Any]) -> Session:
        """Merges the top-level keys of ``patch`` atomically; returns the merged session."""
        js = _dumps(patch)
        with self._guard:
            t = capi.kotte_session_update_sync(self._st, session_id, js, self._timeout_ms)
        return Session._from_tuple(t)

    def set(self, session_id: str, user_id: str, data: Optional[Mapping[str, Any]] = None,
            ttl: int = 0) -> Session:
        """Creates or replaces the session ``session_id`` (an id *you* generated) with an idle TTL."""
        js = _dumps(data)
        with self._guard:
            t = capi.kotte_session_set_sync(self._st, session_id, user_id, js, int(ttl),
                                            self._timeout_ms)
        return Session._from_tuple(t)

    def delete(self, session_id: str) -> None:
        """Deletes the session; NotFoundError if there was none."""
        with self._guard:
            capi.kotte_session_delete_sync(self._st, session_id, self._timeout_ms)

    def touch(self, session_id: str) -> None:
        """Slides the idle expiry; NotFoundError if the session is dead."""
        with self._guard:
            capi.kotte_session_touch_sync(self._st, session_id, self._timeout_ms)

    def regenerate(self, session_id: str) -> Session:
        """Moves the session to a fresh id (at login); the old id is dead afterwards."""
        with self._guard:
            t = capi.kotte_session_regenerate_sync(self._st, session_id, self._timeout_ms)
        return Session._from_tuple(t)

    def list_user(self, user_id: str) -> list[Session]:
        """The live sessions of ``user_id``, oldest first (does not slide them)."""
        with self._guard:
            ts = capi.kotte_session_list_user_sync(self._st, user_id, self._timeout_ms)
        return [Session._from_tuple(t) for t in ts]

    def delete_user(self, user_id: str) -> int:
        """Deletes every session of ``user_id``; returns how many."""
        with self._guard:
            return capi.kotte_session_delete_user_sync(self._st, user_id, self._timeout_ms)

    def purge_expired(self) -> int:
        """Deletes expired sessions; returns how many."""
        with self._guard:
            return capi.kotte_session_purge_expired_sync(self._st, self._timeout_ms)


class AsyncSessionStore:
    """The asyncio face of a :class:`SessionStore` (``store.aio``).

    Every method starts libkotte's asynchronous operation on the runtime's
    loop thread and awaits its completion through an eventfd watched by the
    running asyncio loop: the loop never blocks and no thread pool is used.
    Cancelling the awaiting task abandons the result (the operation itself
    still completes in the store).
    """

    def __init__(self, store: SessionStore) -> None:
        self._store = store

    @property
    def store(self) -> SessionStore:
        return self._store

    def _start(self, op: int, a: Optional[str] = None, b: Optional[str] = None,
               c: Optional[str] = None, ttl: int = 0) -> "Any":
        st = self._store
        br = _aio.bridge()
        with st._guard:
            return br.start_session_op(st._rt, st._st, op, a, b, c, ttl)

    async def create(self, user_id: str, data: Optional[Mapping[str, Any]] = None) -> Session:
        return Session._from_tuple(await self._start(_aio.S_CREATE, user_id, _dumps(data)))

    async def get(self, session_id: str) -> Session:
        return Session._from_tuple(await self._start(_aio.S_GET, session_id))

    # The *_raw variants skip building a Session: they return the tuple
    # (id, user_id, data_json, created_at, last_activity, expires_at,
    # max_expires_at), times in microseconds since the epoch.

    async def get_raw(self, session_id: str) -> RawSession:
        return await self._start(_aio.S_GET, session_id)

    async def create_raw(self, user_id: str, data: Optional[Mapping[str, Any]] = None) -> RawSession:
        return await self._start(_aio.S_CREATE, user_id, _dumps(data))

    async def update_raw(self, session_id: str, patch: Mapping[str, Any]) -> RawSession:
        js = _dumps(patch)
        if js is None:
            raise InvalidArgumentError("update needs a patch mapping")
        return await self._start(_aio.S_UPDATE, session_id, js)

    async def update(self, session_id: str, patch: Mapping[str, Any]) -> Session:
        js = _dumps(patch)
        if js is None:
            raise InvalidArgumentError("update needs a patch mapping")
        return Session._from_tuple(await self._start(_aio.S_UPDATE, session_id, js))

    async def set(self, session_id: str, user_id: str, data: Optional[Mapping[str, Any]] = None,
                  ttl: int = 0) -> Session:
        return Session._from_tuple(
            await self._start(_aio.S_SET, session_id, user_id, _dumps(data), int(ttl)))

    async def delete(self, session_id: str) -> None:
        await self._start(_aio.S_DELETE, session_id)

    async def touch(self, session_id: str) -> None:
        await self._start(_aio.S_TOUCH, session_id)

    async def regenerate(self, session_id: str) -> Session:
        return Session._from_tuple(await self._start(_aio.S_REGEN, session_id))

    async def list_user(self, user_id: str) -> list[Session]:
        return [Session._from_tuple(t) for t in await self._start(_aio.S_LIST, user_id)]

    async def delete_user(self, user_id: str) -> int:
        return await self._start(_aio.S_DELUSER, user_id)

    async def purge_expired(self) -> int:
        return await self._start(_aio.S_PURGE)


def _postgresql_backend(pool: Any, runtime: Runtime, secret: Optional[bytes | str],
                        cache: bool = False) -> Any:
    from .pg import PgPool

    if not isinstance(pool, PgPool):
        raise TypeError("the postgresql backend needs pool=libkotte.pg.PgPool(...)")
    if pool.runtime is not runtime:
        raise ValueError("the store and its pool must run on the same runtime")
    opts = capi.kotte_session_pg_options()
    opts.cache = 1 if cache else 0
    return capi.kotte_session_backend_postgresql_new_v2(pool.handle,
                                                        _secret_bytes(secret, "postgresql"), opts)


def _secret_bytes(secret: Optional[bytes | str], backend: str = "json_file") -> bytes:
    if secret is None:
        raise ValueError(f"the {backend} backend needs a secret (SESSION_SECRET_KEY)")
    return secret.encode() if isinstance(secret, str) else secret
