"""ASGI entry point: Kotte's FastAPI app with libkotte stores.

    cd kotte/backend && uvicorn libkotte.kotte.asgi:app

Kotte's ``app`` package must be importable: run from Kotte's ``backend``
directory (uvicorn puts the working directory on ``sys.path``), or set
``KOTTE_BACKEND_DIR`` to it. ``KOTTE_APP`` names another ``module:attribute``
than ``app.main:app``. At shutdown, after Kotte's own lifespan, the graph
database pools this replica re-opened for sessions connected elsewhere are
closed (see :mod:`libkotte.kotte.db_follow`).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from typing import Any, AsyncIterator

_backend = os.environ.get("KOTTE_BACKEND_DIR")
if _backend and _backend not in sys.path:
    sys.path.insert(0, _backend)
if "" not in sys.path and os.getcwd() not in sys.path:
    sys.path.insert(0, os.getcwd())

_module, _, _attr = os.environ.get("KOTTE_APP", "app.main:app").partition(":")

from . import install  # noqa: E402
from ..errors import SchemaError  # noqa: E402

try:
    installed = install(package=_module.split(".")[0])
except SchemaError as _e:  # stop the server with the remedy, not a traceback
    raise SystemExit(f"libkotte: {_e.detail or _e}") from None
_kotte_app = getattr(importlib.import_module(_module), _attr or "app")


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    """Kotte's app; ``GET /api/v1/ready`` answers 503 with the reason while
    the database's schema is missing or older than this libkotte needs
    (otherwise Kotte answers it)."""
    if scope["type"] == "http" and scope["path"] == "/api/v1/ready":
        import asyncio
        import json

        from . import _schema

        reason = await asyncio.get_running_loop().run_in_executor(
            None, _schema.problem, installed.settings)
        if reason:
            body = json.dumps({"status": "not_ready", "reason": reason}).encode()
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
    await _kotte_app(scope, receive, send)


def _close_pools_at_shutdown(asgi_app: Any) -> None:
    router = getattr(asgi_app, "router", None)
    inner = getattr(router, "lifespan_context", None)
    if inner is None:
        return

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state:
            yield state
        await installed.session_manager.follow.aclose()

    router.lifespan_context = lifespan


_close_pools_at_shutdown(_kotte_app)
