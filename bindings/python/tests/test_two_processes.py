"""Two Python processes share one store (json_file, postgresql).

The test process creates a session; a second process, configured only by
Kotte's environment variables, reads it (including the sealed password),
updates it, and, once told to, deletes it; the first process sees the update
and then the deletion.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TEST_KEY, child_env, env_of, settings_for
from libkotte.kotte import KotteSettings, SessionManager

CHILD = r"""
import asyncio, json, sys
from libkotte.kotte import KotteSettings, SessionManager

async def main(sid):
    m = SessionManager(KotteSettings.from_env(env_file=None))
    s = await m.get_session(sid)
    print(json.dumps({"user_id": s["user_id"], "cfg": s["connection_config"],
                      "created_at": s["created_at"].isoformat()}), flush=True)
    await m.update_session(sid, {"graph_context": "set-by-child", "role": "admin"})
    print("updated", flush=True)
    assert sys.stdin.readline().strip() == "delete"
    await m.delete_session(sid)
    assert await m.get_session(sid) is None
    print("deleted", flush=True)
    m.close()

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.parametrize("backend", ["json_file", "postgresql"])
async def test_create_here_read_update_delete_there(backend: str, tmp_path: Path):
    if backend == "postgresql":
        from conftest import require_pg

        require_pg()
    settings = settings_for(backend, tmp_path)
    m = SessionManager(settings)
    try:
        sid = await m.create_session("alice", {"username": "alice", "password": "pw-Ω"})
        env = child_env(**env_of(settings))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, sid, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        async def line() -> str:
            raw = await asyncio.wait_for(proc.stdout.readline(), 30)  # type: ignore[union-attr]
            if not raw:
                err = await proc.stderr.read()  # type: ignore[union-attr]
                pytest.fail(f"child ended early: {err.decode()}")
            return raw.decode().strip()

        try:
            seen = json.loads(await line())
            assert seen["user_id"] == "alice"
            assert seen["cfg"] == {"username": "alice", "password": "pw-Ω"}
            mine = await m.get_session(sid)
            assert seen["created_at"] == mine["created_at"].isoformat()
            assert await line() == "updated"
            after = await m.get_session(sid)
            assert after["graph_context"] == "set-by-child" and after["role"] == "admin"
            proc.stdin.write(b"delete\n")  # type: ignore[union-attr]
            await proc.stdin.drain()  # type: ignore[union-attr]
            assert await line() == "deleted"
            assert await asyncio.wait_for(proc.wait(), 30) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert await m.get_session(sid) is None
        # logout wins: an update from this process does not bring it back
        await m.update_session(sid, {"graph_context": "late"})
        assert await m.get_session(sid) is None
    finally:
        m.close()


def test_environment_round_trip_of_the_settings(tmp_path: Path):
    s = settings_for("json_file", tmp_path)
    assert KotteSettings.from_env(env_of(s), env_file=None) == s
    assert s.master_encryption_key == TEST_KEY


def test_a_forked_child_reopens_its_own_store(tmp_path: Path):
    """gunicorn --preload style: the manager was used before fork(); the child
    must not touch the parent's runtime thread (it does not exist there)."""
    import os

    m = SessionManager(settings_for("json_file", tmp_path))
    try:
        sid = asyncio.run(m.create_session("parent"))
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                os.close(r)
                s = asyncio.run(m.get_session(sid))
                new = asyncio.run(m.create_session("child"))
                os.write(w, f"{s['user_id']} {new}".encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        with os.fdopen(r) as f:
            out = f.read()
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, out
        user, child_sid = out.split()
        assert user == "parent"
        assert asyncio.run(m.get_session(child_sid))["user_id"] == "child"
    finally:
        m.close()
