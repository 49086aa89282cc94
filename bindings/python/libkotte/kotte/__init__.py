"""The drop-in for Kotte's FastAPI backend (``e4c5/kotte``, ``backend/app``).

Kotte keeps sessions in process memory and saved connections in a JSON file,
so it runs as one replica. With this package its unmodified backend keeps
both in libkotte stores (memory, json_file or postgresql), so several
replicas behind a load balancer share them.

Two ways in, both with Kotte's ``app`` package importable:

* ``uvicorn libkotte.kotte.asgi:app`` — Kotte's ASGI app with libkotte stores;
* in your own entry point, before Kotte's routes are imported::

      import libkotte.kotte
      libkotte.kotte.install()
      from app.main import app

Settings: see :mod:`libkotte.kotte.config`.
"""

from __future__ import annotations

import importlib
import sys
import types
from dataclasses import dataclass
from typing import Any, Optional

from .config import KotteSettings
from .session_manager import SessionManager

__all__ = ["KotteSettings", "SessionManager", "ConnectionStorage", "install", "Installed"]


def __getattr__(name: str) -> Any:  # ConnectionStorage needs the credential store
    if name == "ConnectionStorage":
        from .connection_storage import ConnectionStorage

        return ConnectionStorage
    raise AttributeError(name)


@dataclass
class Installed:
    """What install() put into Kotte's modules."""

    settings: KotteSettings
    session_manager: SessionManager
    connection_storage: Any
    query_tracker: Any = None


_installed: Optional[Installed] = None


def _kotte_settings(package: str) -> Any:
    try:
        return importlib.import_module(f"{package}.core.config").settings
    except ImportError:
        return None


def install(settings: Optional[KotteSettings] = None, *, package: str = "app") -> Installed:
    """Puts libkotte's session manager and connection storage into Kotte.

    Call it before Kotte's routes are imported (``app.main``, ``app.api``).
    It imports Kotte's ``app.core.auth`` and replaces its ``session_manager``
    (and the ``SessionManager`` alias) with a :class:`SessionManager` whose
    side table is Kotte's own ``_local_session_objects``; it registers a
    module ``app.core.connection_storage`` whose ``connection_storage`` is a
    libkotte :class:`ConnectionStorage` (Kotte's JSON-file module is then
    never executed). It wraps ``app.core.deps.get_db_connection`` so that a
    session whose graph database connection this replica cannot re-open
    answers as a failed connect (:mod:`libkotte.kotte.db_follow`). It replaces
    ``app.services.query_tracker.query_tracker`` (and the ``QueryTracker``
    class) with :class:`libkotte.kotte.query_tracker.QueryTracker`, whose
    cancel works from every replica (:mod:`libkotte.kotte.query_tracker`). Modules of
    ``package`` imported earlier that hold the old objects are updated too.
    Idempotent: a second call returns the first result.

    Args:
        settings: default: the environment and ``.env``, falling back to
            Kotte's ``app.core.config.settings`` for the names Kotte has.
        package: the name of Kotte's top-level package.
    """
    global _installed
    if _installed is not None:
        return _installed
    if settings is None:
        settings = KotteSettings.from_env(kotte_settings=_kotte_settings(package))

    auth = importlib.import_module(f"{package}.core.auth")
    old_manager = getattr(auth, "session_manager", None)
    side = getattr(auth, "_local_session_objects", None)
    manager = SessionManager(settings, side_table=side if isinstance(side, dict) else None,
                             kotte_package=package)
    auth.session_manager = manager
    auth.SessionManager = SessionManager
    old_dep = _wrap_get_db_connection(package)

    storage = _install_connection_storage(settings, package)

    replaced = {id(old_manager): manager} if old_manager is not None else {}
    if storage.old is not None:
        replaced[id(storage.old)] = storage.new
    if old_dep is not None:
        replaced[id(old_dep.old)] = old_dep.new
    _swap_references(package, replaced)

    # a database without libkotte's schema (or an older one) stops the
    # start here, with its remedy, not at the first login (_schema.py)
    from . import _schema

    _schema.startup(settings, manager, storage.new)
    # after the schema is known good (or migrated): the registry's tables
    tracker = _install_query_tracker(settings, package)
    if tracker.old is not None:
        _swap_references(package, {id(tracker.old): tracker.new})
    _installed = Installed(settings, manager, storage.new, tracker.new)
    return _installed


_SWAPPED_NAMES = ("session_manager", "connection_storage", "get_db_connection", "query_tracker")


def _swap_references(package: str, replaced: dict[int, Any]) -> None:
    """Points every module of @p package already imported that holds an
    old object (by identity) under one of Kotte's names at its replacement."""
    prefix = package + "."
    for name, mod in list(sys.modules.items()):
        if mod is None or not (name == package or name.startswith(prefix)):
            continue
        for attr, value in list(vars(mod).items()):
            new = replaced.get(id(value))
            if new is not None and attr in _SWAPPED_NAMES:
                setattr(mod, attr, new)


@dataclass
class _Swap:
    old: Any
    new: Any


def _wrap_get_db_connection(package: str) -> Optional[_Swap]:
    """Wraps Kotte's ``core.deps.get_db_connection`` so that a connection this
    replica failed to re-open answers as a failed connect (see db_follow).
    Routes imported before install() keep Kotte's (DB_UNAVAILABLE then)."""
    from .db_follow import wrap_get_db_connection

    try:
        deps = importlib.import_module(f"{package}.core.deps")
    except ImportError:
        return None
    old = getattr(deps, "get_db_connection", None)
    if old is None or getattr(old, "__libkotte_original__", None) is not None:
        return None
    new = wrap_get_db_connection(old)
    deps.get_db_connection = new  # type: ignore[attr-defined]
    return _Swap(old, new)


def _install_connection_storage(settings: KotteSettings, package: str) -> _Swap:
    from .. import capi

    if not hasattr(capi, "kotte_cred_store_open"):
        import logging

        logging.getLogger("libkotte.kotte").warning(
            "this libkotte build has no credential store: Kotte keeps its own connection storage")
        return _Swap(None, None)
    from .connection_storage import ConnectionStorage

    name = f"{package}.core.connection_storage"
    storage = ConnectionStorage(settings=settings)
    mod = sys.modules.get(name)
    old = getattr(mod, "connection_storage", None) if mod is not None else None
    if mod is None:
        mod = types.ModuleType(name, "Saved connections in a libkotte credential store "
                                     "(registered by libkotte.kotte.install()).")
        mod.__file__ = __file__
        sys.modules[name] = mod
        parent = importlib.import_module(f"{package}.core")
        setattr(parent, "connection_storage", mod)
    mod.ConnectionStorage = ConnectionStorage  # type: ignore[attr-defined]
    mod.connection_storage = storage  # type: ignore[attr-defined]
    return _Swap(old, storage)


def _install_query_tracker(settings: KotteSettings, package: str) -> _Swap:
    """Kotte's ``services.query_tracker`` on libkotte's query registry (a
    Kotte without that module keeps nothing to replace)."""
    name = f"{package}.services.query_tracker"
    try:
        mod = importlib.import_module(name)
    except ImportError as exc:
        if exc.name is not None and name.startswith(exc.name):  # no such module
            return _Swap(None, None)
        raise
    from .query_tracker import QueryTracker, shared_registry

    shared_registry(settings)  # opened now: it answers other replicas from the start
    old = getattr(mod, "query_tracker", None)
    new = QueryTracker(package=package)
    mod.query_tracker = new  # type: ignore[attr-defined]
    mod.QueryTracker = QueryTracker  # type: ignore[attr-defined]
    return _Swap(old, new)
