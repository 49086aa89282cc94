"""The mixed backend on this machine: nginx routing as the Ingresses of
k8s/overlays/dev-mixed route, in front of one kotte-server and two Python
replicas, on one PostgreSQL 15. One browser (one cookie) walks Kotte's UI
flow through it:

  login, me, csrf-token, session/status (kotte-server) -> session/connect
  (Python) -> session/status says connected (kotte-server, issue 16) ->
  graph routes on both Python replicas -> saved connections: create, list,
  read back, delete (kotte-server) -> logout (kotte-server) -> the cookie is
  refused on both kinds, and the Python replicas' graph database
  connections of the session are closed (pg_stat_activity).

Every answer must come from the server the Ingress names for its path.

The Python replicas run libkotte's drop-in (libkotte.kotte.asgi:app) over
Kotte's real backend when it is at hand (KOTTE_SUITE_DIR: the cache of
kotte-suite.sh, and Apache AGE in the test PostgreSQL): the graph routes are
then Kotte's /graphs, /graphs/{g}/metadata and /meta-graph on a real AGE
graph. Otherwise (CI: no mirrors, no AGE) over the stand-in of Kotte's app
(bindings/python/tests/standin_kotte.py), whose graph route is a query
through Kotte's get_db_connection; the run says which and why.
"""

from __future__ import annotations

import argparse
import glob
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tests/fault"))
from ingress_nginx import expected_service, ingress_paths, locations  # noqa: E402
from stack import SECRETS, CReplica, PyReplica, Replica, State, free_port, pg_sh  # noqa: E402

OVERLAY = "k8s/overlays/dev-mixed"
GRAPH = "mixed_social"
GRAPH_ROLE = "mixed_graph"  # the graph database login of the connect step
USER, PASSWORD = "admin", "mixed-admin-Passw0rd"
CONN = {"name": "mixed-saved", "host": "db1.internal", "port": 5433, "database": "graphs",
        "username": "graph_reader", "password": "s3cret-Mixed-Passw0rd"}


class KotteReplica(PyReplica):
    """uvicorn libkotte.kotte.asgi:app over Kotte's real backend, as
    k8s/Dockerfile.backend runs it: PyReplica (tests/fault/stack.py) with
    the interpreter and libraries of the kotte-suite.sh cache instead of
    Debian's and the stand-in."""

    def __init__(self, name, workdir, env, state, kotte: dict):
        Replica.__init__(self, name, workdir, env, state)
        self.python = kotte["python"]
        self.env = dict(env, PYTHONPATH=kotte["pythonpath"], KOTTE_BACKEND_DIR=kotte["backend"],
                        USE_UVLOOP="false")
        self.proc = None


