"""Kotte's "cancel query" from any replica (issue 14), over HTTP.

Two uvicorn replicas of ``libkotte.kotte.asgi:app`` on the Kotte stand-in,
sessions in PostgreSQL. The stand-in's ``/queries/execute`` runs
``pg_sleep`` the way Kotte's query route does (register_query, the backend
pid through set_backend_pid, unregister_query), and its
``/queries/{request_id}/cancel`` is Kotte's cancel route (get_query_info,
then cancel_query: 404 / 403 / 500). Its route module binds
``query_tracker`` at import time, as Kotte's do, so install() must reach it.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import time
import uuid
from typing import Any

from conftest import pg_connect_kwargs
from test_kotte_follow import Browser, browser, cluster, super_sql, target  # noqa: F401


def wait_sleeping(request_timeout: float = 20) -> int:
    """The backend pid of the stand-in's running pg_sleep."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < request_timeout:
        rows = super_sql("SELECT pid FROM pg_stat_activity WHERE state = 'active' AND "
                         "query LIKE 'SELECT pg_sleep(%'")[0]
        if rows:
            return rows[0]["pid"]
        time.sleep(0.05)
    raise AssertionError("the query did not start")


def rows_of_queries(rid: str) -> int:
    """Rows of kotte_queries for @p rid (database kotte, as its owner)."""
    import asyncio

    import asyncpg

    async def run() -> int:
        conn = await asyncpg.connect(**pg_connect_kwargs(os.environ["KOTTE_TEST_PG_OWNER_CONNINFO"]))
        try:
            return await conn.fetchval("SELECT count(*) FROM kotte_queries WHERE request_id = $1",
                                       rid)
        finally:
            await conn.close()

    return asyncio.run(run())


def test_cancel_on_b_stops_the_query_running_on_a(cluster, browser):  # noqa: F811
    a, b = cluster()
    alice = browser()
    alice.login(a)
    alice.connect(a, target())
    rid = str(uuid.uuid4())
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        running = ex.submit(alice.post, a, "/api/v1/queries/execute",
                            json={"request_id": rid, "seconds": 30})
        wait_sleeping()
        # another user, on B: Kotte's 403, and the query runs on
        admin = browser()
        admin.login(b, "admin", "admin")
        res = admin.post(b, f"/api/v1/queries/{rid}/cancel")
        assert res.status_code == 403, res.text
        assert res.json()["error"]["code"] == "QUERY_CANCELLED"
        assert not running.done()
        # an unknown id: 404
        res = alice.post(b, f"/api/v1/queries/{uuid.uuid4()}/cancel")
        assert res.status_code == 404, res.text
        # the owner, on B: cancelled by A, with A's connection
        t0 = time.monotonic()
        res = alice.post(b, f"/api/v1/queries/{rid}/cancel")
        took = time.monotonic() - t0
        assert res.status_code == 200, res.text
        assert res.json() == {"cancelled": True, "request_id": rid}
        out = running.result(timeout=2)
        ended = time.monotonic() - t0
    assert out.status_code == 200 and out.json() == {"status": "error", "sqlstate": "57014"}
    assert took < 2 and ended < 2, (took, ended)
    # gone everywhere once cancelled
    assert alice.post(b, f"/api/v1/queries/{rid}/cancel").status_code == 404
    assert alice.post(a, f"/api/v1/queries/{rid}/cancel").status_code == 404
    assert rows_of_queries(rid) == 0


def test_a_killed_replicas_query_is_not_found_within_the_bound(cluster, browser):  # noqa: F811
    a, b = cluster()
    alice = browser()
    alice.login(a)
    alice.connect(a, target())
    rid = str(uuid.uuid4())
    ex = concurrent.futures.ThreadPoolExecutor(1)
    ex.submit(alice.post, a, "/api/v1/queries/execute", json={"request_id": rid, "seconds": 30})
    pid = wait_sleeping()
    assert rows_of_queries(rid) == 1
    os.kill(a.proc.pid, signal.SIGKILL)
    a.proc.wait(10)
    t0 = time.monotonic()
    res = alice.post(b, f"/api/v1/queries/{rid}/cancel")
    took = time.monotonic() - t0
    assert res.status_code == 404, res.text
    assert took < 2.5, took
    assert rows_of_queries(rid) == 0  # deleted on sight: its replica is gone
    super_sql(f"SELECT pg_cancel_backend({int(pid)})")  # the orphaned sleep
    ex.shutdown(wait=True, cancel_futures=True)
