"""Exceptions raised for libkotte's negative status codes.

Every code of the C error table (``KOTTE_ERRNO_MAP`` in ``kotte/common.h``)
maps to one class below. Each class also derives from the closest built-in
exception, so callers can write ``except LookupError`` or ``except TimeoutError``
without knowing libkotte. A code this module does not know yet (a newer C
library) still raises a :class:`KotteError` whose ``name`` comes from the
library itself.
"""

from __future__ import annotations

import re

# How the C library words a PostgreSQL failure in its detail (kotte/common.h):
# "WHO: SQLSTATE XXXXX: PostgreSQL's message; hint: what to do".
_PG_DETAIL = re.compile(r"SQLSTATE ([0-9A-Z]{5}): (.*?)(?:; hint: (.*))?$", re.S)
_HINT = re.compile(r"; hint: (.*)$", re.S)


class KotteError(Exception):
    """A libkotte call failed.

    Attributes:
        code: the negative ``KOTTE_E*`` value.
        name: its symbolic name, e.g. ``"KOTTE_ENOTFOUND"``.
        detail: the library's detail message for the failing call (never a
            secret), or ``""``; also part of ``str(exc)``.
        sqlstate: for a PostgreSQL failure, its SQLSTATE (``"42P01"``), else ``None``.
        pg_message: PostgreSQL's own (primary) message, else ``None``.
        hint: what to do about it (PostgreSQL's hint, or libkotte's), else ``None``.
    """

    code: int = 0
    name: str = "KOTTE_UNKNOWN"

    def __init__(self, message: str = "", *, code: int | None = None, name: str | None = None,
                 detail: str = "") -> None:
        if code is not None:
            self.code = code
        if name is not None:
            self.name = name
        self.detail = detail
        self.sqlstate: str | None = None
        self.pg_message: str | None = None
        self.hint: str | None = None
        m = _PG_DETAIL.search(detail or "")
        if m:
            self.sqlstate, self.pg_message, self.hint = m.group(1), m.group(2), m.group(3)
        else:
            h = _HINT.search(detail or "")
            self.hint = h.group(1) if h else None
        super().__init__(message or self.name)


class InvalidArgumentError(KotteError, ValueError):
    """KOTTE_EINVAL: an argument was rejected."""


class OutOfMemoryError(KotteError, MemoryError):
    """KOTTE_ENOMEM."""


class NotFoundError(KotteError, LookupError):
    """KOTTE_ENOTFOUND: unknown, deleted or expired."""


class AlreadyExistsError(KotteError, ValueError):
    """KOTTE_EEXISTS: for example a saved connection name already used by that user."""


class TooBigError(KotteError, ValueError):
    """KOTTE_ETOOBIG: a value exceeds the configured size limit."""


class BadIdError(KotteError, ValueError):
    """KOTTE_EBADID: an identifier of the wrong shape."""


class BadJSONError(KotteError, ValueError):
    """KOTTE_EBADJSON: invalid JSON, or not a JSON object."""


class CorruptStoreError(KotteError):
    """KOTTE_ECORRUPT: a store file is corrupt or not a libkotte store."""


class StoreIOError(KotteError, OSError):
    """KOTTE_EIO."""


class OperationTimeoutError(KotteError, TimeoutError):
    """KOTTE_ETIMEDOUT: the call's timeout passed (the operation may still complete)."""


class CanceledError(KotteError):
    """KOTTE_ECANCELED: the store was closed while the operation was in flight."""


class VersionError(KotteError):
    """KOTTE_EVERSION: unsupported options or backend struct version."""


class NotSupportedError(KotteError, NotImplementedError):
    """KOTTE_ENOTSUP: the backend does not support this operation."""


class DeadlockError(KotteError, RuntimeError):
    """KOTTE_EDEADLK: a blocking call was made on the runtime's loop thread."""


class ClosedError(KotteError, RuntimeError):
    """KOTTE_ECLOSED: the object is closed or closing."""


