"""Benchmarks of the Python binding (run with tests/bench/python/run.sh).

1. Per-call overhead of the binding, on the memory backend (no I/O), next
   to a plain Python call: a SWIG call that keeps the GIL, the blocking
   facade (a thread hop to the runtime's loop, GIL released), the Pythonic
   SessionStore on top of it, and the asyncio bridge.
2. Async get_session throughput at 8 and 32 concurrent tasks on PostgreSQL
   (KOTTE_TEST_PG_CONNINFO), next to the same SQL statement (the backend's
   sliding get, an UPDATE ... RETURNING on kotte_sessions, on the same rows)
   through asyncpg with a pool of the same size, in the same run; the ratio
   is libkotte / asyncpg.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import libkotte
from libkotte import capi
from libkotte.kotte import KotteSettings, SessionManager


def per_call(label: str, fn, n: int) -> float:
    for _ in range(min(n, 1000)):
        fn()
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    print(f"| {label} | {best * 1e6:,.2f} | {1 / best:,.0f} |")
    return best


def overhead(n: int) -> None:
    print("\n### Per-call overhead (memory backend, 1 thread, best of 3)\n")
    print("| call | µs/call | calls/s |\n| --- | ---: | ---: |")
    with libkotte.SessionStore() as st:
        sid = st.create("bench", {"graph_context": None, "csrf_token": "x" * 43}).id
        raw_st = st._st

        def noop() -> None:
            pass

        per_call("empty Python function (reference)", noop, n * 10)
        per_call("capi.kotte_version() (SWIG, GIL kept)", capi.kotte_version, n * 10)
        per_call("capi.kotte_token_is_valid(id) (SWIG, one str argument)",
                 lambda: capi.kotte_token_is_valid(sid), n * 10)
        hop = per_call("capi.kotte_session_get_sync() (blocking facade, GIL released)",
                       lambda: capi.kotte_session_get_sync(raw_st, sid, -1), n)
        store = per_call("SessionStore.get() (Pythonic layer: guard, Session, json, datetimes)",
                         lambda: st.get(sid), n)
        print(f"\nThe Pythonic layer adds {(store - hop) * 1e6:.2f} µs to the facade call.")

        async def seq() -> float:
            aio = st.aio
            for _ in range(1000):
                await aio.get_raw(sid)
            t = time.perf_counter()
            for _ in range(n):
                await aio.get_raw(sid)
            return (time.perf_counter() - t) / n

        async def conc(k: int) -> float:
            aio = st.aio

            async def worker(m: int) -> None:
                for _ in range(m):
                    await aio.get_raw(sid)

            t = time.perf_counter()
            await asyncio.gather(*(worker(n // k) for _ in range(k)))
            return (time.perf_counter() - t) / (n // k * k)

        s = asyncio.run(seq())
        print(f"| aio.get_raw() awaited one at a time (eventfd round trip) | {s * 1e6:,.2f} | "
              f"{1 / s:,.0f} |")
        for k in (8, 32):
            c = asyncio.run(conc(k))
            print(f"| aio.get_raw() with {k} concurrent tasks | {c * 1e6:,.2f} | {1 / c:,.0f} |")


async def pg_throughput(conninfo: str, seconds: float, sessions: int) -> None:
    import asyncpg

    info = dict(p.split("=", 1) for p in conninfo.split())
    settings = KotteSettings(session_storage_type="postgresql", db_host=info.get("host", ""),
                             db_port=int(info.get("port", 5432)), db_name=info.get("dbname", ""),
                             db_user=info.get("user", ""), db_password=info.get("password", ""),
                             master_encryption_key="bench-" + "k" * 40, environment="test",
                             db_pool_max_size=10)
    m = SessionManager(settings)
    ids = [await m.create_session(f"user{i % 100}", {"username": f"user{i % 100}"})
           for i in range(sessions)]
    kw = {"host": info.get("host"), "port": int(info.get("port", 5432)),
          "user": info.get("user"), "database": info.get("dbname")}
    pool = await asyncpg.create_pool(min_size=10, max_size=10, **kw)
    keys = [r[0] for r in await pool.fetch("SELECT session_id FROM kotte_sessions")]
    sql = ("UPDATE kotte_sessions SET last_activity = $2, expires_at = least($2 + "
           "idle_timeout_seconds * interval '1 second', max_expires_at) WHERE session_id = $1 "
           "AND expires_at >= $2 RETURNING user_id, data, created_at, last_activity, expires_at, "
           "max_expires_at, idle_timeout_seconds")

    async def lk_one(i: int) -> None:
        s = await m.get_session(ids[i % len(ids)])
        assert s is not None

    async def apg_one(i: int) -> None:
        async with pool.acquire() as conn:
            row = await conn.fetchrow(sql, keys[i % len(keys)], datetime.now(timezone.utc))
        d = json.loads(row["data"])  # the same work get_session does with the row
        d["user_id"] = row["user_id"]
        d["created_at"] = row["created_at"]
        d["last_activity"] = row["last_activity"]

    async def run(one, k: int) -> float:
        counts = [0] * k
        deadline = time.perf_counter() + seconds

        async def worker(w: int) -> None:
            i = w
            while time.perf_counter() < deadline:
                await one(i)
                counts[w] += 1
                i += k

        t = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(k)))
        return sum(counts) / (time.perf_counter() - t)

    print(f"\n### Async get_session on PostgreSQL ({sessions} sessions, pools of 10, "
          f"{seconds:.0f} s per cell, best of 3)\n")
    print("| concurrent tasks | libkotte get_session /s | asyncpg same SQL /s | ratio |")
    print("| ---: | ---: | ---: | ---: |")
    for k in (8, 32):
        await run(lk_one, k)  # warm up both (connections, prepared statements)
        await run(apg_one, k)
        lk = max([await run(lk_one, k) for _ in range(3)])
        ap = max([await run(apg_one, k) for _ in range(3)])
        print(f"| {k} | {lk:,.0f} | {ap:,.0f} | {lk / ap:.2f}x |")
    await pool.close()
    m._sessions.clear()
    m.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--sessions", type=int, default=1000)
    args = ap.parse_args()
    print(f"libkotte {libkotte.__version__}, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, {datetime.now(timezone.utc):%Y-%m-%d}")
    overhead(args.calls)
    conninfo = os.environ.get("KOTTE_TEST_PG_CONNINFO")
    if conninfo:
        asyncio.run(pg_throughput(conninfo, args.seconds, args.sessions))
    else:
        print("\n(no KOTTE_TEST_PG_CONNINFO: PostgreSQL part skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
