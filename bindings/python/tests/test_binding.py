"""The SWIG layer: error mapping, GIL release, timeouts, lifecycle."""

from __future__ import annotations

import asyncio
import fcntl
import threading
import time
from pathlib import Path

import pytest

import libkotte
from libkotte import capi, errors

from conftest import SESSION_SECRET


def test_every_c_error_code_maps_to_a_named_exception_class():
    last = capi.KOTTE__ERRNO_LAST
    assert last <= -22
    for code in range(-1, last - 1, -1):
        name = capi.kotte_err_name(code)
        assert name.startswith("KOTTE_E"), (code, name)
        exc = errors.error_for(code, "some detail")
        assert isinstance(exc, errors.KotteError)
        assert type(exc) is not errors.KotteError, f"{name} has no class of its own"
        assert exc.code == code and exc.name == name and exc.detail == "some detail"
        assert name in str(exc) and capi.kotte_strerror(code) in str(exc)


def test_exception_classes_also_derive_from_builtin_ones():
    assert issubclass(libkotte.NotFoundError, LookupError)
    assert issubclass(libkotte.BadIdError, ValueError)
    assert issubclass(libkotte.OperationTimeoutError, TimeoutError)
    assert issubclass(libkotte.PoolTimeoutError, TimeoutError)
    assert issubclass(libkotte.StoreIOError, OSError)


def test_negative_code_from_c_raises_with_the_libraries_detail(tmp_path: Path):
    bad = tmp_path / "not-a-journal"
    bad.write_text("this is not a libkotte journal\n")
    with pytest.raises(libkotte.CorruptStoreError) as ei:
        libkotte.SessionStore("json_file", bad, secret=SESSION_SECRET)
    assert str(bad) in ei.value.detail  # kotte_error_detail() of the failing call
    assert bad.read_text() == "this is not a libkotte journal\n"  # never rewritten


def test_malformed_and_unknown_ids_raise_distinct_errors():
    with libkotte.SessionStore() as st:
        with pytest.raises(libkotte.BadIdError):
            st.get("invalid-session-id")
        unknown = st.create("u").id
        st.delete(unknown)
        with pytest.raises(libkotte.NotFoundError):
            st.get(unknown)


def test_a_closed_store_refuses_calls():
    st = libkotte.SessionStore()
    st.close()
    st.close()  # idempotent
    with pytest.raises(libkotte.ClosedError):
        st.create("u")


def test_blocking_call_releases_the_gil_and_honours_its_timeout(tmp_path: Path):
    """A json_file operation waits for the journal lock that this test holds:
    the blocking call must time out after its timeout, and while it waits
    another Python thread must keep running (the GIL is released)."""
    path = tmp_path / "s.journal"
    with libkotte.SessionStore("json_file", path, timeout=0.5, secret=SESSION_SECRET) as st:
        sid = st.create("u").id
        with open(f"{path}.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            ticks = 0
            stop = threading.Event()

            def spin() -> None:
                nonlocal ticks
                while not stop.is_set():
                    ticks += 1

            t = threading.Thread(target=spin)
            t.start()
            try:
                time.sleep(0.05)
                before = ticks
                t0 = time.monotonic()
                with pytest.raises(libkotte.OperationTimeoutError):
                    st.update(sid, {"k": 1})
                waited = time.monotonic() - t0
                during = ticks - before
            finally:
                stop.set()
                t.join()
            fcntl.flock(lock, fcntl.LOCK_UN)
        assert 0.45 <= waited < 3.0, waited
        # With the GIL held for 0.5 s the spinner could not have run at all.
        assert during > 10_000, during
        # The timed-out update still completes in the backend once unlocked.
        deadline = time.monotonic() + 5
        while st.get(sid).data.get("k") != 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)


async def test_asyncio_loop_keeps_running_while_the_store_is_stalled(tmp_path: Path):
    path = tmp_path / "s.journal"
    with libkotte.SessionStore("json_file", path, secret=SESSION_SECRET) as st:
        sid = (await st.aio.create("u")).id
        with open(f"{path}.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            pending = asyncio.ensure_future(st.aio.update(sid, {"k": 2}))
            t0 = time.monotonic()
            beats = 0
            while time.monotonic() - t0 < 0.3:
                await asyncio.sleep(0.01)
                beats += 1
            assert not pending.done()
            assert beats >= 15  # the loop ran ~30 turns of 10 ms while the store was stuck
            fcntl.flock(lock, fcntl.LOCK_UN)
        s = await asyncio.wait_for(pending, 5)
        assert s.data == {"k": 2}


async def test_cancelled_await_does_not_disturb_other_operations():
    with libkotte.SessionStore() as st:
        sid = (await st.aio.create("u", {"n": 0})).id
        tasks = [asyncio.ensure_future(st.aio.get(sid)) for _ in range(50)]
        for t in tasks[::2]:
            t.cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in done[::2])
        assert all(isinstance(r, libkotte.Session) and r.id == sid for r in done[1::2])
        assert (await st.aio.get(sid)).data == {"n": 0}


