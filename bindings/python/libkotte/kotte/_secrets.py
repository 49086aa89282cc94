"""The master key of the drop-in and the sealing of session secrets.

The key is Kotte's ``MASTER_ENCRYPTION_KEY``. Without it Kotte (outside
production) falls back to a development key kept in ``.master_encryption_key``
beside ``CREDENTIAL_STORAGE_PATH``; the drop-in reads or creates that same
file, so a development setup keeps working, and refuses to start in
production without a key, as Kotte does.

Session secrets (the password inside ``connection_config``) are sealed with
libsodium's XChaCha20-Poly1305 through the binding (src/kpy_secret.c) under
a subkey derived from the master key, with associated data that binds each
blob to its user and field. In the store they look like
``{"$kpy_sealed": "<base64url>"}``; get_session() opens them again, so Kotte's
code sees the plain value.
"""

from __future__ import annotations

import base64
import logging
import os
import warnings
from pathlib import Path
from typing import Any

from .. import capi
from .config import KotteSettings

log = logging.getLogger("libkotte.kotte")

DEV_KEY_FILENAME = ".master_encryption_key"
SEALED = "$kpy_sealed"
_CONTEXT = "kotte-ss"  # 8 bytes: libsodium KDF context of session secrets


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


def _read_dev_key(path: Path) -> str | None:
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        return None
    return key if len(key.encode()) >= 32 else None


class SecretSealer:
    """Seals and opens small secrets stored inside session data."""

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("an empty master key")
        self._sealer = capi.kpy_sealer_new(key.encode(), _CONTEXT)

    def __del__(self) -> None:
        s = getattr(self, "_sealer", None)
        if s is not None:
            capi.kpy_sealer_free(s)
            self._sealer = None

    @staticmethod
    def _ad(user_id: str, field: str) -> bytes:
        return b"kotte.session.v1\0" + user_id.encode() + b"\0" + field.encode()

    def seal(self, user_id: str, field: str, value: str) -> dict[str, str]:
        blob = capi.kpy_sealer_seal(self._sealer, self._ad(user_id, field), value.encode())
        return {SEALED: base64.urlsafe_b64encode(blob).decode().rstrip("=")}

    def open(self, user_id: str, field: str, sealed: dict[str, Any]) -> str:
        text = sealed[SEALED]
        blob = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return capi.kpy_sealer_open(self._sealer, self._ad(user_id, field), blob).decode()


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(SEALED), str)
