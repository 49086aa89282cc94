"""The asyncio side of the bridge in src/kpy_aio.c.

An operation is *started* from the asyncio thread: the C shim copies its
arguments and posts it to the runtime's loop thread (a mutex, a malloc and
an eventfd write: no I/O, no waiting), and the call returns a future. The
libkotte callback queues the result in C and writes an eventfd that this
module watches with ``loop.add_reader``; the reader drains every finished
operation in one call and resolves their futures. So the asyncio loop never
waits on libkotte, and no thread pool or extra Python thread is involved.

There is one bridge (one eventfd) per asyncio loop, created on first use.

Completions are resolved RESOLVE_BATCH at a time, one batch per loop
iteration: every resolved future wakes its task in the next iteration, so
a drain of 1000 results would otherwise resume 1000 tasks in one iteration
(tens of ms of Python) and delay every timer and I/O callback meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import weakref
from typing import Any, Optional

from . import capi
from .errors import error_for

# Operation codes (enum in kpy_aio.h).
S_CREATE = capi.KPY_S_CREATE
S_GET = capi.KPY_S_GET
S_UPDATE = capi.KPY_S_UPDATE
S_SET = capi.KPY_S_SET
S_DELETE = capi.KPY_S_DELETE
S_TOUCH = capi.KPY_S_TOUCH
S_REGEN = capi.KPY_S_REGEN
S_LIST = capi.KPY_S_LIST
S_DELUSER = capi.KPY_S_DELUSER
S_PURGE = capi.KPY_S_PURGE

RESOLVE_BATCH = 64


class _Bridge:
    __slots__ = ("_loop", "_q", "_fd", "_pending", "_next", "_backlog", "_resolving",
                 "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._q = capi.kpy_aioq_new()
        self._fd = capi.kpy_aioq_fd(self._q)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next = 1
        self._backlog: collections.deque[tuple[int, int, Any]] = collections.deque()
        self._resolving = False
        loop.add_reader(self._fd, self._drain)

    def start_session_op(self, rt: Any, store: Any, op: int, a: Optional[str] = None,
                         b: Optional[str] = None, c: Optional[str] = None,
                         ttl: int = 0) -> "asyncio.Future[Any]":
        token = self._next
        self._next = token + 1
        capi.kpy_session_start(self._q, rt, store, op, token, a, b, c, ttl)  # raises if refused
        fut = self._loop.create_future()
        self._pending[token] = fut
        return fut

    def _drain(self) -> None:
        if self._q is None:
            return
        self._backlog.extend(capi.kpy_aioq_drain(self._q))
        if not self._resolving:
            self._resolve()

    def _resolve(self) -> None:
        pending, backlog = self._pending, self._backlog
        for _ in range(min(RESOLVE_BATCH, len(backlog))):
            token, status, payload = backlog.popleft()
            fut = pending.pop(token, None)
            if fut is None or fut.done():  # cancelled by its awaiter: drop the result
                continue
            if status < 0:  # the payload of a failure is its detail
                fut.set_exception(error_for(status, payload if isinstance(payload, str) else ""))
            else:
                fut.set_result(payload)
        self._resolving = bool(backlog)
        if backlog:  # the rest in the next iteration, after timers and I/O
            self._loop.call_soon(self._resolve)

    def close(self) -> None:
        if self._q is None:
            return
        if not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        # Operations still in flight keep the C queue alive until they end.
        capi.kpy_aioq_release(self._q)
        self._q = None
        self._backlog.clear()
        for fut in self._pending.values():
            if not fut.done():
                fut.cancel()
        self._pending.clear()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing sensible to do
            pass


_bridges: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Bridge]" = (
    weakref.WeakKeyDictionary())


def bridge() -> _Bridge:
    """The bridge of the running asyncio loop (created on first use)."""
    loop = asyncio.get_running_loop()
    b = _bridges.get(loop)
    if b is None:
        b = _Bridge(loop)
        _bridges[loop] = b
    return b
