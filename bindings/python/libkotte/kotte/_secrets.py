"""The drop-in's master key and key ring.

The key is Kotte's ``MASTER_ENCRYPTION_KEY`` (with
``MASTER_ENCRYPTION_KEYS_PREVIOUS`` while rotating). Without it Kotte
(outside production) falls back to a development key kept in
``.master_encryption_key`` beside ``CREDENTIAL_STORAGE_PATH``; the drop-in
reads or creates that same file, so a development setup keeps working, and
refuses to start in production without a key, as Kotte does.

Both stores seal with the same libkotte key ring: the credential store its
username and password fields, the session store every value marked
``{"$secret": value}`` (the drop-in marks the password of
``connection_config``), sealed in C before any backend sees it.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any

from .config import KotteSettings

log = logging.getLogger("libkotte.kotte")

DEV_KEY_FILENAME = ".master_encryption_key"
SECRET = "$secret"  # the session store's marker (kotte/session.h)


def master_key(settings: KotteSettings) -> str:
    """MASTER_ENCRYPTION_KEY, or the development key file; ValueError in production without one."""
    if settings.master_encryption_key:
        return settings.master_encryption_key
    if settings.environment == "production":
        raise ValueError("MASTER_ENCRYPTION_KEY must be set in production")
    path = Path(settings.credential_storage_path).parent / DEV_KEY_FILENAME
    key = _read_dev_key(path)
    if key is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # 32 random bytes in base64 (a Fernet key, as Kotte writes it): a
        # key the key ring takes as it is, without stretching.
        new = base64.urlsafe_b64encode(os.urandom(32)).decode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race: use its key
            key = _read_dev_key(path)
            if key is None:
                raise ValueError(f"unusable development key file {path}") from None
        else:
            with os.fdopen(fd, "w") as f:
                f.write(new)
                f.flush()
                os.fsync(f.fileno())
            key = new
    if settings.environment != "test":
        msg = ("MASTER_ENCRYPTION_KEY is not set: using the development key in "
               f"{path}. Set MASTER_ENCRYPTION_KEY in production.")
        log.warning(msg)
        warnings.warn(msg, UserWarning, stacklevel=2)
    return key


def session_secret(settings: KotteSettings) -> bytes:
    """Key material of the json_file and postgresql session backends (the same on every replica).

    SESSION_SECRET_KEY when it is set (Kotte signs its cookies with it, so
    replicas already share it); otherwise a key derived from the master key
    (or, outside production, the development key), as kotte-server derives it.
    """
    if settings.session_secret_key:
        secret = settings.session_secret_key.encode()
        if len(secret) < 16:
            raise ValueError("SESSION_SECRET_KEY must be at least 16 bytes")
        return secret
    master = master_key(settings).encode()
    return hashlib.blake2b(master, digest_size=32, person=b"kotte-pg-session").digest()


def _read_dev_key(path: Path) -> str | None:
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        return None
    return key if len(key.encode()) >= 32 else None


_rings: dict[tuple[int, str, str], Any] = {}
_rings_lock = threading.Lock()


def keyring(settings: KotteSettings) -> Any:
    """The process's key ring for these settings (built once: a passphrase key
    costs an Argon2id stretching)."""
    from ..credentials import KeyRing

    current = master_key(settings)
    previous = os.environ.get("MASTER_ENCRYPTION_KEYS_PREVIOUS", "")
    k = (os.getpid(), current, previous)
    with _rings_lock:
        kr = _rings.get(k)
        if kr is None:
            kr = _rings[k] = KeyRing(current, previous or None)
        return kr


def mark(value: Any) -> dict[str, Any]:
    return {SECRET: value}


def unmark(obj: Any) -> Any:
    """Replaces every {"$secret": v} inside session data by v (in place where it can)."""
    if isinstance(obj, dict):
        if len(obj) == 1 and SECRET in obj:
            return unmark(obj[SECRET])
        for k, v in obj.items():
            obj[k] = unmark(v)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            obj[i] = unmark(v)
    return obj
