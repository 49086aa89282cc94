"""libkotte.queries: the query registry from Python (memory and postgresql).

The postgresql case runs two registries in this process on their own pools,
as two replicas would: a cancel asked on one reaches the other's handler
through PostgreSQL's NOTIFY, and its answer comes back."""

from __future__ import annotations

import threading

import pytest

from conftest import require_pg
from libkotte import capi
from libkotte.errors import ForbiddenError, NotFoundError, NotSupportedError
from libkotte.pg import PgPool
from libkotte.queries import CancelRequest, QueryRegistry


def test_memory_registry_register_cancel_and_forbidden():
    seen: list[CancelRequest] = []

    def on_cancel(req: CancelRequest) -> None:
        seen.append(req)
        # answered from another thread, later, as an asyncio loop would
        threading.Timer(0.05, req.done, args=(0,)).start()

    with QueryRegistry(on_cancel=on_cancel) as reg:
        assert reg.backend == "memory" and reg.ready() and len(reg.replica_id) == 43
        reg.register("r1", "alice", 0)
        reg.set_backend_pid("r1", 4321)
        q = reg.get("r1")
        assert (q.user_id, q.backend_pid, q.local) == ("alice", 4321, True)
        assert [x.request_id for x in reg.list_user("alice")] == ["r1"]
        with pytest.raises(ForbiddenError):
            reg.cancel("r1", "mallory")
        assert seen == []
        with pytest.raises(NotFoundError):
            reg.cancel("nope", "alice")
        reg.cancel("r1", "alice")
        assert [(r.request_id, r.user_id, r.backend_pid) for r in seen] == [("r1", "alice", 4321)]
        with pytest.raises(NotFoundError):
            reg.get("r1")  # unregistered by the cancel
        with pytest.raises(NotFoundError):
            reg.unregister("r1")
        assert reg.purge() == 0


def test_without_a_handler_cancel_is_not_supported():
    with QueryRegistry() as reg:
        reg.register("r1", "alice")
        with pytest.raises(NotSupportedError):
            reg.cancel("r1", "alice")


def test_a_handler_that_raises_answers_not_found():
    def on_cancel(req: CancelRequest) -> None:
        raise RuntimeError("boom")

    with QueryRegistry(on_cancel=on_cancel) as reg:
        reg.register("r1", "alice")
        with pytest.raises(NotFoundError):
            reg.cancel("r1", "alice")


def test_close_answers_what_the_handler_never_will():
    held: list[CancelRequest] = []
    reg = QueryRegistry(on_cancel=held.append)  # never answers
    reg.register("r1", "alice")
    out: dict[str, BaseException] = {}

    def cancel() -> None:
        try:
            reg.cancel("r1", "alice", timeout=30)
        except BaseException as e:  # noqa: BLE001
            out["e"] = e

    t = threading.Thread(target=cancel)
    t.start()
    import time

    t0 = time.monotonic()
    while not held:
        assert time.monotonic() - t0 < 10
        time.sleep(0.01)
    reg.close()  # without the answer it gives, this would wait for ever
    t.join(10)
    assert not t.is_alive()
    assert isinstance(out.get("e"), NotFoundError), out
    assert held[0].answered


def test_postgresql_cancel_reaches_the_other_registry():
    ci = require_pg()
    got: list[CancelRequest] = []

    def on_cancel(req: CancelRequest) -> None:
        got.append(req)
        req.done(0 if req.backend_pid == 99 else capi.KOTTE_ENOTFOUND)

    with PgPool(ci) as pa, PgPool(ci) as pb:
        with QueryRegistry("postgresql", pool=pa, on_cancel=on_cancel) as a, \
                QueryRegistry("postgresql", pool=pb) as b:
            import time

            t0 = time.monotonic()
            while not (a.ready() and b.ready()):
                assert time.monotonic() - t0 < 10
                time.sleep(0.01)
            a.register("pq-1", "alice", 99)
            info = b.get("pq-1")
            assert info.replica_id == a.replica_id and not info.local
            with pytest.raises(ForbiddenError):
                b.cancel("pq-1", "bob")
            b.cancel("pq-1", "alice")
            assert [r.request_id for r in got] == ["pq-1"]
            with pytest.raises(NotFoundError):
                b.get("pq-1")
