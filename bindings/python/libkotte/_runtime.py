"""The runtime (a libuv loop on a thread of libkotte's own) and handle guards."""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from typing import Any, Callable, Optional

from . import capi
from .errors import ClosedError


class _Guard:
    """Counts the calls in flight on one C object, and frees the object once.

    A C store must not be freed while another thread is inside a call on it
    (the GIL is released during blocking calls). Every call enters the
    guard; close() refuses new calls, waits for the ones in flight, closes
    the objects that depend on this one (the stores on a pool) and then
    frees the C object.

    Once :meth:`own` has been called the guard, not the Python object, owns
    the C object: the runtime keeps the guard until it is closed and closes
    every guard still open before it stops its loop thread (at interpreter
    exit too), and a finalizer closes the guard when the Python object is
    garbage-collected. So a store that a program drops without close()
    (``ConnectionStorage().list_connections(...)``) is freed, not left open
    in C, where it used to keep kotte_runtime_free() waiting at exit. The
    guard holds the C handle, never the Python object, so it does not keep
    that object alive. The C object is freed only in the process that
    opened it: after fork() the child has no loop thread to free it on.
    """

    __slots__ = ("_lock", "_idle", "_users", "_closed", "_what", "_free", "_pid", "_owners",
                 "_dependents", "rank", "__weakref__")

    def __init__(self, what: str) -> None:
        # Reentrant: a finalizer may run (garbage collection) on a thread
        # that is inside close() of another guard, or of this one.
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._users = 0
        self._closed = False
        self._what = what
        self._free: Optional[Callable[[], None]] = None
        self._pid = os.getpid()
        self._owners: list[Any] = []
        self._dependents: dict[int, "_Guard"] = {}
        self.rank = 0

    def own(self, obj: Any, free: Callable[[], None], runtime: "Runtime", rank: int = 0,
            parent: Optional["_Guard"] = None) -> None:
        """Takes over the C object that @p free frees, on behalf of @p obj.

        @p parent (a pool's guard) closes this guard before itself.
        """
        self._free = free
        self.rank = rank
        self._owners = [runtime._open] + ([parent] if parent is not None else [])
        runtime._open.adopt(self)
        if parent is not None:
            parent.adopt(self)
        weakref.finalize(obj, self.close).atexit = False  # Runtime.close() runs at exit

    def adopt(self, child: "_Guard") -> None:
        with self._lock:
            self._dependents[id(child)] = child

    def forget(self, child: "_Guard") -> None:
        with self._lock:
            self._dependents.pop(id(child), None)

    def dependents(self) -> list["_Guard"]:
        with self._lock:
            return sorted(self._dependents.values(), key=lambda g: g.rank)

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
        """Refuses new calls, waits for running ones, closes the dependents and
        frees the C object; False if it was already closed."""
        for child in self.dependents():
            child.close()
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            while self._users:
                self._idle.wait()
            free, self._free = self._free, None
        if free is not None and os.getpid() == self._pid:
            free()
        for owner in self._owners:
            owner.forget(self)
        self._owners = []
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
        # the guards of the stores and pools open on this runtime
        self._open = _Guard("the runtime's stores")
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

    def close(self) -> None:
        """Closes the stores and pools opened on this runtime, then stops its thread. Idempotent."""
        # Stores (rank 0) before pools (rank 1); a pool closes its own stores first anyway.
        for guard in self._open.dependents():
            guard.close()
        if os.getpid() != self._pid:
            # The loop thread does not exist in a forked child: nothing to free safely.
            self._guard.close()
            return
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
