"""The stack of the fault run, all real processes on this machine:

* a PostgreSQL 15 primary and a streaming standby (tests/pg/pg.sh), both on
  one port, the primary on 127.0.0.1 and the standby on 127.0.0.2, so that
  one DB_HOST=127.0.0.1,127.0.0.2 with one DB_PORT names both (kotte-server
  and the drop-in take a single DB_PORT); libpq's PGTARGETSESSIONATTRS=
  read-write in the replicas' environment makes every pool connection go to
  whichever of the two is the primary;
* kotte-server replicas (tests/server/harness.py starts them and checks a
  clean exit) and uvicorn replicas of libkotte.kotte.asgi:app on the stand-in
  of Kotte's app package (bindings/python/tests/standin_kotte.py), all with
  the same SESSION_SECRET_KEY and MASTER_ENCRYPTION_KEY on that database;
* nginx in front of them, configured as ingress-nginx proxies (nginx.conf.in).

Every process started here is remembered in a state file so that
tests/fault/run.sh can stop exactly those if this driver dies.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PG_SH = ROOT / "tests/pg/pg.sh"
sys.path.insert(0, str(ROOT / "tests/server"))
sys.path.insert(0, str(ROOT / "bindings/python/tests"))
from harness import Server  # noqa: E402  (kotte-server under test, clean-exit checks)
from standin_kotte import write_standin  # noqa: E402

PG_ADDRS = ("127.0.0.1", "127.0.0.2")
# The stand-in's users (standin_kotte.py); kotte-server gets the same ones in
# kotte_users, so a mixed upstream (see --proxy mixed) can log in anywhere.
USERS = {"admin": "admin", "alice": "wonderland"}
SECRETS = {
    "SESSION_SECRET_KEY": "fault-run-session-secret-shared-by-all-replicas",
    "MASTER_ENCRYPTION_KEY": "5f0e1d2c3b4a59687786950a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class State:
    """pids and PostgreSQL folders this run owns, one `kind value` a line."""

    def __init__(self, path: Path):
        self.path = path

    def add(self, kind: str, value) -> None:
        with open(self.path, "a") as f:
            f.write(f"{kind} {value}\n")


def pg_sh(*args: str, timeout: float = 120) -> str:
    p = subprocess.run(["bash", str(PG_SH), *args], capture_output=True, text=True,
                       timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"pg.sh {' '.join(args)}: {p.stderr.strip()[-2000:]}")
    return p.stdout


class PgPair:
    """A primary and a streaming standby on one port, two loopback addresses."""

    def __init__(self, state: State, workdir: Path):
        self.state, self.workdir, self.n = state, workdir, 0
        out = self.start_server()
        self.port = int(re.search(r"KOTTE_TEST_PG_PORT='(\d+)'", out).group(1))
        self.primary = (re.search(r"KOTTE_TEST_PG_DIR='([^']+)'", out).group(1), PG_ADDRS[0])
        self.standby = None
        self.make_standby(PG_ADDRS[1])

    def start_server(self, *args: str) -> str:
        """pg.sh start in a folder of the work dir; a few tries, since a free
        port can be taken by someone else before the server binds it."""
        for attempt in range(3):
            self.n += 1
            d = self.workdir / f"pg{self.n}"
            self.state.add("pgdir", d)
            try:
                return pg_sh("start", "--dir", str(d), *args)
            except RuntimeError as e:
                pg_sh("stop", str(d))
                if attempt == 2 or "already in use" not in str(e):
                    raise
        raise AssertionError("unreachable")

    def make_standby(self, addr: str) -> None:
        """A new standby of the current primary (pg_basebackup -R) on addr."""
        out = self.start_server("--standby-of", self.primary[0], "--port", str(self.port),
                                "-c", f"listen_addresses={addr}")
        self.standby = (re.search(r"KOTTE_TEST_PG_DIR='([^']+)'", out).group(1), addr)

    def wait_streaming(self, timeout: float = 60) -> None:
        """Until the primary reports the standby streaming."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = pg_sh("psql", self.primary[0], "-At", "-c",
                        "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
            if out.strip() == "1":
                return
            time.sleep(0.2)
        raise RuntimeError("the standby is not streaming")

    def host_list(self) -> str:
        return ",".join(PG_ADDRS)

    def restart_primary(self) -> None:
        pg_sh("restart", self.primary[0], "fast")

    def fail_over(self) -> None:
        """Switchover: the primary stops (fast: its WAL reaches the standby
        first), the standby is promoted. The old primary stays down.
        Only while the standby streams: a fast stop waits for a connected
        standby to confirm the WAL, not for one still reconnecting after a
        restart of the primary (the fault before this one), whose promotion
        would lose the commits it never received, as an operator's
        switchover onto a lagging standby would (a short run lost 76 saved
        connections so)."""
        self.wait_streaming()
        pg_sh("stop-server", self.primary[0], "fast")
        pg_sh("promote", self.standby[0])
        self.old_primary, self.primary, self.standby = self.primary, self.standby, None

    def rebuild_standby(self) -> None:
        """Drops the old primary's folder; a new standby takes its address."""
        old_dir, addr = self.old_primary
        pg_sh("stop", old_dir)
        self.make_standby(addr)

    def psql(self, sql: str) -> str:
        return pg_sh("psql", self.primary[0], "-At", "-c", sql).strip()

    def db_env(self) -> dict:
        return {"SESSION_STORAGE_TYPE": "postgresql", "CREDENTIAL_STORAGE_TYPE": "postgresql",
                "DB_HOST": self.host_list(), "DB_PORT": str(self.port), "DB_NAME": "kotte",
                "DB_USER": "kotte_app", "DB_PASSWORD": "", "DB_CONNECT_TIMEOUT": "2",
                "PGTARGETSESSIONATTRS": "read-write"}

    def stop(self) -> None:
        for d in (self.primary, self.standby, getattr(self, "old_primary", None)):
            if d:
                try:
                    pg_sh("stop", d[0])
                except Exception as e:  # noqa: BLE001 - best effort at the end
                    print(f"pg.sh stop {d[0]}: {e}", flush=True)


