"""libkotte: shared session and credential stores for Kotte, from Python.

A thin SWIG binding (:mod:`libkotte.capi`) of the C library's blocking
facade, with the Pythonic layer in plain Python:

* :class:`SessionStore` — blocking calls (GIL released), context manager;
  ``store.aio`` is an :class:`AsyncSessionStore` whose coroutines never
  block the asyncio loop;
* :mod:`libkotte.errors` — one exception class per ``KOTTE_E*`` code;
* :mod:`libkotte.kotte` — the drop-in for Kotte's FastAPI backend.

Example::

    from libkotte import SessionStore

    with SessionStore("json_file", "data/sessions.journal",
                      secret=os.environ["SESSION_SECRET_KEY"]) as store:
        s = store.create("alice", {"graph_context": None})
        print(store.get(s.id).data)
"""

from . import capi
from ._runtime import Runtime, default_runtime
from .errors import *  # noqa: F401,F403  (the exception classes)
from .errors import KotteError
from .sessions import AsyncSessionStore, Session, SessionStore

__version__: str = capi.kotte_version()

__all__ = [
    "AsyncSessionStore",
    "KotteError",
    "Runtime",
    "Session",
    "SessionStore",
    "default_runtime",
    "errors",
]
