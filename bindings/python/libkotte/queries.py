"""The query registry (include/kotte/query.h): running queries, cancellable from any replica.

Blocking calls (the GIL is released); from asyncio, run them in a thread
(``asyncio.to_thread``), as :mod:`libkotte.kotte.query_tracker` does.

Example::

    def on_cancel(req):            # on libkotte's loop thread: return at once
        start_cancelling(req.backend_pid, then=req.done)

    reg = QueryRegistry("postgresql", pool=pool, on_cancel=on_cancel)
    reg.register("req-1", "alice", backend_pid=1234)
    reg.cancel("req-1", "alice")   # from any replica: None, or NotFoundError,
                                   # ForbiddenError, OperationTimeoutError, ...
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from typing import Any, Callable, NamedTuple, Optional

from . import capi
from ._runtime import Runtime, _Guard, default_runtime
from .sessions import from_micros

BACKENDS = ("memory", "postgresql")


class QueryInfo(NamedTuple):
    request_id: str
    user_id: str
    replica_id: str
    backend_pid: int  # 0: not set
    started_at: Any  # datetime (UTC)
    local: bool  # run by this registry


def _info(t: tuple) -> QueryInfo:
    return QueryInfo(t[0], t[1], t[2], t[3], from_micros(t[4]), bool(t[5]))


class CancelRequest:
    """A cancel handed to the owner's handler; answer it once with :meth:`done`."""

    __slots__ = ("request_id", "user_id", "backend_pid", "_req", "_lock", "_unanswered")

    def __init__(self, req: int, request_id: str, user_id: str, backend_pid: int,
                 unanswered: "Optional[_Unanswered]" = None) -> None:
        self.request_id, self.user_id, self.backend_pid = request_id, user_id, backend_pid
        self._req: Optional[int] = req
        self._lock = threading.Lock()
        self._unanswered = unanswered

    def done(self, status: int = 0) -> None:
        """0: cancelled; ``capi.KOTTE_ENOTFOUND``: no longer running; another
        negative code: the attempt failed. Any thread; later calls do nothing."""
        with self._lock:
            req, self._req = self._req, None
        if req is not None:
            if self._unanswered is not None:
                self._unanswered.discard(self)
            capi.kpy_query_cancel_done(req, int(status))

    @property
    def answered(self) -> bool:
        return self._req is None


