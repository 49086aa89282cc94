"""A process that used the stores exits: when its script ends, and on
SIGTERM under uvicorn (a rolling restart in Kubernetes).

A store dropped without close() (``ConnectionStorage().list_connections(..)``,
a SessionManager that was a coroutine's local) used to stay open in C: at
exit the binding's atexit handler then waited in kotte_runtime_free() for
ever, and a uvicorn replica told to stop was only killed after the grace
period. Each scenario runs in a fresh interpreter with a bound far above
its normal run time; not exiting within it is the failure.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import libkotte
from conftest import SESSION_SECRET, TEST_KEY, child_env, settings_for
from libkotte.credentials import CredentialStore, KeyRing

EXIT_BOUND_S = 60  # a correctness bound: these processes exit in well under a second

# The reproducer of the hang, and variants around it.
SCENARIOS = {
    "dropped in a coroutine": """
async def main():
    sm = SessionManager()
    await sm.create_session("u")
    ConnectionStorage().list_connections("x")

asyncio.run(main())
""",
    "dropped and collected": """
async def main():
    sm = SessionManager()
    await sm.create_session("u")
    ConnectionStorage().list_connections("x")

asyncio.run(main())
gc.collect()
# a dropped json_file store gave its journal back: it opens again here
ConnectionStorage().list_connections("x")
""",
    "dropped outside a coroutine": """
ConnectionStorage().list_connections("x")
sm = SessionManager()
asyncio.run(sm.create_session("u"))
del sm
gc.collect()
""",
    "kept open until exit": """
sm = SessionManager()
cs = ConnectionStorage()
asyncio.run(sm.create_session("u"))
cs.list_connections("x")
""",
    "closed": """
sm = SessionManager()
cs = ConnectionStorage()
asyncio.run(sm.create_session("u"))
cs.list_connections("x")
sm.close()
cs.close()
""",
}

PRELUDE = "import asyncio, gc\nfrom libkotte.kotte import ConnectionStorage, SessionManager\n"


def _env_for(backend: str, tmp: Path) -> dict[str, str]:
    settings = settings_for(backend, tmp, credential_storage_type=backend)
    env = {f.name.upper(): str(getattr(settings, f.name)) for f in dataclasses.fields(settings)}
    return child_env(**env)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_script_that_used_both_stores_exits(backend: str, scenario: str, tmp_path: Path):
    code = PRELUDE + SCENARIOS[scenario] + 'print("done", flush=True)\n'
    try:
        p = subprocess.run([sys.executable, "-c", code], env=_env_for(backend, tmp_path),
                           cwd=tmp_path, capture_output=True, text=True, timeout=EXIT_BOUND_S)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the interpreter did not exit within {EXIT_BOUND_S} s "
                    f"(output: {e.stdout!r} {e.stderr!r})")
    assert p.returncode == 0 and p.stdout == "done\n", p.stdout + p.stderr


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_dropped_store_is_freed_when_collected(tmp_path: Path):
    """Not at exit only: the last reference gone, the C store is freed (its
    journal is closed) and its runtime no longer holds it."""
    with libkotte.Runtime() as rt:
        gc.collect()  # what earlier tests dropped closes now, not in the loop below
        before = _open_fds()
        for i in range(3):
            s = libkotte.SessionStore("json_file", tmp_path / f"s{i}.journal", runtime=rt,
                                      secret=SESSION_SECRET)
            s.create("u")
            c = CredentialStore("json_file", tmp_path / f"c{i}.journal", runtime=rt,
                                keyring=KeyRing(TEST_KEY))
            c.list_user("x")
            assert _open_fds() > before
            del s, c
            gc.collect()  # a SessionStore and its .aio refer to each other
            assert _open_fds() == before, os.listdir("/proc/self/fd")
            assert rt._open.dependents() == []


# An ASGI app that opens the stores per request and drops them, the way the
# reproducer does, served by uvicorn.
APP = '''
from libkotte.kotte import ConnectionStorage, SessionManager


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    sm = SessionManager()
    sid = await sm.create_session("u")
    n = len(ConnectionStorage().list_connections("x"))
    body = f"{sid} {n}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_stops_a_uvicorn_replica_that_used_both_stores(backend: str, tmp_path: Path):
    (tmp_path / "store_app.py").write_text(APP)
    port = _free_port()
    env = _env_for(backend, tmp_path)
    env["PYTHONPATH"] = f"{tmp_path}:{env.get('PYTHONPATH', '')}"
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "store_app:app", "--host",
                             "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
            try:
                r = httpx.get(base + "/", timeout=10)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.1)
        for _ in range(3):
            r = httpx.get(base + "/", timeout=10)
            assert r.status_code == 200 and r.text.endswith(" 0"), r.text
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(EXIT_BOUND_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"uvicorn did not exit within {EXIT_BOUND_S} s of SIGTERM")
        assert code == 0, proc.stderr.read().decode()  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
