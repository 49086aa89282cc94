"""kotte-server against Kotte's Python backend on the routes the mixed
overlays send to kotte-server, in one run, with the ratios.

One kotte-server (a Release build) and one uvicorn process of libkotte's
drop-in (Kotte's real backend when KOTTE_SUITE_DIR names a kotte-suite.sh
cache, else the stand-in of Kotte's app; the table says which), both on one
PostgreSQL 15 (tests/pg/pg.sh --durable), both one event loop on one core.
One login on kotte-server; the same cookie (issue 12: one login for both)
is what wrk sends to each. Per route, the servers get the same wrk load in
alternating rounds (the median round is shown); any answer but a 200 makes
the run invalid.

The machine's cores are shared with wrk (and, here, other work): the
figures are this machine's, the ratio is what carries over.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests/mixed"))
sys.path.insert(0, str(ROOT / "tests/fault"))
from mixed_run import KotteReplica, kotte_backend  # noqa: E402
from stack import SECRETS, CReplica, PyReplica, State, pg_sh  # noqa: E402

USER, PASSWORD = "admin", "bench-Passw0rd"
CONN = {"name": "bench-saved", "host": "db1.internal", "port": 5433, "database": "graphs",
        "username": "graph_reader", "password": "bench-Connection-Passw0rd"}
ROUTES = ["/api/v1/session/status", "/api/v1/auth/me", "/api/v1/auth/csrf-token",
          "/api/v1/connections"]


def request(port: int, method: str, path: str, cookie: str | None = None, body=None,
            csrf: str | None = None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if cookie:
        headers["Cookie"] = f"kotte_session={cookie}"
    if csrf:
        headers["X-CSRF-Token"] = csrf
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = c.getresponse()
    raw = r.read()
    got = next((v.split(";", 1)[0].split("=", 1)[1] for k, v in r.getheaders()
                if k.lower() == "set-cookie" and v.startswith("kotte_session=")), None)
    c.close()
    return r.status, (json.loads(raw) if raw else None), got


def wrk(port: int, path: str, cookie: str, a) -> dict:
    cmd = ["wrk", f"-t{a.threads}", f"-c{a.connections}", f"-d{a.duration}", "--latency",
           "-H", f"Cookie: kotte_session={cookie}", f"http://127.0.0.1:{port}{path}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk on {path}: answers other than 200 or socket errors:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    return {"rps": rps, "p50": lat.get("50", "?"), "p99": lat.get("99", "?")}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--server-bin", required=True)
    ap.add_argument("--build-py", required=True)
    ap.add_argument("--threads", default="1")
    ap.add_argument("--connections", default="16")
    ap.add_argument("--duration", default="5s")
    ap.add_argument("--rounds", type=int, default=3,
                    help="wrk runs per route and server, alternating; the median is shown")
    ap.add_argument("--routes", default=",".join(ROUTES), help="comma-separated GET paths")
    a = ap.parse_args()
    work = Path(a.workdir)
    state = State(work / "state")
    d = work / "pg"
    state.add("pgdir", d)
    out = pg_sh("start", "--dir", str(d), "--durable")
    pgdir = re.search(r"KOTTE_TEST_PG_DIR='([^']+)'", out).group(1)
    pgport = re.search(r"KOTTE_TEST_PG_PORT='(\d+)'", out).group(1)
    env = {"SESSION_STORAGE_TYPE": "postgresql", "CREDENTIAL_STORAGE_TYPE": "postgresql",
           "DB_HOST": "127.0.0.1", "DB_PORT": pgport, "DB_NAME": "kotte", "DB_USER": "kotte_app",
           "DB_PASSWORD": "", "ENVIRONMENT": "development", "RATE_LIMIT_ENABLED": "false",
           "LOG_LEVEL": "WARNING", **SECRETS}
    replicas = []
    try:
        p = subprocess.run([a.server_bin, "user", "add", USER], input=PASSWORD + "\n", text=True,
                           env=dict(os.environ, **env), capture_output=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError(f"kotte-server user add: {p.stderr}")
        kotte, why = kotte_backend(a.build_py)
        c = CReplica("kotte-server", work, env, state, a.server_bin)
        py = (KotteReplica("python", work, env, state, kotte) if kotte
              else PyReplica("python", work, env, state, a.build_py))
        replicas = [c, py]
        for r in replicas:
            r.start()
        status, js, cookie = request(c.port, "POST", "/api/v1/auth/login",
                                     body={"username": USER, "password": PASSWORD})
        assert status == 200 and cookie, f"login: {status} {js}"
        status, _, _ = request(c.port, "POST", "/api/v1/connections", cookie, CONN, js["csrf_token"])
        assert status == 201, f"save connection: {status}"
        routes, left_out = [], []
        for path in a.routes.split(","):  # a 200 from both, before measuring
            got = [request(r.port, "GET", path, cookie)[:2] for r in replicas]
            if not kotte and got[0][0] == 200 and got[1][0] == 404:
                left_out.append(path)  # a route the stand-in does not have
                continue
            assert got[0][0] == got[1][0] == 200, f"{path}: {got}"
            routes.append(path)
        python_is = "Kotte's backend" if kotte else f"the stand-in of Kotte's app ({why})"
        print(f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
              f"{os.cpu_count()} cores shared with wrk, load average {os.getloadavg()[0]:.1f} "
              "at the start; PostgreSQL 15 (fsync on)")
        print(f"Python: uvicorn libkotte.kotte.asgi:app over {python_is}")
        if left_out:
            print(f"not measured (the stand-in lacks them): {', '.join(left_out)}")
        print(f"load: wrk -t{a.threads} -c{a.connections} -d{a.duration} --latency "
              "-H 'Cookie: kotte_session=<one login>' URL; per route "
              f"{a.rounds} rounds alternating between the servers, the median round shown\n")
        print("| route | kotte-server req/s (p50, p99) | Python req/s (p50, p99) | ratio |")
        print("| --- | ---: | ---: | ---: |")
        for path in routes:
            # alternating rounds, the median of each: a burst of other work on
            # the machine then spoils one round of each side, not the figure
            runs = {c.port: [], py.port: []}
            for _ in range(a.rounds):
                for port in runs:
                    runs[port].append(wrk(port, path, cookie, a))
            rc, rp = (sorted(runs[p], key=lambda x: x["rps"])[len(runs[p]) // 2]
                      for p in (c.port, py.port))
            print(f"| GET {path} | {rc['rps']:.0f} ({rc['p50']}, {rc['p99']}) | "
                  f"{rp['rps']:.0f} ({rp['p50']}, {rp['p99']}) | {rc['rps'] / rp['rps']:.1f}x |",
                  flush=True)
    finally:
        for r in replicas:
            if r.alive():
                r.signal(signal.SIGTERM)
        for r in replicas:
            if r.starts and r.wait_exit(30)[0] is None:
                r.kill_now()
        pg_sh("stop", pgdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