class _Unanswered:
    """The requests handed to a handler and not answered yet. The registry's
    free waits for their answers, so it answers them itself first ("not
    found": the process is going), and every request that arrives after
    that at once (an asyncio loop that already stopped would never run the
    handler's work, and the free would wait forever)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reqs: set[CancelRequest] = set()
        self.closing = False

    def add(self, r: CancelRequest) -> bool:
        with self._lock:
            if not self.closing:
                self._reqs.add(r)
            return not self.closing

    def discard(self, r: CancelRequest) -> None:
        with self._lock:
            self._reqs.discard(r)

    def answer_all(self) -> None:
        with self._lock:
            self.closing = True
            reqs = list(self._reqs)
        for r in reqs:
            r.done(capi.KOTTE_ENOTFOUND)


def _free(k: Any, unanswered: _Unanswered) -> None:
    unanswered.answer_all()
    capi.kpy_query_registry_free(k)


def _weak_handler(ref: "weakref.ref[QueryRegistry]") -> Callable[..., None]:
    def handler(req: int, request_id: str, user_id: str, backend_pid: int) -> None:
        reg = ref()
        if reg is None:
            capi.kpy_query_cancel_done(req, capi.KOTTE_ENOTFOUND)
            return
        reg._handler(req, request_id, user_id, backend_pid)

    return handler


def _ms(timeout: Optional[float]) -> int:
    return -1 if timeout is None else max(0, int(timeout * 1000))


class QueryRegistry:
    """A query registry on the memory backend (this process only) or on a
    :class:`libkotte.pg.PgPool` (every replica on that database).

    Args:
        on_cancel: called with a :class:`CancelRequest` for a cancel of a
            query of this registry, asked here or by another replica, on
            libkotte's loop thread: it must return at once and answer later
            (``req.done(status)``, any thread). One that raises answers
            "not found". None: such cancels answer NotSupportedError.
        cancel_timeout: seconds to wait for another replica's answer (2).
        stale_after: seconds after which a query is purged (3600, Kotte's limit).
        timeout: seconds a blocking call waits (None: the runtime's default).
    """

    def __init__(self, backend: str = "memory", *, pool: Any = None,
                 on_cancel: Optional[Callable[[CancelRequest], None]] = None,
                 cancel_timeout: float = 2.0, stale_after: int = 3600,
                 timeout: Optional[float] = None, runtime: Optional[Runtime] = None) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown query registry backend {backend!r}: use one of "
                             f"{', '.join(BACKENDS)}")
        if (backend == "postgresql") != (pool is not None):
            raise ValueError("the postgresql backend needs a pool, the memory backend none")
        if runtime is None and pool is not None:
            runtime = pool.runtime
        self._runtime = runtime or default_runtime()
        self._timeout_ms = _ms(timeout)
        self._on_cancel = on_cancel
        self._guard = _Guard("the query registry")
        self._unanswered = _Unanswered()
        # C keeps the handler until the registry is freed: through a weak
        # reference, so that it does not keep this object (whose finalizer
        # frees the registry) alive
        handler = _weak_handler(weakref.ref(self)) if on_cancel is not None else None
        self._k = capi.kpy_query_registry_open(self._runtime.handle,
                                               pool.handle if pool is not None else None,
                                               handler, max(1, int(cancel_timeout * 1000)),
                                               int(stale_after))
        self._reg = capi.kpy_query_registry_handle(self._k)
        self.backend = capi.kpy_query_registry_backend_name(self._k)
        self.replica_id = capi.kpy_query_registry_replica_id(self._k)
        self._pool = pool
        self._guard.own(self, functools.partial(_free, self._k, self._unanswered),
                        self._runtime, parent=pool._guard if pool is not None else None)

    # called by C on the loop thread, with the GIL
    def _handler(self, req: int, request_id: str, user_id: str, backend_pid: int) -> None:
        r = CancelRequest(req, request_id, user_id, backend_pid, self._unanswered)
        if not self._unanswered.add(r):  # being closed
            r.done(capi.KOTTE_ENOTFOUND)
            return
        try:
            self._on_cancel(r)  # type: ignore[misc]
        except BaseException:
            # answered here, so never raised to C (which would answer again)
            logging.getLogger("libkotte").exception("query cancel handler failed")
            r.done(capi.KOTTE_ENOTFOUND)

    def ready(self) -> bool:
        """True when other replicas can reach this one (memory: always)."""
        with self._guard:
            return bool(capi.kpy_query_registry_ready(self._k))

    def register(self, request_id: str, user_id: str, backend_pid: int = 0, *,
                 timeout: Optional[float] = None) -> None:
        with self._guard:
            capi.kotte_query_register_sync(self._reg, request_id, user_id, int(backend_pid),
                                           self._t(timeout))

    def set_backend_pid(self, request_id: str, backend_pid: int, *,
                        timeout: Optional[float] = None) -> None:
        with self._guard:
            capi.kotte_query_set_backend_pid_sync(self._reg, request_id, int(backend_pid),
                                                  self._t(timeout))

    def unregister(self, request_id: str, *, timeout: Optional[float] = None) -> None:
        with self._guard:
            capi.kotte_query_unregister_sync(self._reg, request_id, self._t(timeout))

    def get(self, request_id: str, *, timeout: Optional[float] = None) -> QueryInfo:
        with self._guard:
            return _info(capi.kotte_query_get_sync(self._reg, request_id, self._t(timeout)))

    def list_user(self, user_id: str, *, timeout: Optional[float] = None) -> list[QueryInfo]:
        with self._guard:
            return [_info(t) for t in capi.kotte_query_list_user_sync(self._reg, user_id,
                                                                       self._t(timeout))]

    def cancel(self, request_id: str, user_id: str, *, timeout: Optional[float] = None) -> None:
        """Cancels wherever the query runs; raises NotFoundError,
        ForbiddenError (another user's), OperationTimeoutError (its replica
        did not answer within cancel_timeout), or the handler's error."""
        with self._guard:
            capi.kotte_query_cancel_sync(self._reg, request_id, user_id,
                                         -1 if timeout is None else _ms(timeout))

    def purge(self, *, timeout: Optional[float] = None) -> int:
        """Deletes stale queries and those of gone replicas; returns how many."""
        with self._guard:
            return int(capi.kotte_query_purge_sync(self._reg, self._t(timeout)))

    def _t(self, timeout: Optional[float]) -> int:
        return self._timeout_ms if timeout is None else _ms(timeout)

    def close(self) -> None:
        """Frees the registry (this replica's rows go with it). Answer every
        pending CancelRequest first: the free waits for their answers (those
        still unanswered get "not found" here)."""
        self._unanswered.answer_all()
        self._guard.close()

    @property
    def closed(self) -> bool:
        return self._guard.closed

    def __enter__(self) -> "QueryRegistry":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