async def test_async_operations_in_flight_when_the_store_closes_end_cleanly():
    st = libkotte.SessionStore()
    sid = (await st.aio.create("u")).id
    futs = [asyncio.ensure_future(st.aio.get(sid)) for _ in range(200)]
    await asyncio.sleep(0)  # let them start
    st.close()
    results = await asyncio.wait_for(asyncio.gather(*futs, return_exceptions=True), 5)
    for r in results:
        assert isinstance(r, (libkotte.Session, libkotte.CanceledError, libkotte.ClosedError)), r
    with pytest.raises(libkotte.ClosedError):
        await st.aio.get(sid)


async def test_bridge_per_event_loop_works_across_loops():
    with libkotte.SessionStore() as st:
        sid = (await st.aio.create("u")).id

        def in_other_loop() -> str:
            return asyncio.run(st.aio.get(sid)).id

        other = await asyncio.get_running_loop().run_in_executor(None, in_other_loop)
        assert other == sid
        assert (await st.aio.get(sid)).id == sid


def test_runtime_close_closes_its_stores():
    rt = libkotte.Runtime()
    st = libkotte.SessionStore(runtime=rt)
    st.create("u")
    rt.close()
    assert st.closed
    with pytest.raises(libkotte.ClosedError):
        st.create("u")


def test_pool_state_says_why_it_cannot_connect_without_waiting():
    """PgPool.state(): a server that is not there shows as failing, with
    libpq's reason and never the password; reading it runs no query."""
    import socket
    import time

    from libkotte.pg import PgPool

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with libkotte.Runtime() as rt:
        pool = PgPool(f"host=127.0.0.1 port={port} user=u dbname=d password=n0t-in-state",
                      runtime=rt, connect_timeout=2)
        deadline = time.monotonic() + 10
        st = pool.state()
        while not st["failing"] and time.monotonic() < deadline:
            time.sleep(0.02)
            st = pool.state()
        assert st["failing"] and st["ready"] == 0 and st["failures"] >= 1, st
        assert "Connection refused" in st["last_error"], st
        assert "n0t-in-state" not in st["last_error"]
        assert st["failing_since"] is not None and st["failing_since"].tzinfo is not None
        assert pool.stats()["queries"] == 0
        pool.close()
        with pytest.raises(libkotte.ClosedError):
            pool.state()


def test_strings_with_a_nul_are_refused_not_cut_short(tmp_path: Path):
    """C reads a string up to its first NUL: a Python str holding one would
    reach libkotte shortened ("pw\\0tail" stored as "pw"), so the binding
    refuses it; session data goes through JSON, where the NUL arrives
    escaped (\\u0000) and libkotte refuses it."""
    with libkotte.SessionStore() as st:
        with pytest.raises(libkotte.InvalidArgumentError):
            st.create("alice\x00bob")
        with pytest.raises(libkotte.InvalidArgumentError):
            st.create("alice", {"pw": "pw\x00tail"})
        s = st.create("alice", {"pw": "\\u0000"})  # a backslash and u0000: kept
        assert st.get(s.id).data == {"pw": "\\u0000"}
        with pytest.raises(libkotte.InvalidArgumentError):
            st.update(s.id, {"pw": "x\x00"})
        with pytest.raises(libkotte.InvalidArgumentError):
            st.get(s.id + "\x00junk")
        assert st.list_user("alice")[0].id == s.id
    if not hasattr(capi, "kotte_cred_store_open"):
        return
    from libkotte.credentials import CredentialStore, KeyRing
    cs = CredentialStore("memory", keyring=KeyRing("00112233445566778899aabbccddeeff" * 2))
    try:
        with pytest.raises(libkotte.InvalidArgumentError):
            cs.save("u1", name="g", host="h", port=5432, database="d", username="usr",
                    password="pw\x00tail")
        with pytest.raises(libkotte.InvalidArgumentError):
            cs.save("u1\x00x", name="g", host="h", port=5432, database="d", username="usr",
                    password="pw")
        assert cs.list_user("u1") == []
    finally:
        cs.close()
