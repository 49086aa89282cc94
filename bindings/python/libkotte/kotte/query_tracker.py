"""Kotte's query tracker (``app.services.query_tracker``) on libkotte's query registry.

Kotte keeps the queries it runs in a tracker so that
``POST /api/v1/queries/{request_id}/cancel`` can stop one. Its tracker is
process memory (or metadata in Redis whose cancel still needs the query's
``db_conn`` in the local process), so behind a load balancer a cancel that
lands on another replica answers "not found". This one has Kotte's method
names, signatures, sync/async-ness and error behaviour, on a
:class:`libkotte.queries.QueryRegistry`:

* ``register_query`` / ``unregister_query`` / ``cleanup_stale_queries``
  (sync) and ``set_backend_pid`` / ``cancel_query`` / ``get_query_info``
  (async), as Kotte's;
* what Kotte keeps per query (``db_conn``, ``query_text``, ``user_id``,
  ``started_at``, ``backend_pid``) stays in this process, in
  ``_active_queries`` as in Kotte; the registry gets only request id, user
  id and backend pid (no query text; see include/kotte/query.h);
* ``cancel_query`` on any replica: another user's query raises Kotte's 403
  ``APIException`` (``QUERY_CANCELLED``); the replica that runs it cancels
  with its own ``db_conn.cancel_backend(pid)`` (``get_backend_pid()`` first
  when no pid was set) and the answer comes back within 2 s; True when it
  was cancelled (the query is then unregistered), False otherwise (not
  found, a gone replica, no pid, a failed cancel), as Kotte answers.

Backend: postgresql when ``SESSION_STORAGE_TYPE=postgresql`` (the replicas
share the database: the drop-in's multi-replica setting), else memory.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import weakref
from datetime import datetime, timezone
from typing import Any, Dict, Optional

from .. import capi
from ..errors import ForbiddenError, KotteError, NotFoundError, OperationTimeoutError
from ..queries import CancelRequest, QueryRegistry
from .config import KotteSettings

logger = logging.getLogger("libkotte.kotte")

# register_query is synchronous in Kotte and runs on the event loop: its
# database write waits at most this long (the query stays cancellable from
# this replica whatever happens to the write).
REGISTER_TIMEOUT = 2.0


def open_registry(settings: KotteSettings) -> QueryRegistry:
    """The registry for @p settings (postgresql on the shared pool, or memory)."""
    if settings.session_storage_type == "postgresql":
        from ._pg import shared_pool

        return QueryRegistry("postgresql", pool=shared_pool(settings),
                             on_cancel=_dispatch)
    return QueryRegistry("memory", on_cancel=_dispatch)


# The registry's handler is bound at open; trackers share the process's
# registry (every QueryTracker() of a process), which keeps one query per
# request id, the last registered: so does this map, to the tracker that
# registered it.
_owner_of: "weakref.WeakValueDictionary[str, QueryTracker]" = weakref.WeakValueDictionary()


def _dispatch(req: CancelRequest) -> None:
    t = _owner_of.get(req.request_id)
    if t is None:
        req.done(capi.KOTTE_ENOTFOUND)
    else:
        t._on_cancel(req)


_shared: Optional[QueryRegistry] = None
_settings: Optional[KotteSettings] = None


def shared_registry(settings: Optional[KotteSettings] = None) -> QueryRegistry:
    """The process's registry (opened on first use with the installed settings)."""
    global _shared, _settings
    if settings is not None:
        _settings = settings
    if _shared is None or _shared.closed:
        _shared = open_registry(_settings or KotteSettings.from_env())
    return _shared


