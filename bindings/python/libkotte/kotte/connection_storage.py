"""``ConnectionStorage``: Kotte's saved connections over a libkotte credential store.

Same methods, arguments and results as Kotte's
``app.core.connection_storage.ConnectionStorage``:

* ``save_connection(user_id, name, host, port, database, username, password,
  sslmode=None) -> str`` (the new id; ``ValueError`` for a name the user
  already has, or an invalid field);
* ``get_connection(user_id, connection_id) -> dict | None`` with ``username``
  and ``password`` opened (None for an unknown, another user's or a
  malformed id);
* ``list_connections(user_id) -> list[dict]`` (metadata only);
* ``delete_connection(user_id, connection_id) -> bool``.

Timestamps are ISO 8601 strings in UTC, as Kotte writes them. The store is
chosen by ``CREDENTIAL_STORAGE_TYPE``; secrets are sealed by the C store
with the key ring from ``MASTER_ENCRYPTION_KEY`` (and
``MASTER_ENCRYPTION_KEYS_PREVIOUS``). Like Kotte's, the methods are
synchronous; they release the GIL while they wait.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Dict, List, Optional

from ..credentials import Credential, CredentialStore
from ..errors import AlreadyExistsError, CorruptStoreError, InvalidArgumentError, NotFoundError
from . import _secrets
from .config import KotteSettings


def open_credential_store(settings: KotteSettings,
                          storage_path: Optional[str] = None) -> CredentialStore:
    """The store CREDENTIAL_STORAGE_TYPE asks for."""
    keyring = _secrets.keyring(settings)
    kind = settings.credential_storage_type
    if kind == "memory":
        return CredentialStore("memory", keyring=keyring)
    if kind == "json_file":
        path = storage_path or settings.credential_storage_path
        try:
            return CredentialStore("json_file", path, keyring=keyring)
        except CorruptStoreError as e:
            raise CorruptStoreError(
                f"{e}. If {path} is Kotte's own connections.json, move it aside and import it: "
                "python3 -m libkotte.kotte import-connections <moved file>",
                code=e.code, name=e.name, detail=e.detail) from None
    from ._pg import shared_pool

    return CredentialStore("postgresql", pool=shared_pool(settings), keyring=keyring)


def _full(c: Credential) -> Dict[str, Any]:
    return {"id": c.id, "user_id": c.user_id, "name": c.name, "host": c.host, "port": c.port,
            "database": c.database, "sslmode": c.sslmode, "created_at": c.created_at_iso,
            "updated_at": c.updated_at_iso, "username": c.username, "password": c.password}


def _meta(c: Credential) -> Dict[str, Any]:
    return {"id": c.id, "name": c.name, "host": c.host, "port": c.port, "database": c.database,
            "created_at": c.created_at_iso, "updated_at": c.updated_at_iso}


class ConnectionStorage:
    """Kotte's connection storage, backed by libkotte (see the module docstring).

    Args:
        storage_path: the json_file journal (default: CREDENTIAL_STORAGE_PATH).
        settings: default: from the environment.
        store: use this store instead of opening one.
    """

    def __init__(self, storage_path: Optional[str] = None, *,
                 settings: Optional[KotteSettings] = None,
                 store: Optional[CredentialStore] = None) -> None:
        self.settings = settings if settings is not None else KotteSettings.from_env()
        self.storage_path = storage_path or self.settings.credential_storage_path
        self._given = store
        self._store: Optional[CredentialStore] = None
        self._pid = 0
        self._lock = threading.Lock()

    @property
    def store(self) -> CredentialStore:
        """The libkotte store (opened on first use, and again in a forked child)."""
        st = self._store
        if st is not None and self._pid == os.getpid() and not st.closed:
            return st
        with self._lock:
            st = self._store
            if st is None or self._pid != os.getpid() or st.closed:
                st = self._given or open_credential_store(self.settings, self.storage_path)
                self._store, self._pid = st, os.getpid()
            return st

    def close(self) -> None:
        st, self._store = self._store, None
        if st is not None and st is not self._given and self._pid == os.getpid():
            st.close()

    def save_connection(self, user_id: str, name: str, host: str, port: int, database: str,
                        username: str, password: str, sslmode: Optional[str] = None) -> str:
        try:
            c = self.store.save(user_id, name=name, host=host, port=port, database=database,
                                username=username, password=password, sslmode=sslmode)
        except AlreadyExistsError:
            raise ValueError(f"Connection '{name}' already exists") from None
        except InvalidArgumentError as e:
            raise ValueError(e.detail or str(e)) from None
        return c.id

    def get_connection(self, user_id: str, connection_id: str) -> Optional[Dict[str, Any]]:
        try:
            return _full(self.store.get(user_id, connection_id))
        except NotFoundError:
            return None

    def list_connections(self, user_id: str) -> List[Dict[str, Any]]:
        return [_meta(c) for c in self.store.list_user(user_id)]

    def delete_connection(self, user_id: str, connection_id: str) -> bool:
        try:
            self.store.delete(user_id, connection_id)
        except NotFoundError:
            return False
        return True

    def __repr__(self) -> str:
        return f"<libkotte.kotte.ConnectionStorage {self.settings.credential_storage_type}>"
