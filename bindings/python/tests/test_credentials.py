"""CredentialStore and KeyRing (the Pythonic layer over kotte/credential.h)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

import libkotte
from libkotte import capi

pytestmark = pytest.mark.skipif(not hasattr(capi, "kotte_cred_store_open"),
                                reason="this libkotte build has no credential store")

OLD = "00112233445566778899aabbccddeeff" * 2
NEW = "ffeeddccbbaa99887766554433221100" * 2


@pytest.fixture(params=["memory", "json_file"])
def make_store(request, tmp_path: Path):
    from libkotte.credentials import CredentialStore, KeyRing

    opened = []

    def make(current=OLD, previous=None):
        kr = KeyRing(current, previous)
        st = (CredentialStore("memory", keyring=kr) if request.param == "memory" else
              CredentialStore("json_file", tmp_path / "creds.journal", keyring=kr))
        opened.append(st)
        return st

    yield make
    for st in opened:
        st.close()


def test_save_get_list_update_delete(make_store):
    st = make_store()
    c = st.save("u1", name="g", host="h", port=5432, database="d", username="usr",
                password="pw", sslmode="require")
    assert str(uuid.UUID(c.id)) == c.id and c.password is None  # save returns no secrets
    got = st.get("u1", c.id)
    assert (got.username, got.password, got.sslmode) == ("usr", "pw", "require")
    assert "pw" not in repr(got)
    assert [x.id for x in st.list_user("u1")] == [c.id]
    assert st.list_user("u1")[0].password is None
    upd = st.update("u1", c.id, password="pw2", port=6543)
    assert upd.port == 6543 and upd.updated_at >= upd.created_at
    assert st.get("u1", c.id).password == "pw2"
    with pytest.raises(TypeError):
        st.update("u1", c.id, colour="blue")
    with pytest.raises(libkotte.AlreadyExistsError):
        st.save("u1", name="g", host="h", port=1, database="d", username="u", password="p")
    with pytest.raises(libkotte.NotFoundError):
        st.get("u2", c.id)
    st.delete("u1", c.id)
    with pytest.raises(libkotte.NotFoundError):
        st.delete("u1", c.id)


def test_key_rotation_with_rewrap(make_store, tmp_path: Path):
    from libkotte.credentials import KeyRing

    old = make_store(OLD)
    c = old.save("u1", name="g", host="h", port=5432, database="d", username="u", password="pw")
    old_id = KeyRing(OLD).current_id
    if old.backend == "memory":
        pytest.skip("rotation across stores needs a shared backend")
    old.close()
    rotated = make_store(NEW, [OLD])
    assert rotated.get("u1", c.id).password == "pw"  # opens with the previous key
    report = rotated.rewrap()
    assert report["rewrapped"] == 1 and report["failed"] == 0 and report["stale"] == 0
    assert {k["key_id"]: k["records"] for k in rotated.key_usage()["keys"]} == {
        KeyRing(NEW).current_id: 1}
    rotated.close()
    only_new = make_store(NEW)
    assert only_new.get("u1", c.id).password == "pw"
    assert old_id != KeyRing(NEW).current_id


def test_keyring_refuses_weak_keys():
    from libkotte.credentials import KeyRing

    with pytest.raises(libkotte.KeyRingError):
        KeyRing("short")
    with pytest.raises(libkotte.KeyRingError):
        KeyRing("00" * 32)  # 32 identical bytes
    kr = KeyRing(NEW, [OLD])
    assert len(kr.key_ids) == 2 and kr.key_ids[0] == kr.current_id
