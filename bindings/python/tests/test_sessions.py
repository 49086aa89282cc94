"""SessionStore / AsyncSessionStore against every backend."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import libkotte
from conftest import SESSION_SECRET, open_store


def test_create_get_update_delete(store: libkotte.SessionStore):
    s = store.create("alice", {"graph_context": None, "n": 1})
    assert len(s.id) == 43 and s.user_id == "alice"
    assert s.data == {"graph_context": None, "n": 1}
    for t in (s.created_at, s.last_activity, s.expires_at, s.max_expires_at):
        assert isinstance(t, datetime) and t.tzinfo is not None and t.utcoffset() == timedelta(0)
    assert abs(s.created_at - datetime.now(timezone.utc)) < timedelta(seconds=5)
    assert s.max_expires_at - s.created_at == timedelta(seconds=3600)

    got = store.get(s.id)
    assert got.data == s.data and got.created_at == s.created_at
    assert got.last_activity >= s.last_activity

    merged = store.update(s.id, {"n": 2, "graph_context": "g"})
    assert merged.data == {"graph_context": "g", "n": 2}
    assert store.get(s.id).data == merged.data

    store.delete(s.id)
    with pytest.raises(libkotte.NotFoundError):
        store.get(s.id)
    with pytest.raises(libkotte.NotFoundError):
        store.delete(s.id)


def test_update_after_delete_fails_and_does_not_resurrect(store: libkotte.SessionStore):
    sid = store.create("alice").id
    store.delete(sid)
    with pytest.raises(libkotte.NotFoundError):
        store.update(sid, {"x": 1})
    with pytest.raises(libkotte.NotFoundError):
        store.touch(sid)
    with pytest.raises(libkotte.NotFoundError):
        store.get(sid)


def test_regenerate_list_delete_user_purge(store: libkotte.SessionStore):
    a = store.create("bob", {"k": "v"})
    b = store.create("bob")
    store.create("carol")
    moved = store.regenerate(a.id)
    assert moved.id != a.id and moved.data == {"k": "v"} and moved.created_at == a.created_at
    with pytest.raises(libkotte.NotFoundError):
        store.get(a.id)
    assert {s.id for s in store.list_user("bob")} == {moved.id, b.id}
    assert store.delete_user("bob") == 2
    assert store.list_user("bob") == []
    assert store.purge_expired() == 0
    assert len(store.list_user("carol")) == 1


def test_set_with_caller_id_and_ttl(store: libkotte.SessionStore):
    import secrets

    sid = secrets.token_urlsafe(32)
    s = store.set(sid, "dave", {"a": 1}, ttl=60)
    assert s.id == sid and s.expires_at - s.last_activity <= timedelta(seconds=60)
    assert store.get(sid).data == {"a": 1}


def test_data_limits_and_types(backend: str, tmp_path: Path):
    with open_store(backend, tmp_path, max_data_size=256) as st:
        with pytest.raises(libkotte.TooBigError):
            st.create("u", {"blob": "x" * 1000})
        sid = st.create("u", {"small": 1}).id
        with pytest.raises(libkotte.TooBigError):
            st.update(sid, {"blob": "x" * 1000})
        assert st.get(sid).data == {"small": 1}  # unchanged
        with pytest.raises(TypeError):
            st.create("u", ["not", "a", "mapping"])  # type: ignore[arg-type]
        with pytest.raises(libkotte.InvalidArgumentError):
            st.create("")  # the C store refuses an empty user id
        assert st.create("ü-ser", {"name": "Jürgen ✓"}).data == {"name": "Jürgen ✓"}


def test_idle_expiry_slides_and_max_age_is_absolute(backend: str, tmp_path: Path):
    with open_store(backend, tmp_path, idle_timeout=1, max_age=3) as st:
        idle = st.create("u").id
        kept = st.create("u").id
        for _ in range(3):  # 1.5 s of activity keeps `kept` alive past its first idle expiry
            time.sleep(0.5)
            st.touch(kept)
        with pytest.raises(libkotte.NotFoundError):
            st.get(idle)
        st.get(kept)
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:  # keep using it: the max age still ends it
            try:
                st.get(kept)
            except libkotte.NotFoundError:
                break
            time.sleep(0.3)
        else:
            pytest.fail("the session outlived its maximum age")


async def test_async_api(store: libkotte.SessionStore):
    aio = store.aio
    s = await aio.create("erin", {"a": 1})
    assert (await aio.get(s.id)).data == {"a": 1}
    assert (await aio.update(s.id, {"b": 2})).data == {"a": 1, "b": 2}
    await aio.touch(s.id)
    r = await aio.regenerate(s.id)
    assert [x.id for x in await aio.list_user("erin")] == [r.id]
    await aio.delete(r.id)
    with pytest.raises(libkotte.NotFoundError):
        await aio.get(r.id)
    with pytest.raises(libkotte.BadIdError):
        await aio.get("invalid-session-id")
    await aio.create("erin")
    assert await aio.delete_user("erin") == 1
    assert await aio.purge_expired() == 0


async def test_thousand_concurrent_gets(store: libkotte.SessionStore):
    ids = [(await store.aio.create(f"user{i % 10}", {"i": i})).id for i in range(20)]
    results = await asyncio.gather(*(store.aio.get(ids[i % 20]) for i in range(1000)))
    assert [r.data["i"] for r in results] == [i % 20 for i in range(1000)]


async def test_concurrent_updates_merge_without_losing_keys(store: libkotte.SessionStore):
    sid = (await store.aio.create("u")).id
    await asyncio.gather(*(store.aio.update(sid, {f"k{i}": i}) for i in range(100)))
    assert (await store.aio.get(sid)).data == {f"k{i}": i for i in range(100)}


def test_blocking_calls_from_many_threads(store: libkotte.SessionStore):
    from concurrent.futures import ThreadPoolExecutor

    sid = store.create("u").id

    def work(i: int) -> int:
        store.update(sid, {f"t{i}": i})
        return store.get(sid).data[f"t{i}"]

    with ThreadPoolExecutor(8) as ex:
        assert list(ex.map(work, range(64))) == list(range(64))
    assert len(store.get(sid).data) == 64


def test_json_file_store_survives_reopen(tmp_path: Path):
    path = tmp_path / "s.journal"
    with libkotte.SessionStore("json_file", path, secret=SESSION_SECRET) as st:
        sid = st.create("u", {"kept": True}).id
    assert (path.stat().st_mode & 0o777) == 0o600
    with libkotte.SessionStore("json_file", path, secret=SESSION_SECRET) as st:
        assert st.get(sid).data == {"kept": True}
