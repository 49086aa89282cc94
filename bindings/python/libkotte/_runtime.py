"""The runtime (a libuv loop on a thread of libkotte's own) and handle guards."""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from typing import Any, Optional

from . import capi
from .errors import ClosedError


class _Guard:
    """Counts the calls in flight on a C handle so that closing it waits for them.

    A C store must not be freed while another thread is inside a call on it
    (the GIL is released during blocking calls). Every call enters the guard;
    close() refuses new calls and waits for the ones in flight.
    """

    __slots__ = ("_lock", "_idle", "_users", "_closed", "_what")

    def __init__(self, what: str) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._users = 0
        self._closed = False
        self._what = what

    def __enter__(self) -> None:
        with self._lock:
            if self._closed:
                raise ClosedError(f"KOTTE_ECLOSED: {self._what} is closed", code=capi.KOTTE_ECLOSED,
                                  name="KOTTE_ECLOSED")
            self._users += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._closed:
                self._idle.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> bool:
        """Refuses new calls and waits for running ones; False if it was already closed."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            while self._users:
                self._idle.wait()
            return True


class Runtime:
    """A libuv loop on a library-owned thread, used by the blocking calls.

    Stores opened on a runtime must be closed before it (``close()`` does it
    for them). A runtime belongs to the process that created it: after
    ``fork()`` the child must open its own (``default_runtime()`` does).

    Args:
        default_timeout: seconds a blocking call waits when it is given no
            timeout of its own (libkotte's default is 5 s).
    """

    def __init__(self, default_timeout: float = 5.0) -> None:
        opts = capi.kotte_runtime_options()
        opts.default_timeout_ms = max(1, int(default_timeout * 1000))
        self._pid = os.getpid()
        self._guard = _Guard("the runtime")
        self._children: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self._handle = capi.kotte_runtime_new(opts)

    @property
    def handle(self) -> Any:
        """The C handle (for libkotte.capi calls)."""
        if self._guard.closed:
            raise ClosedError("KOTTE_ECLOSED: the runtime is closed", code=capi.KOTTE_ECLOSED,
                              name="KOTTE_ECLOSED")
        if os.getpid() != self._pid:
            raise ClosedError("KOTTE_ECLOSED: this runtime belongs to the parent process "
                              "(open stores again after fork())", code=capi.KOTTE_ECLOSED,
                              name="KOTTE_ECLOSED")
        return self._handle

    @property
    def loop(self) -> Any:
        """The runtime's uv_loop_t (for backends that need one)."""
        return capi.kotte_runtime_loop(self.handle)

    @property
    def closed(self) -> bool:
        return self._guard.closed

    def _register(self, obj: Any) -> None:
        """Remembers a store whose close() must run before the runtime is freed."""
        self._children.add(obj)

    def close(self) -> None:
        """Closes the stores opened on this runtime, then stops its thread. Idempotent."""
        if os.getpid() != self._pid:
            # The loop thread does not exist in a forked child: nothing to free safely.
            self._guard.close()
            return
        # Stores (rank 0) before the pools they use (rank 1).
        for child in sorted(self._children, key=lambda c: getattr(c, "_close_rank", 0)):
            child.close()
        self._children.clear()
        if self._guard.close():
            capi.kotte_runtime_free(self._handle)

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_default: Optional[Runtime] = None
_default_lock = threading.Lock()


def default_runtime() -> Runtime:
    """The process-wide runtime, created on first use (and again after fork())."""
    global _default
    rt = _default
    if rt is not None and rt._pid == os.getpid() and not rt.closed:
        return rt
    with _default_lock:
        rt = _default
        if rt is None or rt._pid != os.getpid() or rt.closed:
            rt = Runtime()
            _default = rt
        return rt


@atexit.register
def _close_default() -> None:
    rt = _default
    if rt is not None and rt._pid == os.getpid():
        rt.close()