def kotte_backend(build_py: str) -> tuple[dict | None, str]:
    """Kotte's real backend from the kotte-suite.sh cache, or (None, why not)."""
    cache = os.environ.get("KOTTE_SUITE_DIR")
    if not cache:
        return None, "KOTTE_SUITE_DIR is not set (the cache of kotte-suite.sh)"
    backends = sorted(glob.glob(os.path.join(cache, "kotte-*", "backend")))
    vendor = os.path.join(cache, "vendor")
    if not backends or not os.path.isdir(vendor):
        return None, f"{cache} holds no Kotte backend and vendored libraries (run kotte-suite.sh)"
    python = os.environ.get("KOTTE_SUITE_PYTHON") or shutil.which("python3") or sys.executable
    paths = [f"{build_py}/bindings/python", vendor,
             os.path.join(cache, "debroot", "usr", "lib", "python3", "dist-packages")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    if subprocess.run([python, "-c", "import uvicorn"], env=env, capture_output=True).returncode:
        shim = Path(cache) / "mixed-uvicorn-shim"  # Debian's uvicorn, borrowed
        shim.mkdir(exist_ok=True)
        for mod in ("uvicorn", "asgiref"):
            if not (shim / mod).exists():
                (shim / mod).symlink_to(Path("/usr/lib/python3/dist-packages") / mod)
        paths.insert(1, str(shim))
    pythonpath = os.pathsep.join(paths)
    check = subprocess.run([python, "-c", "import pydantic, uvicorn, libkotte.kotte, psycopg_pool;"
                            "assert pydantic.VERSION.startswith('2')"],
                           env=dict(os.environ, PYTHONPATH=pythonpath), capture_output=True, text=True)
    if check.returncode != 0:
        return None, f"{python} cannot run Kotte's backend: {check.stderr.strip().splitlines()[-1:]}"
    return {"backend": backends[-1], "pythonpath": pythonpath, "python": python}, ""


class Browser:
    """One cookie, as a browser keeps it for one origin (the nginx port)."""

    def __init__(self, port: int):
        self.port, self.cookie = port, None

    def call(self, method: str, path: str, body=None, csrf: str | None = None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Host": "kotte.localtest.me"}
        if self.cookie:
            headers["Cookie"] = f"kotte_session={self.cookie}"
        if csrf:
            headers["X-CSRF-Token"] = csrf
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            c.request(method, path, body=data, headers=headers)
            r = c.getresponse()
            raw = r.read()
            for k, v in r.getheaders():
                if k.lower() == "set-cookie" and v.startswith("kotte_session="):
                    value = v.split(";", 1)[0].split("=", 1)[1]
                    self.cookie = None if value in ("", "null") else value
            try:
                js = json.loads(raw) if raw else None
            except ValueError:
                js = raw.decode(errors="replace")
            return r.status, js, r.getheader("X-Kotte-Upstream", "")
        finally:
            c.close()


class Run:
    def __init__(self, a):
        self.a, self.work = a, Path(a.workdir)
        self.state = State(self.work / "state")
        self.passed, self.failed = 0, []
        self.upstreams: dict[str, str] = {}  # "127.0.0.1:port" -> replica name
        self.seen: dict[str, set] = {"c": set(), "py": set()}

    def check(self, ok: bool, what: str) -> bool:
        if ok:
            self.passed += 1
            print(f"  ok   {what}", flush=True)
        else:
            self.failed.append(what)
            print(f"  FAIL {what}", flush=True)
        return ok

    # ---- stack ------------------------------------------------------------

    def psql(self, sql: str) -> str:
        return pg_sh("psql", self.pgdir, "-At", "-c", sql).strip()

    def up(self) -> None:
        a = self.a
        d = self.work / "pg"
        self.state.add("pgdir", d)
        out = pg_sh("start", "--dir", str(d))
        self.pgdir = re.search(r"KOTTE_TEST_PG_DIR='([^']+)'", out).group(1)
        self.pgport = int(re.search(r"KOTTE_TEST_PG_PORT='(\d+)'", out).group(1))
        self.psql(f"CREATE ROLE {GRAPH_ROLE} LOGIN SUPERUSER")  # LOAD 'age' needs one
        has_age = self.psql("SELECT count(*) FROM pg_extension WHERE extname = 'age'") == "1"
        kotte, why = kotte_backend(a.build_py)
        if kotte and not has_age:
            kotte, why = None, "Apache AGE is not installed in this PostgreSQL"
        if kotte is None and a.require_kotte:
            raise RuntimeError(f"--require-kotte: {why}")
        self.mode = "kotte" if kotte else "stand-in"
        where = "Kotte's real backend" if kotte else f"the stand-in of Kotte's app ({why})"
        print(f"mixed run: Python replicas over {where}", flush=True)
        if kotte:
            self.psql(f"LOAD 'age'; SET search_path = ag_catalog, \"$user\", public; "
                      f"SELECT create_graph('{GRAPH}'); SELECT * FROM cypher('{GRAPH}', $$ "
                      f"CREATE (:Person {{name: 'Ada'}})-[:KNOWS]->(:Person {{name: 'Grace'}}) $$) "
                      f"AS (v agtype)")
        env = {"SESSION_STORAGE_TYPE": "postgresql", "CREDENTIAL_STORAGE_TYPE": "postgresql",
               "DB_HOST": "127.0.0.1", "DB_PORT": str(self.pgport), "DB_NAME": "kotte",
               "DB_USER": "kotte_app", "DB_PASSWORD": "", "ENVIRONMENT": "development",
               "RATE_LIMIT_ENABLED": "false", "FORWARDED_ALLOW_IPS": "*", "LOG_LEVEL": "WARNING",
               "DB_FOLLOW_CHECK_INTERVAL": "1", **SECRETS}
        p = subprocess.run([a.server_bin, "user", "add", USER], input=PASSWORD + "\n", text=True,
                           env=dict(os.environ, **env), capture_output=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError(f"kotte-server user add: {p.stderr}")
        self.c = CReplica("kotte-server", self.work, env, self.state, a.server_bin)
        if kotte:
            self.py = [KotteReplica(f"py{i}", self.work, env, self.state, kotte) for i in (1, 2)]
        else:
            self.py = [PyReplica(f"py{i}", self.work, env, self.state, a.build_py) for i in (1, 2)]
        for r in [self.c, *self.py]:
            r.start()
            self.upstreams[f"127.0.0.1:{r.port}"] = r.name
        self.host, self.paths = ingress_paths(OVERLAY)
        self.nginx_up()

    def nginx_up(self) -> None:
        nd = self.work / "nginx"
        (nd / "tmp").mkdir(parents=True, exist_ok=True)
        ups = {"kotte-server": ("kotte_server", [self.c]), "kotte-backend": ("kotte_backend", self.py)}
        upstream_text = "\n    ".join(
            f"upstream {name} {{\n" + "".join(f"        server 127.0.0.1:{r.port} max_fails=0;\n"
                                               for r in reps) + "        keepalive 32;\n    }"
            for name, reps in ups.values())
        self.port = free_port()
        server = (f"server {{\n        listen 127.0.0.1:{self.port};\n        server_name {self.host};\n"
                  "        # which replica answered, for the checks (test only)\n"
                  "        add_header X-Kotte-Upstream $upstream_addr always;\n        "
                  + locations(self.paths, {svc: name for svc, (name, _) in ups.items()})
                  + "\n    }")
        text = (ROOT / "tests/fault/nginx.conf.in").read_text().replace("@DIR@", str(nd))
        text = text.replace("@UPSTREAMS@", upstream_text).replace("@SERVERS@", server)
        conf = nd / "nginx.conf"
        conf.write_text(text)
        for args in (["-t"], []):
            p = subprocess.run(["nginx", "-c", str(conf), "-p", str(nd), *args],
                               capture_output=True, text=True, timeout=30)
            if p.returncode != 0:
                raise RuntimeError(f"nginx {' '.join(args)}: {p.stderr.strip()}")
        deadline = time.monotonic() + 10
        while not (nd / "nginx.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.nginx_pid = int((nd / "nginx.pid").read_text())
        self.state.add("pid", self.nginx_pid)

    # ---- the walk -----------------------------------------------------------

    def call(self, b: Browser, method: str, path: str, want: int, body=None, csrf=None):
        status, js, up = b.call(method, path, body, csrf)
        name = self.upstreams.get(up.split(",")[-1].strip(), up or "nginx")
        kind = "c" if name == "kotte-server" else "py" if name.startswith("py") else "?"
        if kind in self.seen:
            self.seen[kind].add(name)
        svc = expected_service(self.paths, path.split("?", 1)[0])
        want_kind = {"kotte-server": "c", "kotte-backend": "py"}.get(svc, "?")
        self.check(status == want and kind == want_kind,
                   f"{method} {path} -> {status} from {name} (want {want} from {svc})"
                   + ("" if status == want else f": {str(js)[:300]}"))
        return js

    def graph_connections(self) -> int:
        return int(self.psql(f"SELECT count(*) FROM pg_stat_activity WHERE usename = '{GRAPH_ROLE}'"))

    def rollback_keeps_login(self, b: Browser, cfg: dict) -> None:
        """The rollback to the Python-only overlay sends kotte-server's paths
        to the Python replicas (k8s/README.md, "Rollback"): the cookie
        kotte-server issued must still be a login there, connected as before."""
        for r in self.py:
            direct = Browser(r.port)
            direct.cookie = b.cookie
            status, me, _ = direct.call("GET", "/api/v1/auth/me")
            # user_id: the stand-in's me has no username; Kotte's has both
            self.check(status == 200 and isinstance(me, dict) and me.get("user_id") == self.user_id,
                       f"after a rollback {r.name} answers me for kotte-server's cookie: {status} {me}")
            status, st, _ = direct.call("GET", "/api/v1/session/status")
            self.check(status == 200 and isinstance(st, dict) and st.get("connected") is True
                       and st.get("host") == cfg["host"],
                       f"after a rollback {r.name}'s session/status: {status} {st}")

    def walk(self) -> None:
        b = Browser(self.port)
        js = self.call(b, "POST", "/api/v1/auth/login", 200, {"username": USER, "password": PASSWORD})
        csrf = (js or {}).get("csrf_token") if isinstance(js, dict) else None
        me = self.call(b, "GET", "/api/v1/auth/me", 200)
        self.check(isinstance(me, dict) and me.get("username") == USER, f"me is {USER}: {me}")
        self.user_id = me.get("user_id") if isinstance(me, dict) else None
        tok = self.call(b, "GET", "/api/v1/auth/csrf-token", 200)
        self.check(isinstance(tok, dict) and tok.get("csrf_token") == csrf, "csrf-token is the login's")
        st = self.call(b, "GET", "/api/v1/session/status", 200)
        self.check(isinstance(st, dict) and st.get("connected") is False, f"not connected yet: {st}")
        cfg = {"host": "127.0.0.1", "port": self.pgport, "database": "kotte", "user": GRAPH_ROLE,
               "password": "mixed-graph-" + os.urandom(6).hex()}
        self.call(b, "POST", "/api/v1/session/connect", 201, {"connection": cfg}, csrf)
        st = self.call(b, "GET", "/api/v1/session/status", 200)
        self.check(isinstance(st, dict) and st.get("connected") is True and st.get("host") == cfg["host"]
                   and st.get("port") == cfg["port"] and st.get("database") == cfg["database"],
                   f"kotte-server's session/status says what Kotte would: {st}")
        for _ in range(3):  # round robin: both Python replicas serve the graph
            if self.mode == "kotte":
                graphs = self.call(b, "GET", "/api/v1/graphs", 200)
                self.check(GRAPH in [g.get("name") for g in graphs or [] if isinstance(g, dict)],
                           f"graph {GRAPH} listed")
                meta = self.call(b, "GET", f"/api/v1/graphs/{GRAPH}/metadata", 200)
                labels = [n.get("label") for n in (meta or {}).get("node_labels", [])] \
                    if isinstance(meta, dict) else []
                self.check("Person" in labels, f"metadata has label Person: {labels}")
                self.call(b, "GET", f"/api/v1/graphs/{GRAPH}/meta-graph", 200)
            else:
                q = self.call(b, "GET", "/api/v1/standin/query", 200)
                self.check(isinstance(q, dict) and q.get("db_user") == GRAPH_ROLE,
                           f"the query ran on the session's connection: {q}")
        self.check(self.seen["py"] == {r.name for r in self.py},
                   f"both Python replicas served the graph routes: {sorted(self.seen['py'])}")
        self.check(self.graph_connections() > 0, "the Python side holds graph database connections")
        saved = self.call(b, "POST", "/api/v1/connections", 201, CONN, csrf)
        cid = saved.get("id") if isinstance(saved, dict) else None
        lst = self.call(b, "GET", "/api/v1/connections", 200)
        self.check(isinstance(lst, list) and cid in [x.get("id") for x in lst], "saved connection listed")
        one = self.call(b, "GET", f"/api/v1/connections/{cid}", 200)
        self.check(isinstance(one, dict) and one.get("password") == CONN["password"],
                   "saved connection read back with its password")
        self.call(b, "DELETE", f"/api/v1/connections/{cid}", 204, csrf=csrf)
        self.call(b, "GET", f"/api/v1/connections/{cid}", 404)
        self.rollback_keeps_login(b, cfg)
        cookie = b.cookie
        self.call(b, "POST", "/api/v1/auth/logout", 200, csrf=csrf)
        b.cookie = cookie  # the old cookie, replayed
        self.call(b, "GET", "/api/v1/auth/me", 401)
        graph_path = "/api/v1/graphs" if self.mode == "kotte" else "/api/v1/standin/query"
        self.call(b, "GET", graph_path, 401)
        # the replicas' periodic check (DB_FOLLOW_CHECK_INTERVAL=1) closes what
        # the ended session held; 20 s is a generous bound, not a speed claim
        deadline = time.monotonic() + 20
        while self.graph_connections() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.check(self.graph_connections() == 0,
                   "logout on kotte-server ended the Python replicas' graph database connections")

    def down(self) -> None:
        try:
            os.kill(self.nginx_pid, signal.SIGQUIT)
        except (AttributeError, ProcessLookupError):
            pass
        for r in getattr(self, "py", []):
            if r.alive():
                r.signal(signal.SIGTERM)
                code, problem = r.wait_exit(20)
                self.check(not problem, f"{r.name} stopped on SIGTERM {problem}")
        if getattr(self, "c", None) and self.c.alive():
            self.c.signal(signal.SIGTERM)
            code, problem = self.c.wait_exit(30)
            self.check(code == 0 and not problem, f"kotte-server exited {code} on SIGTERM, clean {problem[:300]}")
        if getattr(self, "pgdir", None):
            pg_sh("stop", self.pgdir)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--server-bin", required=True)
    ap.add_argument("--build-py", required=True)
    ap.add_argument("--require-kotte", action="store_true",
                    help="fail instead of using the stand-in when Kotte's backend or AGE is missing")
    a = ap.parse_args()
    run = Run(a)
    try:
        run.up()
        run.walk()
    except Exception as e:  # noqa: BLE001 - reported as a failure, the stack still stops
        run.failed.append(f"{type(e).__name__}: {e}")
        print(f"  FAIL {type(e).__name__}: {e}", flush=True)
    finally:
        run.down()
    print(f"mixed run ({getattr(run, 'mode', '?')}): {run.passed} passed, {len(run.failed)} failed")
    return 1 if run.failed else 0


if __name__ == "__main__":
    sys.exit(main())