def common_env(pg: PgPair) -> dict:
    env = dict(pg.db_env())
    env.update(SECRETS)
    env.update({"ENVIRONMENT": "development", "RATE_LIMIT_ENABLED": "false",
                # the run is shorter than these; nothing expires on its own
                "SESSION_IDLE_TIMEOUT": "7200", "SESSION_MAX_AGE": "86400",
                "FORWARDED_ALLOW_IPS": "*", "LOG_LEVEL": "WARNING"})
    return env


class Replica:
    """One replica on a fixed port (nginx's upstream names it)."""

    kind = "?"

    def __init__(self, name: str, workdir: Path, env: dict, state: State):
        self.name, self.port, self.state = name, free_port(), state
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.env = env
        self.starts = 0

    def answers(self, path: str = "/api/v1/auth/me", cookie: str | None = None,
                timeout: float = 2.0) -> int | None:
        """The status of one GET straight to this replica, None if none came."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request("GET", path, headers={"Cookie": f"kotte_session={cookie}"} if cookie else {})
            r = c.getresponse()
            r.read()
            return r.status
        except (OSError, http.client.HTTPException):
            return None
        finally:
            c.close()

    def wait_listening(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited at start; see {self.dir}")
            if self.answers("/api/v1/auth/me") is not None:
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not answer within {timeout}s")


class CReplica(Replica):
    kind = "c"

    def __init__(self, name, workdir, env, state, binary: str):
        super().__init__(name, workdir, env, state)
        self.binary = binary
        self.srv = None

    def start(self) -> None:
        env = dict(self.env, KOTTE_SERVER_HOST="127.0.0.1", KOTTE_SERVER_PORT=str(self.port))
        self.starts += 1
        self.srv = Server(self.binary, env=env, datadir=str(self.dir), name=f"{self.name}.{self.starts}")
        self.srv.start(timeout=30)
        self.state.add("pid", self.srv.proc.pid)
        self.wait_listening()

    def alive(self) -> bool:
        return self.srv is not None and self.srv.proc.poll() is None

    def pid(self) -> int:
        return self.srv.proc.pid

    def signal(self, sig) -> None:
        self.srv.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> tuple[int | None, str]:
        """Waits for the exit the last signal asked for; (code, problem or "")."""
        try:
            code = self.srv.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None, f"did not exit within {timeout:.0f}s"
        if code == -signal.SIGKILL:
            return code, ""
        try:  # the harness's checks: exit 0 and no sanitizer report
            self.srv.stop(timeout=1)
        except AssertionError as e:
            return code, str(e)[:3000]
        return code, ""

    def kill_now(self) -> None:
        if self.alive():
            self.srv.kill()


class PyReplica(Replica):
    """uvicorn libkotte.kotte.asgi:app as k8s/Dockerfile.backend runs it, on
    the stand-in app plus one route (standin_main.py: read a saved connection
    back with its secrets, as Kotte's GET /connections/{id} does)."""

    kind = "py"
    python = "/usr/bin/python3"  # Debian's, with python3-uvicorn and the built module

    def __init__(self, name, workdir, env, state, build_py: str):
        super().__init__(name, workdir, env, state)
        backend = write_standin(workdir / "standin")
        (backend / "app" / "fault_main.py").write_text((HERE / "standin_main.py").read_text())
        self.env = dict(env, PYTHONPATH=f"{build_py}/bindings/python", KOTTE_BACKEND_DIR=str(backend),
                        KOTTE_APP="app.fault_main:app")
        self.proc = None

    def start(self) -> None:
        self.starts += 1
        log = open(self.dir / f"uvicorn.{self.starts}.log", "wb")
        self.proc = subprocess.Popen(
            [self.python, "-m", "uvicorn", "libkotte.kotte.asgi:app", "--host", "127.0.0.1",
             "--port", str(self.port), "--proxy-headers", "--forwarded-allow-ips", "*",
             "--timeout-keep-alive", "75",
             "--log-level", "warning"],
            env=self.env, cwd=self.dir, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.state.add("pid", self.proc.pid)
        self.wait_listening()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> tuple[int | None, str]:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None, f"did not exit within {timeout:.0f}s (log: {self.dir})"
        if code not in (0, -signal.SIGKILL):
            return code, f"exited {code} (log: {self.dir}/uvicorn.{self.starts}.log)"
        return code, ""

    def kill_now(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)


class Nginx:
    """nginx over named groups of replicas: one listening port per group."""

    def __init__(self, workdir: Path, groups: dict, state: State):
        self.dir = workdir / "nginx"
        (self.dir / "tmp").mkdir(parents=True, exist_ok=True)
        self.ports = {g: free_port() for g in groups}
        ups, servers = [], []
        for g, reps in groups.items():
            ups.append(f"upstream kotte_{g} {{\n"
                       + "".join(f"        server 127.0.0.1:{r.port} max_fails=0;\n" for r in reps)
                       + "        keepalive 320;\n        keepalive_timeout 60s;\n"
                         "        keepalive_requests 10000;\n    }")
            servers.append(f"server {{\n        listen 127.0.0.1:{self.ports[g]};\n"
                           f"        location /api/ {{ proxy_pass http://kotte_{g}; }}\n    }}")
        text = (HERE / "nginx.conf.in").read_text().replace("@DIR@", str(self.dir))
        text = text.replace("@UPSTREAMS@", "\n    ".join(ups)).replace("@SERVERS@", "\n    ".join(servers))
        self.conf = self.dir / "nginx.conf"
        self.conf.write_text(text)
        self.state = state

    def start(self) -> None:
        for args in (["-t"], []):
            p = subprocess.run(["nginx", "-c", str(self.conf), "-p", str(self.dir), *args],
                               capture_output=True, text=True, timeout=30)
            if p.returncode != 0:
                raise RuntimeError(f"nginx {' '.join(args)}: {p.stderr.strip()}")
        deadline = time.monotonic() + 10
        while not (self.dir / "nginx.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.pid = int((self.dir / "nginx.pid").read_text())
        self.state.add("pid", self.pid)

    def stop(self) -> None:
        try:
            os.kill(self.pid, signal.SIGQUIT)
        except (AttributeError, ProcessLookupError):
            pass
