"""Replicas of an ASGI app as separate uvicorn processes, as behind a load balancer.

Each replica's output goes to a log file (``Replica.log``), so that a test
can read (and grep) what it wrote.
"""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Optional, Sequence

import httpx

from conftest import free_port, wait_http


class Replica:
    def __init__(self, proc: subprocess.Popen, base: str, log: Path) -> None:
        self.proc, self.base, self.log = proc, base, log

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=kw.pop("timeout", 30), **kw)


@contextmanager
def replicas(n: int, env: Mapping[str, str], cwd: Path, *, app: str = "libkotte.kotte.asgi:app",
             python: Optional[str] = None, probe: str = "/api/v1/auth/me",
             log_level: str = "warning", names: Sequence[str] = ("a", "b", "c", "d"),
             start_timeout: float = 60) -> Iterator[list[Replica]]:
    """Starts ``n`` uvicorn processes of ``app`` and stops them on exit."""
    started: list[Replica] = []
    try:
        for i in range(n):
            port = free_port()
            log = cwd / f"replica-{names[i]}.log"
            f = open(log, "wb")
            proc = subprocess.Popen([python or sys.executable, "-m", "uvicorn", app,
                                     "--host", "127.0.0.1", "--port", str(port),
                                     "--log-level", log_level],
                                    env=dict(env), cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
            f.close()
            started.append(Replica(proc, f"http://127.0.0.1:{port}", log))
        deadline = time.monotonic() + start_timeout
        for r in started:
            wait_http(r.base + probe, r.proc, deadline, lambda r=r: r.output()[-4000:])
        yield started
    finally:
        for r in started:
            r.proc.terminate()
        for r in started:
            try:
                r.proc.wait(10)
            except subprocess.TimeoutExpired:
                r.proc.kill()
                r.proc.wait()