class IntegrityError(KotteError):
    """KOTTE_EINTEGRITY: a sealed value failed authentication (tampered or wrong key)."""


class KeyRingError(KotteError):
    """KOTTE_EKEY: an invalid or unknown key."""


class DatabaseError(KotteError):
    """KOTTE_EDB: PostgreSQL reported an error."""


class PoolTimeoutError(KotteError, TimeoutError):
    """KOTTE_EPOOLTIMEOUT: no pooled connection became free in time."""


class TooManyWaitersError(KotteError):
    """KOTTE_ETOOMANYWAITERS: too many requests are waiting for a connection."""


class InternalError(KotteError, RuntimeError):
    """KOTTE_EINTERNAL."""


class LockError(KotteError, OSError):
    """KOTTE_ELOCK: the store file could not be locked."""


class ConflictError(KotteError):
    """KOTTE_ECONFLICT: the record changed concurrently; try again."""


class SchemaError(KotteError):
    """KOTTE_ESCHEMA: the database has no libkotte schema, or an older one.

    ``detail`` names the version found, the version needed and the command
    that migrates (``kotte-migrate``, ``python3 -m libkotte.kotte migrate``).
    """


class ForbiddenError(KotteError, PermissionError):
    """KOTTE_EFORBIDDEN: the object belongs to another user (a query's cancel: Kotte's 403)."""


_BY_NAME: dict[str, type[KotteError]] = {
    "KOTTE_EINVAL": InvalidArgumentError,
    "KOTTE_ENOMEM": OutOfMemoryError,
    "KOTTE_ENOTFOUND": NotFoundError,
    "KOTTE_EEXISTS": AlreadyExistsError,
    "KOTTE_ETOOBIG": TooBigError,
    "KOTTE_EBADID": BadIdError,
    "KOTTE_EBADJSON": BadJSONError,
    "KOTTE_ECORRUPT": CorruptStoreError,
    "KOTTE_EIO": StoreIOError,
    "KOTTE_ETIMEDOUT": OperationTimeoutError,
    "KOTTE_ECANCELED": CanceledError,
    "KOTTE_EVERSION": VersionError,
    "KOTTE_ENOTSUP": NotSupportedError,
    "KOTTE_EDEADLK": DeadlockError,
    "KOTTE_ECLOSED": ClosedError,
    "KOTTE_EINTEGRITY": IntegrityError,
    "KOTTE_EKEY": KeyRingError,
    "KOTTE_EDB": DatabaseError,
    "KOTTE_EPOOLTIMEOUT": PoolTimeoutError,
    "KOTTE_ETOOMANYWAITERS": TooManyWaitersError,
    "KOTTE_EINTERNAL": InternalError,
    "KOTTE_ELOCK": LockError,
    "KOTTE_ECONFLICT": ConflictError,
    "KOTTE_ESCHEMA": SchemaError,
    "KOTTE_EFORBIDDEN": ForbiddenError,
}

# code -> class, filled from the C library's own table on first use, so the
# values are never restated here.
_BY_CODE: dict[int, type[KotteError]] = {}


def _class_for(code: int) -> type[KotteError]:
    cls = _BY_CODE.get(code)
    if cls is None:
        from . import capi

        name = capi.kotte_err_name(code)
        cls = _BY_NAME.get(name, KotteError)
        _BY_CODE[code] = cls
    return cls


def error_for(code: int, detail: str = "") -> KotteError:
    """The exception instance for a negative libkotte code (used by the C wrapper too)."""
    from . import capi

    cls = _class_for(code)
    name = capi.kotte_err_name(code)
    message = capi.kotte_strerror(code)
    if detail:
        message = f"{message}: {detail}"
    return cls(f"{name}: {message}", code=code, name=name, detail=detail)


def check(code: int) -> int:
    """Raises for a negative code; returns it otherwise."""
    if code < 0:
        raise error_for(code)
    return code


__all__ = ["KotteError", "error_for", "check"] + sorted(c.__name__ for c in _BY_NAME.values())
