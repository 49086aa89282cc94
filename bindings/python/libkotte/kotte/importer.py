"""Import of Kotte's ``connections.json`` into a libkotte credential store.

Kotte's file maps ``"user:<user id>"`` to that user's connections; each
holds ``id, user_id, name, host, port, database, sslmode, created_at,
updated_at`` and ``encrypted_username`` / ``encrypted_password``: base64 of
a Fernet token whose key is PBKDF2-HMAC-SHA256 (100,000 iterations, salt =
the first 16 bytes of SHA-256 of the user id) of the first 32 bytes of
Kotte's master key. The import opens them with that key (Debian's
python3-cryptography) and saves every connection with its id and times into
the store CREDENTIAL_STORAGE_TYPE names, sealed under libkotte's key ring.
All or nothing, like the C importer (examples/import-connections): every
entry is decrypted and checked first, and if any cannot be (a wrong key, a
damaged entry) nothing is written. Connections already there (same id) are
skipped, so a second run is harmless.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from ..credentials import CredentialStore
from ..errors import AlreadyExistsError, KotteError

KOTTE_PBKDF2_ITERATIONS = 100_000


@dataclass
class ImportReport:
    imported: int = 0
    skipped: int = 0  # already in the store
    failed: list[str] = field(default_factory=list)  # "<user>/<id>: why"


def kotte_dev_key(connections_file: Path) -> Optional[str]:
    """Kotte's development key file beside its connections file, if any."""
    p = connections_file.parent / ".master_encryption_key"
    try:
        key = p.read_text().strip()
    except FileNotFoundError:
        return None
    return key or None


def _fernet_for(master_key: str, user_id: str):
    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    raw = master_key.encode()
    if len(raw) < 32:
        raise ValueError("Kotte's master key must be at least 32 bytes")
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32,
                     salt=hashlib.sha256(user_id.encode()).digest()[:16],
                     iterations=KOTTE_PBKDF2_ITERATIONS)
    return Fernet(base64.urlsafe_b64encode(kdf.derive(raw[:32])))


def read_kotte_file(path: Path) -> dict[str, dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not Kotte's connections file (not a JSON object)")
    return data


def import_connections(path: str | os.PathLike[str], kotte_key: str, store: CredentialStore,
                       *, dry_run: bool = False) -> ImportReport:
    """Imports every connection of Kotte's file at ``path`` into ``store``,
    or none of them: ``report.failed`` lists what could not be read, and then
    nothing was written (``report.imported`` is 0)."""
    from cryptography.fernet import InvalidToken

    src = Path(path)
    report = ImportReport()
    ready: list[tuple[str, dict[str, Any]]] = []  # (where, save() arguments)
    for user_key, conns in read_kotte_file(src).items():
        if not user_key.startswith("user:") or not isinstance(conns, dict):
            report.failed.append(f"{user_key}: not a user entry")
            continue
        user_id = user_key[len("user:"):]
        fernet = _fernet_for(kotte_key, user_id)  # one PBKDF2 per user, not per field
        for cid, c in conns.items():
            where = f"{user_id}/{cid}"
            try:
                ready.append((where, dict(
                    user_id=user_id, name=c["name"], host=c["host"], port=int(c["port"]),
                    database=c["database"],
                    username=fernet.decrypt(base64.b64decode(c["encrypted_username"])).decode(),
                    password=fernet.decrypt(base64.b64decode(c["encrypted_password"])).decode(),
                    sslmode=c.get("sslmode"), id=c.get("id") or cid,
                    created_at=_parse(c.get("created_at")),
                    updated_at=_parse(c.get("updated_at")))))
            except InvalidToken:
                report.failed.append(f"{where}: cannot decrypt (wrong Kotte master key?)")
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                report.failed.append(f"{where}: malformed entry ({e.__class__.__name__})")
    try:
        if report.failed:
            return report  # all or nothing: nothing written
        if dry_run:
            report.imported = len(ready)
            return report
        for where, args in ready:
            user_id = args.pop("user_id")
            try:
                store.save(user_id, **args)
                report.imported += 1
            except AlreadyExistsError:
                report.skipped += 1
            except KotteError as e:  # the store refused it (e.g. a name too long)
                report.failed.append(f"{where}: {e}")
        return report
    finally:
        for _, args in ready:  # drop the plaintext secrets as soon as possible
            args.clear()
        ready.clear()


def _parse(s: Any) -> Optional[datetime]:
    if not isinstance(s, str) or not s:
        return None
    t = datetime.fromisoformat(s)
    if t.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {s!r}")
    return t
