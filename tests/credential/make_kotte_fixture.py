#!/usr/bin/python3
"""Writes a connections.json as an existing Kotte installation has it, and
what it holds in plain text, for the import tests.

    make_kotte_fixture.py OUTDIR MASTER_ENCRYPTION_KEY

OUTDIR/connections.json: {"user:<user_id>": {"<uuid>": {...}}}, each
username and password sealed the way Kotte seals them: a Fernet token under
a per-user key, PBKDF2-HMAC-SHA256 over the first 32 bytes of the master key
taken as raw text, salt = the first 16 bytes of SHA-256(user_id), 100,000
iterations, 32 bytes, urlsafe-base64 encoded; the token's text is stored
base64-encoded. OUTDIR/expected.json: the same connections in plain text.

Uses Debian's python3-cryptography (run with /usr/bin/python3).
"""
import base64
import hashlib
import json
import os
import sys
import uuid
from datetime import datetime, timedelta, timezone

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC


def fernet_for(master_key: str, user_id: str) -> Fernet:
    raw_master = master_key.encode("utf-8")[:32]
    salt = hashlib.sha256(user_id.encode("utf-8")).digest()[:16]
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=100_000)
    return Fernet(base64.urlsafe_b64encode(kdf.derive(raw_master)))


def seal(f: Fernet, text: str) -> str:
    return base64.b64encode(f.encrypt(text.encode("utf-8"))).decode("ascii")


# (user_id, name, host, port, database, sslmode, username, password)
CONNECTIONS = [
    ("alice", "production", "db.example.internal", 5432, "graphs", "require",
     "graph_reader", "correct horse battery staple"),
    ("alice", "staging", "10.0.0.7", 6543, "graphs_staging", None,
     "stage", "p@ss \"quoted\" \\ back\\slash"),
    ("alice", "local socket", "", 5432, "", "prefer", "", ""),
    ("1", "production", "db.example.internal", 5432, "graphs", "verify-full",
     "admin", "pässwörd ✓ ünïcode"),
    ("ünïcödé user", "Ωmega", "omega.example", 1, "Ω", "disable", "ω", "secret/with/slashes"),
]


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    outdir, master_key = sys.argv[1], sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    base = datetime(2025, 3, 14, 15, 9, 26, 535897, tzinfo=timezone.utc)
    store, expected = {"user:bob": {}}, []
    for i, (user, name, host, port, database, sslmode, username, password) in enumerate(CONNECTIONS):
        f = fernet_for(master_key, user)
        created = base + timedelta(days=i, seconds=i)
        if i == 1:
            created = created.replace(microsecond=0)  # isoformat() then has no fraction
        updated = created + timedelta(hours=i)
        cid = str(uuid.uuid4())
        record = {
            "id": cid,
            "user_id": user,
            "name": name,
            "host": host,
            "port": port,
            "database": database,
            "encrypted_username": seal(f, username),
            "encrypted_password": seal(f, password),
            "sslmode": sslmode,
            "created_at": created.isoformat(),
            "updated_at": updated.isoformat(),
        }
        store.setdefault(f"user:{user}", {})[cid] = record
        expected.append({k: v for k, v in record.items() if not k.startswith("encrypted_")}
                        | {"username": username, "password": password})
    with open(os.path.join(outdir, "connections.json"), "w", encoding="utf-8") as out:
        json.dump(store, out, indent=2)
    with open(os.path.join(outdir, "expected.json"), "w", encoding="utf-8") as out:
        json.dump(expected, out, indent=2, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
