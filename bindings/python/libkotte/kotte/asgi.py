"""ASGI entry point: Kotte's FastAPI app with libkotte stores.

    cd kotte/backend && uvicorn libkotte.kotte.asgi:app

Kotte's ``app`` package must be importable: run from Kotte's ``backend``
directory (uvicorn puts the working directory on ``sys.path``), or set
``KOTTE_BACKEND_DIR`` to it. ``KOTTE_APP`` names another ``module:attribute``
than ``app.main:app``.
"""

from __future__ import annotations

import importlib
import os
import sys

_backend = os.environ.get("KOTTE_BACKEND_DIR")
if _backend and _backend not in sys.path:
    sys.path.insert(0, _backend)
if "" not in sys.path and os.getcwd() not in sys.path:
    sys.path.insert(0, os.getcwd())

_module, _, _attr = os.environ.get("KOTTE_APP", "app.main:app").partition(":")

from . import install  # noqa: E402

installed = install(package=_module.split(".")[0])
app = getattr(importlib.import_module(_module), _attr or "app")
