"""Saved connections: :class:`KeyRing` and :class:`CredentialStore` (blocking).

The semantics are the C library's (``include/kotte/credential.h``): random
UUID ids, a name unique per user, username and password sealed with
XChaCha20-Poly1305 under the key ring's current key (bound to user,
connection and field), list never opens a secret, an unknown, foreign or
malformed id is NotFoundError, rewrap re-seals online under the current key.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Optional

from . import capi
from ._runtime import Runtime, _Guard, default_runtime
from .sessions import from_micros

if not hasattr(capi, "kotte_cred_store_open"):
    raise ImportError("this libkotte build has no credential store (include/kotte/credential.h)")

BACKENDS = ("memory", "json_file", "postgresql")

# Bits of kotte_cred_input.fields (what an update changes).
FIELD_BITS = {
    "name": capi.KOTTE_CRED_NAME,
    "host": capi.KOTTE_CRED_HOST,
    "port": capi.KOTTE_CRED_PORT,
    "database": capi.KOTTE_CRED_DATABASE,
    "sslmode": capi.KOTTE_CRED_SSLMODE,
    "username": capi.KOTTE_CRED_USERNAME,
    "password": capi.KOTTE_CRED_PASSWORD,
}


class KeyRing:
    """Master keys: ``current`` seals and opens, ``previous`` ones only open.

    Each key is 64 hex digits, base64 of 32 bytes (a Fernet key works), or a
    passphrase of at least 32 characters (stretched with Argon2id, ~0.1-0.3 s).
    ``previous`` is a comma-separated string or a list.
    """

    def __init__(self, current: str, previous: Optional[str | list[str]] = None) -> None:
        if isinstance(previous, (list, tuple)):
            previous = ",".join(previous)
        self._kr = capi.kotte_keyring_new(current, previous or None)

    @classmethod
    def from_env(cls) -> "KeyRing":
        """From MASTER_ENCRYPTION_KEY and MASTER_ENCRYPTION_KEYS_PREVIOUS."""
        self = cls.__new__(cls)
        self._kr = capi.kotte_keyring_from_env()
        return self

    @property
    def current_id(self) -> str:
        return capi.kotte_keyring_current_id(self._kr)

    @property
    def key_ids(self) -> list[str]:
        return [capi.kotte_keyring_key_id(self._kr, i)
                for i in range(capi.kotte_keyring_count(self._kr))]

    def __del__(self) -> None:
        kr = getattr(self, "_kr", None)
        if kr is not None and capi is not None:  # None: interpreter shutdown
            capi.kotte_keyring_free(kr)  # stores keep their own reference
            self._kr = None


@dataclass(frozen=True)
class Credential:
    """A saved connection. ``username`` and ``password`` are set only by get()."""

    id: str
    user_id: str
    name: str
    host: str
    port: int
    database: str
    sslmode: Optional[str]
    username: Optional[str]
    password: Optional[str]
    key_id: str
    created_at: datetime
    updated_at: datetime
    created_at_iso: str
    updated_at_iso: str

    @classmethod
    def _from_tuple(cls, t: tuple[Any, ...]) -> "Credential":
        return cls(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9],
                   from_micros(t[10]), from_micros(t[11]), t[12], t[13])

    def __repr__(self) -> str:  # never print the secrets
        return (f"Credential(id={self.id!r}, user_id={self.user_id!r}, name={self.name!r}, "
                f"host={self.host!r}, port={self.port}, database={self.database!r})")


def _ms(timeout: Optional[float]) -> int:
    return -1 if timeout is None else max(0, int(timeout * 1000))


class CredentialStore:
    """Saved connections over one backend, with blocking calls (GIL released).

    Args:
        backend: ``"memory"``, ``"json_file"`` (needs ``path``) or ``"postgresql"``.
        path: the journal of the json_file backend (not Kotte's connections.json:
            import that with ``python3 -m libkotte.kotte import-connections``).
        keyring: the :class:`KeyRing` (default: from the environment).
        timeout: seconds a blocking call waits (None: the runtime's default).
        runtime, pool: as for :class:`libkotte.SessionStore`.
    """

    def __init__(self, backend: str = "memory", path: Optional[str | os.PathLike[str]] = None, *,
                 keyring: Optional[KeyRing] = None, timeout: Optional[float] = None,
                 runtime: Optional[Runtime] = None, pool: Any = None) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown credential backend {backend!r}: use one of {', '.join(BACKENDS)}")
        if runtime is None and pool is not None:
            runtime = pool.runtime
        self._runtime = runtime or default_runtime()
        self._timeout_ms = _ms(timeout)
        self._guard = _Guard("the credential store")
        keyring = keyring or KeyRing.from_env()
        rt = self._runtime.handle
        if backend == "memory":
            be = capi.kotte_cred_backend_memory_new()
        elif backend == "json_file":
            if path is None:
                raise ValueError("the json_file backend needs a path")
            path = os.fspath(path)
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            be = capi.kotte_cred_backend_json_file_new(capi.kotte_runtime_loop(rt), path)
        else:
            if not hasattr(capi, "kotte_cred_backend_postgresql_new"):
                raise NotImplementedError("this libkotte build has no postgresql credential backend")
            from .pg import PgPool

            if not isinstance(pool, PgPool):
                raise TypeError("the postgresql backend needs pool=libkotte.pg.PgPool(...)")
            be = capi.kotte_cred_backend_postgresql_new(pool.handle)
        try:
            self._st = capi.kotte_cred_store_open(rt, be, keyring._kr, capi.kotte_cred_options())
        except BaseException:
            capi.kotte_cred_backend_free(be)
            raise
        self.backend = capi.kotte_cred_store_backend_name(self._st)
        self._pool = pool  # a pool closes its stores: keep it while this one lives
        self._guard.own(self, functools.partial(capi.kotte_cred_store_free, self._st),
                        self._runtime, parent=pool._guard if pool is not None else None)

    def close(self) -> None:
        """Frees the store (waits for calls in flight). A store that is
        garbage-collected, or still open when its runtime closes, is closed then."""
        self._guard.close()

    @property
    def closed(self) -> bool:
        return self._guard.closed

    def __enter__(self) -> "CredentialStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def save(self, user_id: str, *, name: str, host: str, port: int, database: str,
             username: str, password: str, sslmode: Optional[str] = None,
             id: Optional[str] = None, created_at: Optional[datetime] = None,
             updated_at: Optional[datetime] = None) -> Credential:
        """Saves a new connection; AlreadyExistsError if the user has one of that name.

        ``id``, ``created_at`` and ``updated_at`` are for imports only.
        """
        rec: dict[str, Any] = dict(name=name, host=host, port=int(port), database=database,
                                   username=username, password=password, sslmode=sslmode, id=id)
        if created_at is not None:
            rec["created_at"] = _micros(created_at)
        if updated_at is not None:
            rec["updated_at"] = _micros(updated_at)
        with self._guard:
            return Credential._from_tuple(
                capi.kotte_cred_save_sync(self._st, user_id, rec, self._timeout_ms))

    def get(self, user_id: str, connection_id: str) -> Credential:
        """The connection with username and password opened; NotFoundError if not the user's."""
        with self._guard:
            return Credential._from_tuple(
                capi.kotte_cred_get_sync(self._st, user_id, connection_id, self._timeout_ms))

    def list_user(self, user_id: str) -> list[Credential]:
        """The user's connections, oldest first, without secrets."""
        with self._guard:
            ts = capi.kotte_cred_list_user_sync(self._st, user_id, self._timeout_ms)
        return [Credential._from_tuple(t) for t in ts]

    def update(self, user_id: str, connection_id: str, **changes: Any) -> Credential:
        """Changes the given fields (name, host, port, database, sslmode, username, password)."""
        unknown = set(changes) - set(FIELD_BITS)
        if unknown:
            raise TypeError(f"unknown connection fields: {', '.join(sorted(unknown))}")
        rec = dict(changes)
        rec["fields"] = sum(FIELD_BITS[k] for k in changes)
        with self._guard:
            return Credential._from_tuple(capi.kotte_cred_update_sync(
                self._st, user_id, connection_id, rec, self._timeout_ms))

    def delete(self, user_id: str, connection_id: str) -> None:
        """Deletes the connection; NotFoundError if it is not the user's."""
        with self._guard:
            capi.kotte_cred_delete_sync(self._st, user_id, connection_id, self._timeout_ms)

    def rewrap(self) -> dict[str, Any]:
        """Re-seals every record under the current key; returns the report."""
        with self._guard:
            return capi.kotte_cred_rewrap_sync(self._st, self._timeout_ms)

    def key_usage(self) -> dict[str, Any]:
        """How many records each key seals."""
        with self._guard:
            return capi.kotte_cred_key_usage_sync(self._st, self._timeout_ms)


def _micros(t: datetime) -> int:
    if t.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return (t - from_micros(0)) // timedelta(microseconds=1)
