"""The drop-in and the database schema, at start-up and for /ready.

A database without libkotte's migrations, or with an older schema, would
otherwise serve until a user's first login fails with a bare database
error. So install() checks the schema when a store is on PostgreSQL (by
opening the stores, which refuse such a schema with
:class:`~libkotte.errors.SchemaError`), after migrating first when
KOTTE_MIGRATE_ON_START is true; and ``libkotte.kotte.asgi`` answers
``/api/v1/ready`` with 503 and the reason while the schema is wrong.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional

from .config import KotteSettings

log = logging.getLogger("libkotte.kotte")

MIGRATE_COMMAND = "python3 -m libkotte.kotte migrate"


def uses_pg(settings: KotteSettings) -> bool:
    return "postgresql" in (settings.session_storage_type, settings.credential_storage_type)


def sql_dir(settings: KotteSettings) -> str:
    """KOTTE_SQL_DIR, else the first installed copy of libkotte's sql/."""
    if settings.kotte_sql_dir:
        return settings.kotte_sql_dir
    here = Path(__file__).resolve()
    candidates = [Path(p) / "share" / "kotte" / "sql" for p in ("/opt/libkotte", "/usr/local", "/usr")]
    candidates += [parent / "sql" for parent in here.parents]  # a source tree
    for c in candidates:
        if (c / "migrations").is_dir():
            return str(c)
    raise FileNotFoundError("no libkotte sql/ folder found: set KOTTE_SQL_DIR")


def migrate(settings: KotteSettings) -> int:
    """Applies sql/ with the DB_* connection (DB_USER must own the database),
    under kotte_pg_migrate()'s advisory lock; returns how many ran."""
    from ..pg import migrate as pg_migrate

    folder = sql_dir(settings)
    log.info("applying libkotte's migrations from %s (waits for any other migrator)", folder)
    n = pg_migrate(settings.conninfo(), folder)
    log.info("%d migration(s) applied", n)
    return n


def startup(settings: KotteSettings, manager: Any, storage: Any) -> None:
    """Migrates if asked, then opens the PostgreSQL stores, which check the
    schema: a missing or older one raises SchemaError here, at start-up."""
    if not uses_pg(settings):
        return
    if settings.kotte_migrate_on_start:
        migrate(settings)
    if settings.session_storage_type == "postgresql":
        manager.store  # noqa: B018 - opening is the check
    if storage is not None and settings.credential_storage_type == "postgresql":
        storage.store  # noqa: B018


def problem(settings: KotteSettings, timeout: float = 5.0) -> Optional[str]:
    """Why the schema is wrong now, or None (also when it cannot be asked:
    the stores' own errors say that)."""
    if not uses_pg(settings):
        return None
    from ..errors import SchemaError
    from ._pg import shared_pool

    try:
        shared_pool(settings).schema_version(timeout)
    except SchemaError as e:
        return e.detail or str(e)
    except Exception as e:  # noqa: BLE001 - the database is away: not a schema problem
        log.debug("schema check for /ready failed: %s", e)
    return None
