"""libkotte.kotte.ConnectionStorage against Kotte's contract, and the import
of Kotte's connections.json.

What Kotte's routes (app/api/v1/connections.py) and its integration tests
(tests/integration/test_connections.py) need: save returns the new id and
refuses a duplicate name with ValueError; get returns the connection with
username and password, or None; list returns metadata only; delete returns
True or False; timestamps are ISO strings.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest

import libkotte
from conftest import TEST_KEY, child_env, settings_for
from libkotte import capi

pytestmark = pytest.mark.skipif(not hasattr(capi, "kotte_cred_store_open"),
                                reason="this libkotte build has no credential store")

GET_KEYS = {"id", "user_id", "name", "host", "port", "database", "sslmode", "created_at",
            "updated_at", "username", "password"}
LIST_KEYS = {"id", "name", "host", "port", "database", "created_at", "updated_at"}


@pytest.fixture(params=["memory", "json_file", "postgresql"])
def cred_backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        from conftest import require_pg

        require_pg()
        if not hasattr(capi, "kotte_cred_backend_postgresql_new"):
            if os.environ.get("KOTTE_TEST_REQUIRE_PG") == "1":
                pytest.fail("no postgresql credential backend in this build")
            pytest.skip("this libkotte build has no postgresql credential backend")
    return request.param


@pytest.fixture
def storage(cred_backend: str, tmp_path: Path) -> Iterator["ConnectionStorage"]:
    from libkotte.kotte import ConnectionStorage

    s = ConnectionStorage(settings=settings_for("memory", tmp_path,
                                                credential_storage_type=cred_backend))
    try:
        yield s
    finally:
        s.close()


def _save(s, user="u1", name="Prod graph", password="pw-Ω-1"):
    return s.save_connection(user_id=user, name=name, host="db.example", port=5432,
                             database="graphs", username="reader", password=password,
                             sslmode="require")


def test_save_get_list_delete(storage):
    cid = _save(storage)
    assert str(uuid.UUID(cid)) == cid
    got = storage.get_connection("u1", cid)
    assert set(got) == GET_KEYS
    assert (got["id"], got["user_id"], got["name"]) == (cid, "u1", "Prod graph")
    assert (got["host"], got["port"], got["database"]) == ("db.example", 5432, "graphs")
    assert (got["username"], got["password"], got["sslmode"]) == ("reader", "pw-Ω-1", "require")
    for k in ("created_at", "updated_at"):
        t = datetime.fromisoformat(got[k])
        assert t.tzinfo is not None and abs(t - datetime.now(timezone.utc)) < timedelta(seconds=5)
    listed = storage.list_connections("u1")
    assert len(listed) == 1 and set(listed[0]) == LIST_KEYS
    assert listed[0]["created_at"] == got["created_at"]
    assert storage.list_connections("nobody") == []
    assert storage.delete_connection("u1", cid) is True
    assert storage.delete_connection("u1", cid) is False
    assert storage.get_connection("u1", cid) is None


def test_duplicate_name_is_a_value_error_per_user(storage):
    _save(storage, name="dup")
    with pytest.raises(ValueError, match="Connection 'dup' already exists"):
        _save(storage, name="dup")
    _save(storage, user="u2", name="dup")  # another user may use the name


def test_unknown_foreign_and_malformed_ids_give_none(storage):
    cid = _save(storage)
    assert storage.get_connection("u2", cid) is None  # never another user's record
    assert storage.delete_connection("u2", cid) is False
    assert storage.get_connection("u1", str(uuid.uuid4())) is None
    assert storage.get_connection("u1", "not-a-uuid") is None
    assert storage.get_connection("u1", "") is None
    assert storage.get_connection("u1", cid)["password"] == "pw-Ω-1"


def test_sslmode_none_means_libpqs_default(storage):
    cid = storage.save_connection("u1", "n", "h", 5432, "d", "u", "p")
    assert storage.get_connection("u1", cid)["sslmode"] in (None, "prefer")


def test_invalid_fields_are_value_errors(storage):
    with pytest.raises(ValueError):
        storage.save_connection("u1", "", "h", 5432, "d", "u", "p")
    with pytest.raises(ValueError):
        storage.save_connection("u1", "n", "h", 70000, "d", "u", "p")


def test_json_file_holds_no_clear_text_and_survives_reopen(tmp_path: Path):
    from libkotte.kotte import ConnectionStorage

    settings = settings_for("memory", tmp_path, credential_storage_type="json_file")
    a = ConnectionStorage(settings=settings)
    secret = "clear-text-must-not-appear-%d" % os.getpid()
    cid = _save(a, password=secret)
    a.close()
    raw = Path(settings.credential_storage_path).read_bytes()
    assert secret.encode() not in raw and b"reader" not in raw
    b = ConnectionStorage(settings=settings)
    try:
        assert b.get_connection("u1", cid)["password"] == secret
    finally:
        b.close()


def test_kottes_own_file_at_the_path_gets_a_clear_error(tmp_path: Path):
    from libkotte.kotte import ConnectionStorage

    kotte_file = tmp_path / "connections.json"
    kotte_file.write_text('{"user:u1": {}}')
    s = ConnectionStorage(settings=settings_for("memory", tmp_path,
                                                credential_storage_type="json_file",
                                                credential_storage_path=str(kotte_file)))
    with pytest.raises(libkotte.CorruptStoreError, match="import-connections"):
        s.list_connections("u1")
    assert kotte_file.read_text() == '{"user:u1": {}}'


# ---- import of Kotte's connections.json ------------------------------------

KOTTE_KEY = "test-master-key-must-be-32-bytes-long-12345"


def _kotte_encrypt(key: str, user_id: str, plaintext: str) -> str:
    """Kotte's scheme, written from its description: Fernet under PBKDF2-SHA256."""
    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32,
                     salt=hashlib.sha256(user_id.encode()).digest()[:16], iterations=100_000)
    f = Fernet(base64.urlsafe_b64encode(kdf.derive(key.encode()[:32])))
    return base64.b64encode(f.encrypt(plaintext.encode())).decode()


