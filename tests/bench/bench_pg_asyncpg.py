"""asyncpg doing what bench_pg_sessions does: the session backend's get and
update statements (the same SQL text, passed on argv by bench_pg.sh),
prepared, one connection per request in flight, for 1, 8 and 32 in flight.

    python3 bench_pg_asyncpg.py DSN SECONDS GET_SQL_FILE UPDATE_SQL_FILE [OP CONC]

Prints: RESULT op=get conc=8 mode=asyncpg ops_s=1234
"""
import asyncio
import datetime
import random
import sys
import time

import asyncpg


async def run(dsn, secs, op, sql, conc):
    conns = [await asyncpg.connect(dsn) for _ in range(conc)]
    now = datetime.datetime.now(datetime.timezone.utc)
    done = 0
    stop = False

    async def worker(con):
        nonlocal done
        stmt = await con.prepare(sql)
        k = 0
        while not stop:
            sid = str(random.randint(1, 10000))
            if op == "get":
                await stmt.fetchrow(sid, now)
            else:
                k += 1
                await stmt.fetchrow(sid, now, '{"k": %d}' % k, 65536)
            done += 1

    tasks = [asyncio.create_task(worker(c)) for c in conns]
    await asyncio.sleep(0.3)  # warm up
    start_done, t0 = done, time.monotonic()
    await asyncio.sleep(secs)
    ops = (done - start_done) / (time.monotonic() - t0)
    stop = True
    await asyncio.gather(*tasks)
    for c in conns:
        await c.close()
    return ops


async def main():
    dsn, secs = sys.argv[1], float(sys.argv[2])
    sqls = {"get": open(sys.argv[3]).read().strip(), "update": open(sys.argv[4]).read().strip()}
    cases = [(op, c) for op in ("get", "update") for c in (1, 8, 32)]
    if len(sys.argv) > 6:
        cases = [(sys.argv[5], int(sys.argv[6]))]
    for op, conc in cases:
        ops = await run(dsn, secs, op, sqls[op], conc)
        print(f"RESULT op={op} conc={conc} mode=asyncpg ops_s={ops:.0f}", flush=True)


asyncio.run(main())
