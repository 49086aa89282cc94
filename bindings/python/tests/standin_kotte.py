"""A minimal stand-in for Kotte's backend package ``app``, written by the tests.

Kotte's real backend cannot be imported here (it needs pydantic 2 and a
FastAPI built for it). This stand-in has the same module paths and the same
contracts that libkotte.kotte.install() relies on, in a few lines of our
own: ``app.core.config.settings``, ``app.core.auth`` (an in-memory
``session_manager``, the ``SessionManager`` alias, ``_local_session_objects``
and a ``get_session(request)`` dependency that reads the module-level
manager at call time), ``app.core.connection_storage`` (a JSON-file store
that records that it was imported), ``app.core.errors`` (``APIException``
answered as ``{"error": {...}}``), ``app.core.database.DatabaseConnection``
(a real psycopg pool whose every connection the app configures itself, as
Kotte's runs ``LOAD 'age'``), ``app.core.deps.get_db_connection``, route
modules that bind ``session_manager`` / ``connection_storage`` at import
time (``session/connect``, ``disconnect`` and ``status`` as Kotte answers
them), a stand-in route that runs a query through ``get_db_connection``, and
``app.services.query_tracker`` (a one-process tracker with the interface of
Kotte's, which install() replaces) with ``api/v1/queries`` that runs and
cancels a query as Kotte's query and cancel routes do, and
``app.main.app`` with Starlette's SessionMiddleware configured as Kotte's
``main.py`` configures it (SESSION_SECRET_KEY, SESSION_MAX_AGE, same_site
"lax", https_only in production, SESSION_COOKIE_NAME) and Kotte's CSRF rule
(X-CSRF-Token equal to the cookie session's csrf_token, which login puts
there), so that a replica of it and kotte-server can share one login.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

FILES = {
    "app/__init__.py": "",
    "app/core/__init__.py": "",
    "app/api/__init__.py": "",
    "app/core/config.py": '''
        import os
        import secrets


        class Settings:
            def __init__(self):
                env = os.environ.get
                self.environment = env("ENVIRONMENT", "development")
                self.session_secret_key = env("SESSION_SECRET_KEY") or secrets.token_urlsafe(32)
                self.session_idle_timeout = int(env("SESSION_IDLE_TIMEOUT", "1800"))
                self.session_max_age = int(env("SESSION_MAX_AGE", "3600"))
                self.session_cookie_name = env("SESSION_COOKIE_NAME", "kotte_session")
                self.credential_storage_path = env("CREDENTIAL_STORAGE_PATH", "./data/connections.json")
                self.master_encryption_key = env("MASTER_ENCRYPTION_KEY", "")


        settings = Settings()
    ''',
    "app/core/auth.py": '''
        import secrets
        from datetime import datetime, timezone

        from fastapi import HTTPException, Request

        _local_session_objects = {}


        class InMemorySessionManager:
            def __init__(self):
                self._sessions = {}

            async def create_session(self, user_id, connection_config=None):
                sid = secrets.token_urlsafe(32)
                now = datetime.now(timezone.utc)
                self._sessions[sid] = {"user_id": user_id, "created_at": now, "last_activity": now,
                                       "connection_config": connection_config or {},
                                       "graph_context": None, "csrf_token": secrets.token_urlsafe(32)}
                return sid

            async def get_session(self, session_id):
                return self._sessions.get(session_id)

            async def update_session(self, session_id, updates):
                if session_id in self._sessions:
                    self._sessions[session_id].update(updates)

            async def delete_session(self, session_id):
                self._sessions.pop(session_id, None)

            async def get_user_id(self, session_id):
                s = await self.get_session(session_id)
                return s["user_id"] if s else None


        session_manager = InMemorySessionManager()
        SessionManager = InMemorySessionManager


        async def get_session(request: Request) -> dict:
            session_id = request.session.get("session_id")
            if not session_id:
                raise HTTPException(status_code=401, detail="AUTH_REQUIRED")
            session = await session_manager.get_session(session_id)
            if not session:
                raise HTTPException(status_code=401, detail="AUTH_SESSION_EXPIRED")
            return session
    ''',
    "app/core/errors.py": '''
        from fastapi.responses import JSONResponse


        class ErrorCode:
            QUERY_CANCELLED = "QUERY_CANCELLED"


        class ErrorCategory:
            AUTHORIZATION = "authorization"
            VALIDATION = "validation"
            UPSTREAM = "upstream"


        class APIException(Exception):
            def __init__(self, code, message, category="internal", status_code=500,
                         details=None, retryable=False):
                self.code, self.message, self.category = code, message, category
                self.status_code, self.details, self.retryable = status_code, details or {}, retryable
                super().__init__(message)


        async def _answer(request, exc):
            return JSONResponse(status_code=exc.status_code, content={"error": {
                "code": exc.code, "category": exc.category, "message": exc.message,
                "details": exc.details, "retryable": exc.retryable}})


        def setup_error_handlers(app):
            app.add_exception_handler(APIException, _answer)
    ''',
    "app/core/database/__init__.py": '''
        import os

        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        from app.core.errors import APIException


        class DatabaseConnection:
            """One pool per connect(), every connection configured by the app."""

            opened = 0  # successful connect() calls in this process
            live = set()  # connected instances

            def __init__(self, host, port, database, user, password, sslmode=None):
                self.host, self.port, self.database = host, port, database
                self.user, self.password, self.sslmode = user, password, sslmode
                self._pool = None

            async def _configure(self, conn):
                async with conn.cursor() as cur:
                    await cur.execute("SET search_path = standin_graphs, public")
                    await cur.execute("SET application_name = 'standin-kotte'")
                await conn.commit()

            async def connect(self):
                timeout = float(os.environ.get("STANDIN_CONNECT_TIMEOUT", "3"))
                kwargs = dict(host=self.host, port=self.port, dbname=self.database,
                              user=self.user, password=self.password,
                              connect_timeout=max(1, int(timeout)), row_factory=dict_row)
                if self.sslmode:
                    kwargs["sslmode"] = self.sslmode
                pool = AsyncConnectionPool(kwargs=kwargs, min_size=1, max_size=4, timeout=timeout,
                                           configure=self._configure, open=False)
                try:
                    await pool.open()
                    await pool.wait(timeout=timeout)
                except Exception as e:
                    await pool.close()
                    raise APIException("DB_CONNECT_FAILED", f"Failed to connect to database: {e}",
                                       "upstream", 500, retryable=True) from e
                self._pool = pool
                type(self).opened += 1
                type(self).live.add(self)

            async def disconnect(self):
                if self._pool is not None:
                    pool, self._pool = self._pool, None
                    type(self).live.discard(self)
                    await pool.close()

            def connection(self):
                return self._pool.connection()

            async def get_backend_pid(self, conn=None):
                if conn is None:
                    async with self._pool.connection() as c:
                        return await self.get_backend_pid(c)
                async with conn.cursor() as cur:
                    await cur.execute("SELECT pg_backend_pid() AS pid")
                    return (await cur.fetchone())["pid"]

            async def cancel_backend(self, pid):
                """pg_cancel_backend() on a connection of its own, as Kotte's."""
                import psycopg

                conn = await psycopg.AsyncConnection.connect(
                    host=self.host, port=self.port, dbname=self.database, user=self.user,
                    password=self.password, autocommit=True)
                try:
                    async with conn.cursor() as cur:
                        await cur.execute("SELECT pg_cancel_backend(%s)", (pid,))
                        return bool((await cur.fetchone())[0])
                finally:
                    await conn.close()

            async def execute_query(self, query, params=None):
                if self._pool is None:
                    raise APIException("DB_UNAVAILABLE", "Database connection pool not initialized",
                                       "upstream", 500)
                async with self._pool.connection() as conn:
                    async with conn.cursor() as cur:
                        await cur.execute(query, params)
                        return await cur.fetchall()
    ''',
    "app/core/deps.py": '''
        from fastapi import Depends

        from app.core.auth import get_session
        from app.core.database import DatabaseConnection
        from app.core.errors import APIException


        async def get_db_connection(session: dict = Depends(get_session)) -> DatabaseConnection:
            db = session.get("db_connection")
            if not db:
                raise APIException("DB_UNAVAILABLE", "Database connection not established",
                                   "upstream", 500)
            return db
    ''',
    "app/core/connection_storage.py": '''
        import json
        import os
        import uuid
        from pathlib import Path

        from app.core.config import settings

        _marker = os.environ.get("STANDIN_IMPORT_MARKER")
        if _marker:
            Path(_marker).write_text("imported")


        class ConnectionStorage:
            def __init__(self, storage_path=None):
                self.path = Path(storage_path or settings.credential_storage_path)

            def _all(self):
                return json.loads(self.path.read_text()) if self.path.exists() else {}

            def save_connection(self, user_id, name, host, port, database, username, password,
                                sslmode=None):
                data = self._all()
                cid = str(uuid.uuid4())
                data.setdefault(user_id, {})[cid] = {"id": cid, "name": name, "host": host}
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.write_text(json.dumps(data))
                return cid

            def list_connections(self, user_id):
                return list(self._all().get(user_id, {}).values())


        connection_storage = ConnectionStorage()
    ''',
    "app/api/v1/__init__.py": '''
        from fastapi import APIRouter

        from app.api.v1 import auth, connections, queries, session, standin

        router = APIRouter()
        router.include_router(queries.router, prefix="/queries")
        router.include_router(auth.router, prefix="/auth")
        router.include_router(session.router, prefix="/session")
        router.include_router(connections.router, prefix="/connections")
        router.include_router(standin.router, prefix="/standin")
    ''',
    "app/api/v1/auth.py": '''
        from fastapi import APIRouter, Depends, HTTPException, Request

        from app.core.auth import get_session, session_manager

        router = APIRouter()
        USERS = {"admin": "admin", "alice": "wonderland"}


        @router.post("/login")
        async def login(body: dict, request: Request):
            if USERS.get(body.get("username")) != body.get("password"):
                raise HTTPException(status_code=401, detail="bad credentials")
            user = body["username"]
            sid = await session_manager.create_session(user, {"username": user})
            await session_manager.update_session(sid, {"role": "admin" if user == "admin" else "user"})
            request.session["session_id"] = sid
            data = await session_manager.get_session(sid)
            request.session["csrf_token"] = data["csrf_token"]  # as Kotte's login
            return {"user_id": user, "username": user, "authenticated": True,
                    "csrf_token": data["csrf_token"]}


        @router.get("/me")
        async def me(session: dict = Depends(get_session)):
            return {"user_id": session["user_id"], "role": session.get("role"),
                    "created_at": session["created_at"].isoformat()}


        @router.post("/logout")
        async def logout(request: Request, session: dict = Depends(get_session)):
            db = session.get("db_connection")
            if db is not None:
                await db.disconnect()
            await session_manager.delete_session(request.session.get("session_id"))
            request.session.clear()
            return {"logged_out": True}
    ''',
    "app/api/v1/session.py": '''
        from fastapi import APIRouter, Depends, Request

        from app.core.auth import get_session, session_manager
        from app.core.database import DatabaseConnection

        router = APIRouter()


        @router.post("/connect", status_code=201)
        async def connect(body: dict, request: Request, session: dict = Depends(get_session)):
            cfg = {"port": 5432, "sslmode": None, **body["connection"]}
            db = DatabaseConnection(**cfg)
            await db.connect()
            sid = request.session["session_id"]
            await session_manager.update_session(sid, {"connection_config": cfg,
                                                       "db_connection": db})
            return {"session_id": sid, "connected": True, "database": cfg["database"],
                    "host": cfg["host"], "port": cfg["port"]}


        @router.post("/disconnect")
        async def disconnect(request: Request, session: dict = Depends(get_session)):
            db = session.get("db_connection")
            if db:
                await db.disconnect()
            sid = request.session.get("session_id")
            if sid:
                await session_manager.delete_session(sid)
            request.session.clear()
            return {"disconnected": True}


        @router.get("/status")
        async def status(session: dict = Depends(get_session)):
            cfg = session.get("connection_config", {})
            connected = session.get("db_connection") is not None
            return {"connected": connected,
                    "database": cfg.get("database") if connected else None,
                    "host": cfg.get("host") if connected else None,
                    "port": cfg.get("port") if connected else None,
                    "current_graph": session.get("graph_context")}
    ''',
    "app/services/__init__.py": "",
    "app/services/query_tracker.py": '''
        """The stand-in's own tracker (one process), with the interface of Kotte's;
        libkotte.kotte.install() replaces it."""
        from datetime import datetime, timezone

        from app.core.errors import APIException, ErrorCategory, ErrorCode


        class QueryTracker:
            def __init__(self):
                self._active_queries = {}

            def register_query(self, request_id, db_conn, query_text, user_id):
                self._active_queries[request_id] = {
                    "db_conn": db_conn, "query_text": query_text, "user_id": user_id,
                    "started_at": datetime.now(timezone.utc), "backend_pid": None}

            async def set_backend_pid(self, request_id, pid):
                if request_id in self._active_queries:
                    self._active_queries[request_id]["backend_pid"] = pid

            async def cancel_query(self, request_id, user_id):
                q = self._active_queries.get(request_id)
                if q is None:
                    return False
                if q["user_id"] != user_id:
                    raise APIException(ErrorCode.QUERY_CANCELLED, "another user's query",
                                       ErrorCategory.AUTHORIZATION, 403)
                ok = bool(q["backend_pid"]) and await q["db_conn"].cancel_backend(q["backend_pid"])
                if ok:
                    self.unregister_query(request_id)
                return ok

            def unregister_query(self, request_id):
                self._active_queries.pop(request_id, None)

            async def get_query_info(self, request_id):
                return self._active_queries.get(request_id)

            def cleanup_stale_queries(self, max_age_seconds=3600):
                pass


        query_tracker = QueryTracker()
    ''',
    "app/api/v1/queries.py": '''
        """Runs a query the way Kotte's query route does (register, backend pid,
        unregister) and cancels the way Kotte's cancel route does."""
        import psycopg
        from fastapi import APIRouter, Depends

        from app.core.auth import get_session
        from app.core.database import DatabaseConnection
        from app.core.deps import get_db_connection
        from app.core.errors import APIException, ErrorCategory, ErrorCode
        from app.services.query_tracker import query_tracker  # bound at import, as Kotte's

        router = APIRouter()


        @router.post("/execute")
        async def execute(body: dict, session: dict = Depends(get_session),
                          db_conn: DatabaseConnection = Depends(get_db_connection)):
            request_id = body["request_id"]
            query_tracker.register_query(request_id=request_id, db_conn=db_conn,
                                         query_text="SELECT pg_sleep(...)",
                                         user_id=session["user_id"])
            try:
                async with db_conn.connection() as conn:
                    pid = await db_conn.get_backend_pid(conn=conn)
                    await query_tracker.set_backend_pid(request_id, pid)
                    async with conn.cursor() as cur:
                        await cur.execute("SELECT pg_sleep(%s)", (float(body["seconds"]),))
                return {"status": "done", "backend_pid": pid}
            except psycopg.Error as e:
                return {"status": "error", "sqlstate": e.sqlstate}
            finally:
                query_tracker.unregister_query(request_id)


        @router.post("/{request_id}/cancel")
        async def cancel(request_id: str, session: dict = Depends(get_session)):
            user_id = session.get("user_id", "unknown")
            if not await query_tracker.get_query_info(request_id):
                raise APIException(ErrorCode.QUERY_CANCELLED, "query not found",
                                   ErrorCategory.VALIDATION, 404)
            if not await query_tracker.cancel_query(request_id, user_id):
                raise APIException(ErrorCode.QUERY_CANCELLED, "cancel failed",
                                   ErrorCategory.UPSTREAM, 500)
            return {"cancelled": True, "request_id": request_id}
    ''',
    "app/api/v1/standin.py": '''
        from fastapi import APIRouter, Depends

        from app.core import auth
        from app.core.database import DatabaseConnection
        from app.core.deps import get_db_connection

        router = APIRouter()


        @router.get("/query")
        async def query(db: DatabaseConnection = Depends(get_db_connection)):
            rows = await db.execute_query(
                "SELECT pg_backend_pid() AS pid, current_setting('search_path') AS search_path,"
                " current_setting('application_name') AS application_name, current_user AS db_user")
            return rows[0]


        @router.get("/pools")
        async def pools():
            """What this process holds (the tests' window into a replica)."""
            m = auth.session_manager
            holding = [sid for sid, objs in list(auth._local_session_objects.items())
                       if objs.get("db_connection") is not None]
            return {"live": len(DatabaseConnection.live), "opened": DatabaseConnection.opened,
                    "holding": len(holding),
                    "follow": m.follow.stats() if hasattr(m, "follow") else None}
    ''',
    "app/api/v1/connections.py": '''
        from fastapi import APIRouter, Depends, HTTPException

        from app.core.auth import get_session
        from app.core.connection_storage import connection_storage

        router = APIRouter()


        @router.post("", status_code=201)
        async def save(body: dict, session: dict = Depends(get_session)):
            try:
                cid = connection_storage.save_connection(user_id=session["user_id"], **body)
            except ValueError as e:
                raise HTTPException(status_code=422, detail=str(e))
            return {"id": cid, "storage": type(connection_storage).__module__}


        @router.get("")
        async def list_(session: dict = Depends(get_session)):
            return connection_storage.list_connections(session["user_id"])


        @router.get("/{connection_id}")
        async def get(connection_id: str, session: dict = Depends(get_session)):
            c = connection_storage.get_connection(session["user_id"], connection_id)
            if c is None:
                raise HTTPException(status_code=404, detail="CONNECTION_NOT_FOUND")
            return c


        @router.delete("/{connection_id}", status_code=204)
        async def delete(connection_id: str, session: dict = Depends(get_session)):
            if not connection_storage.delete_connection(session["user_id"], connection_id):
                raise HTTPException(status_code=404, detail="CONNECTION_NOT_FOUND")
    ''',
    "app/main.py": '''
        import logging
        import os

        from fastapi import FastAPI
        from fastapi.responses import JSONResponse
        from starlette.middleware.base import BaseHTTPMiddleware
        from starlette.middleware.sessions import SessionMiddleware

        from app.api.v1 import router
        from app.core.config import settings
        from app.core.errors import setup_error_handlers


        # Kotte sets its logging up in app.main as well
        logging.basicConfig(level=os.environ.get("STANDIN_LOG_LEVEL", "WARNING"))


        class CSRFMiddleware(BaseHTTPMiddleware):
            """Kotte's rule: state-changing requests but login carry X-CSRF-Token
            equal to the cookie session's csrf_token (else the session's)."""

            async def dispatch(self, request, call_next):
                if (request.method not in ("POST", "PUT", "PATCH", "DELETE")
                        or request.url.path == "/api/v1/auth/login"):
                    return await call_next(request)
                token = request.session.get("csrf_token")
                sid = request.session.get("session_id")
                if not token and sid:
                    from app.core.auth import session_manager
                    data = await session_manager.get_session(sid)
                    token = data.get("csrf_token") if data else None
                if not token or request.headers.get("X-CSRF-Token") != token:
                    return JSONResponse({"detail": "CSRF token validation failed"}, status_code=403)
                return await call_next(request)


        def create_app():
            app = FastAPI()
            app.add_middleware(CSRFMiddleware)
            # as Kotte's main.py: added after CSRF, so it runs first
            app.add_middleware(SessionMiddleware, secret_key=settings.session_secret_key,
                               max_age=settings.session_max_age, same_site="lax",
                               https_only=settings.environment == "production",
                               session_cookie=settings.session_cookie_name)
            setup_error_handlers(app)
            app.include_router(router, prefix="/api/v1")
            return app


        app = create_app()
    ''',
}


def write_standin(root: Path) -> Path:
    """Writes the stand-in package under ``root`` and returns ``root``."""
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root