def _kotte_file(path: Path) -> dict[str, tuple[str, str, str]]:
    made = {}
    data: dict = {}
    for user, n in (("admin", 2), ("7f9c-user", 1)):
        for i in range(n):
            cid = str(uuid.uuid4())
            t = datetime(2025, 1, 2, 3, 4, 5, 600000 + i, tzinfo=timezone.utc).isoformat()
            pw = f"pw-{user}-{i}-ü"
            data.setdefault(f"user:{user}", {})[cid] = {
                "id": cid, "user_id": user, "name": f"conn {i}", "host": "h", "port": 5432 + i,
                "database": "db", "encrypted_username": _kotte_encrypt(KOTTE_KEY, user, "usr"),
                "encrypted_password": _kotte_encrypt(KOTTE_KEY, user, pw), "sslmode": None,
                "created_at": t, "updated_at": t}
            made[cid] = (user, pw, t)
    path.write_text(json.dumps(data, indent=2))
    return made


def _run_import(tmp_path: Path, *args: str, key: str = KOTTE_KEY) -> subprocess.CompletedProcess:
    settings = settings_for("memory", tmp_path, credential_storage_type="json_file")
    env = child_env(CREDENTIAL_STORAGE_TYPE="json_file",
                    CREDENTIAL_STORAGE_PATH=settings.credential_storage_path,
                    MASTER_ENCRYPTION_KEY=TEST_KEY, KOTTE_MASTER_ENCRYPTION_KEY=key,
                    ENVIRONMENT="test")
    return subprocess.run([sys.executable, "-m", "libkotte.kotte", "import-connections", *args],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_import_connections_keeps_ids_times_and_secrets(tmp_path: Path):
    from libkotte.kotte import ConnectionStorage

    src = tmp_path / "kotte" / "connections.json"
    src.parent.mkdir()
    made = _kotte_file(src)
    p = _run_import(tmp_path, str(src))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "imported 3, skipped 0" in p.stdout
    s = ConnectionStorage(settings=settings_for("memory", tmp_path,
                                                credential_storage_type="json_file"))
    try:
        for cid, (user, pw, t) in made.items():
            got = s.get_connection(user, cid)
            assert got["password"] == pw and got["username"] == "usr"
            assert datetime.fromisoformat(got["created_at"]) == datetime.fromisoformat(t)
        assert len(s.list_connections("admin")) == 2
    finally:
        s.close()
    again = _run_import(tmp_path, str(src))
    assert again.returncode == 0 and "imported 0, skipped 3" in again.stdout


def test_import_with_the_wrong_kotte_key_fails_loudly(tmp_path: Path):
    src = tmp_path / "kotte-connections.json"
    _kotte_file(src)
    p = _run_import(tmp_path, str(src), key="another-key-that-is-also-32-bytes-long!")
    assert p.returncode == 1 and "failed 3" in p.stdout
    assert "wrong Kotte master key" in p.stderr


def test_import_with_one_damaged_entry_writes_nothing(tmp_path: Path):
    from libkotte.kotte import ConnectionStorage

    src = tmp_path / "kotte-connections.json"
    made = _kotte_file(src)
    data = json.loads(src.read_text())
    user_key = next(iter(data))
    cid = next(iter(data[user_key]))
    data[user_key][cid]["encrypted_password"] = "bm90IGEgZmVybmV0IHRva2Vu"  # not a Fernet token
    src.write_text(json.dumps(data))
    p = _run_import(tmp_path, str(src))
    assert p.returncode == 1 and "imported 0, skipped 0" in p.stdout and "failed 1" in p.stdout
    assert "nothing was written" in p.stderr
    s = ConnectionStorage(settings=settings_for("memory", tmp_path,
                                                credential_storage_type="json_file"))
    try:
        for cid, (user, _pw, _t) in made.items():
            assert s.list_connections(user) == []
    finally:
        s.close()


def test_import_refuses_to_overwrite_kottes_file_in_place(tmp_path: Path):
    settings = settings_for("memory", tmp_path, credential_storage_type="json_file")
    src = Path(settings.credential_storage_path)
    _kotte_file(src)
    before = src.read_bytes()
    p = _run_import(tmp_path, str(src))
    assert p.returncode == 2 and "Move Kotte's file first" in p.stderr
    assert src.read_bytes() == before