class QueryTracker:
    """Kotte's ``QueryTracker`` on a libkotte query registry (see the module doc)."""

    def __init__(self, registry: Optional[QueryRegistry] = None, *, package: str = "app") -> None:
        self._active_queries: Dict[str, Dict] = {}
        self._loops: Dict[str, Optional[asyncio.AbstractEventLoop]] = {}
        self._registry = registry or shared_registry()
        self._package = package

    @property
    def registry(self) -> QueryRegistry:
        return self._registry

    # ---- Kotte's API -----------------------------------------------------------

    def register_query(self, request_id: str, db_conn: Any, query_text: str,
                       user_id: str) -> None:
        self._active_queries[request_id] = {
            "db_conn": db_conn,
            "query_text": query_text,
            "user_id": user_id,
            "started_at": datetime.now(timezone.utc),
            "backend_pid": None,
        }
        try:
            self._loops[request_id] = asyncio.get_running_loop()
        except RuntimeError:
            self._loops[request_id] = None
        _owner_of[request_id] = self
        try:
            self._registry.register(request_id, user_id, 0, timeout=REGISTER_TIMEOUT)
        except KotteError as exc:
            logger.warning("query %s... not registered for other replicas: %s",
                           request_id[:8], exc)
        logger.debug("query %s... registered", request_id[:8])

    async def set_backend_pid(self, request_id: str, pid: int) -> None:
        info = self._active_queries.get(request_id)
        if info is None:
            return
        info["backend_pid"] = pid
        try:
            await asyncio.to_thread(self._registry.set_backend_pid, request_id, pid)
        except NotFoundError:
            pass
        except KotteError as exc:
            logger.warning("query %s...: backend pid not shared: %s", request_id[:8], exc)
        logger.debug("query %s... runs on backend %s", request_id[:8], pid)

    async def cancel_query(self, request_id: str, user_id: str) -> bool:
        try:
            await asyncio.to_thread(self._registry.cancel, request_id, user_id)
        except ForbiddenError:
            owner = (self._active_queries.get(request_id) or {}).get("user_id", "?")
            logger.warning("security: user %s may not cancel query %s of user %s",
                           user_id, request_id, owner)
            raise self._forbidden()
        except NotFoundError:
            logger.warning("cancel: no running query %s...", request_id[:8])
            return False
        except OperationTimeoutError:
            logger.warning("cancel: the replica running %s... did not answer in time",
                           request_id[:8])
            return False
        except KotteError as exc:
            logger.warning("cancel of %s... failed: %s", request_id[:8], exc)
            return False
        logger.info("query %s... cancelled", request_id[:8])
        self._forget(request_id)
        return True

    def unregister_query(self, request_id: str) -> None:
        if self._forget(request_id) is None:
            return
        try:  # nothing waits for it: ordered after the register on the loop thread
            self._registry.unregister(request_id, timeout=0)
        except (OperationTimeoutError, NotFoundError):
            pass
        except KotteError as exc:
            logger.warning("query %s... not unregistered: %s", request_id[:8], exc)
        logger.debug("query %s... unregistered", request_id[:8])

    async def get_query_info(self, request_id: str) -> Optional[Dict]:
        info = self._active_queries.get(request_id)
        if info is not None or self._registry.backend == "memory":
            await asyncio.sleep(0)
            return info
        try:
            q = await asyncio.to_thread(self._registry.get, request_id)
        except NotFoundError:
            return None
        except KotteError as exc:
            logger.warning("get_query_info(%s...) failed: %s", request_id[:8], exc)
            return None
        # another replica's query: its db_conn and text stay there
        return {"db_conn": None, "query_text": None, "user_id": q.user_id,
                "started_at": q.started_at, "backend_pid": q.backend_pid or None,
                "replica_id": q.replica_id}

    def cleanup_stale_queries(self, max_age_seconds: int = 3600) -> None:
        now = datetime.now(timezone.utc)
        stale = [rid for rid, info in self._active_queries.items()
                 if (now - info["started_at"]).total_seconds() > max_age_seconds]
        for rid in stale:
            logger.warning("query %s... is older than %s s: forgotten", rid[:8], max_age_seconds)
            self.unregister_query(rid)
        try:  # and the entries of replicas that are gone
            self._registry.purge(timeout=REGISTER_TIMEOUT)
        except KotteError as exc:
            logger.warning("query registry purge failed: %s", exc)

    # ---- the owner's side of a cancel --------------------------------------------

    def _forget(self, request_id: str) -> Optional[Dict]:
        if _owner_of.get(request_id) is self:
            _owner_of.pop(request_id, None)
        self._loops.pop(request_id, None)
        return self._active_queries.pop(request_id, None)

    def _on_cancel(self, req: CancelRequest) -> None:
        """On libkotte's loop thread: hand the cancel to the query's event loop."""
        info = self._active_queries.get(req.request_id)
        loop = self._loops.get(req.request_id)
        if info is None or loop is None or loop.is_closed():
            req.done(capi.KOTTE_ENOTFOUND)
            return
        try:
            loop.call_soon_threadsafe(self._start_cancel, req, info)
        except RuntimeError:  # the loop closed meanwhile
            req.done(capi.KOTTE_ENOTFOUND)

    def _start_cancel(self, req: CancelRequest, info: Dict) -> None:
        asyncio.get_running_loop().create_task(self._cancel_here(req, info))

    async def _cancel_here(self, req: CancelRequest, info: Dict) -> None:
        status = capi.KOTTE_EDB
        try:
            db_conn = info["db_conn"]
            pid = info.get("backend_pid")
            if not pid:
                pid = await db_conn.get_backend_pid()
                if pid:
                    info["backend_pid"] = pid
            if not pid:
                logger.warning("cancel of %s...: its backend pid is unknown", req.request_id[:8])
                status = capi.KOTTE_ENOTFOUND
            elif await db_conn.cancel_backend(pid):
                logger.info("query %s... cancelled (backend %s)", req.request_id[:8], pid)
                self._forget(req.request_id)
                status = 0
            else:
                logger.warning("cancel of %s... (backend %s) failed", req.request_id[:8], pid)
        except Exception:
            logger.exception("cancelling query %s... failed", req.request_id[:8])
        finally:
            req.done(status)

    def _forbidden(self) -> Exception:
        errors = importlib.import_module(f"{self._package}.core.errors")
        from fastapi import status

        return errors.APIException(
            code=errors.ErrorCode.QUERY_CANCELLED,
            message="This query belongs to another user",
            category=errors.ErrorCategory.AUTHORIZATION,
            status_code=status.HTTP_403_FORBIDDEN,
        )

    def close(self) -> None:
        """Stops answering cancels for this tracker's queries."""
        for rid in list(self._active_queries):
            self._forget(rid)
