"""Settings of the Kotte drop-in, read the way Kotte reads its own.

Kotte (pydantic-settings) reads environment variables case-insensitively and
falls back to a ``.env`` file in the working directory; so does this module.
The names are Kotte's, plus ``SESSION_STORAGE_TYPE`` and
``SESSION_STORAGE_PATH`` which Kotte does not have yet:

=========================  ============================  =====================
variable                   default                       used for
=========================  ============================  =====================
SESSION_STORAGE_TYPE       memory                        memory | json_file | postgresql
SESSION_STORAGE_PATH       ./data/sessions.journal       json_file sessions
SESSION_IDLE_TIMEOUT       1800                          seconds, slid by every read
SESSION_MAX_AGE            3600                          seconds, never extended
CREDENTIAL_STORAGE_TYPE    json_file                     memory | json_file | postgresql
CREDENTIAL_STORAGE_PATH    ./data/connections.json       json_file credentials
MASTER_ENCRYPTION_KEY      (none; a dev key file)        seals saved passwords
SESSION_SECRET_KEY         (derived from the master key) postgresql sessions' row keys
DB_HOST, DB_PORT, DB_NAME,                               the postgresql backends
DB_USER, DB_PASSWORD
DB_CONNECT_TIMEOUT         10                            seconds
DB_POOL_MAX_SIZE           10                            connections per process
DB_FOLLOW_MAX_POOLS        16                            graph pools re-opened per process
DB_FOLLOW_IDLE_TIMEOUT     300                           seconds before an unused one closes
DB_FOLLOW_CHECK_INTERVAL   30                            seconds between session re-checks
DB_FOLLOW_RETRY_AFTER      5                             seconds a failed re-open is remembered
ENVIRONMENT                development                   "production" requires a key
KOTTE_MIGRATE_ON_START     false                         migrate before serving (DB_USER
                                                         must be the database owner)
KOTTE_SQL_DIR              (the installed sql/)          what the migration applies
=========================  ============================  =====================

The DB_FOLLOW_* settings bound the graph database connections a replica
re-opens for sessions connected on another replica (see
:mod:`libkotte.kotte.db_follow`).

With nothing set, the drop-in behaves as Kotte does today: memory sessions
and json_file credentials.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping, Optional

STORAGE_TYPES = ("memory", "json_file", "postgresql")


@dataclass(frozen=True)
class KotteSettings:
    session_storage_type: str = "memory"
    session_storage_path: str = "./data/sessions.journal"
    session_idle_timeout: int = 1800
    session_max_age: int = 3600
    credential_storage_type: str = "json_file"
    credential_storage_path: str = "./data/connections.json"
    master_encryption_key: str = ""
    session_secret_key: str = ""
    db_host: str = "localhost"
    db_port: int = 5432
    db_name: str = "postgres"
    db_user: str = "postgres"
    db_password: str = "postgres"
    db_connect_timeout: int = 10
    db_pool_max_size: int = 10
    db_follow_max_pools: int = 16
    db_follow_idle_timeout: int = 300
    db_follow_check_interval: int = 30
    db_follow_retry_after: int = 5
    environment: str = "development"
    kotte_migrate_on_start: bool = False
    kotte_sql_dir: str = ""

    def __post_init__(self) -> None:
        for name in ("session_storage_type", "credential_storage_type"):
            value = getattr(self, name)
            if value not in STORAGE_TYPES:
                raise ValueError(f"{name.upper()}={value!r} is not supported by libkotte: "
                                 f"use one of {', '.join(STORAGE_TYPES)}")
        for name in ("session_idle_timeout", "session_max_age", "db_pool_max_size",
                     "db_follow_max_pools", "db_follow_idle_timeout", "db_follow_check_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name.upper()} must be positive")
        if self.db_follow_retry_after < 0:
            raise ValueError("DB_FOLLOW_RETRY_AFTER must not be negative")

    def __repr__(self) -> str:  # never print a secret
        shown = []
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("master_encryption_key", "session_secret_key", "db_password") and v:
                v = "***"
            shown.append(f"{f.name}={v!r}")
        return f"KotteSettings({', '.join(shown)})"

    def conninfo(self) -> str:
        """A libpq connection string for the DB_* settings (holds the password)."""
        def q(v: Any) -> str:
            s = str(v).replace("\\", "\\\\").replace("'", "\\'")
            return f"'{s}'"

        parts = {"host": self.db_host, "port": self.db_port, "dbname": self.db_name,
                 "user": self.db_user, "password": self.db_password,
                 "connect_timeout": self.db_connect_timeout,
                 "application_name": "kotte-libkotte"}
        return " ".join(f"{k}={q(v)}" for k, v in parts.items() if v not in (None, ""))

    # ---- loading ------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None,
                 env_file: Optional[str | os.PathLike[str]] = ".env",
                 kotte_settings: Any = None) -> "KotteSettings":
        """Settings from (in this order of precedence) the environment, the
        ``.env`` file, Kotte's own settings object (for the names it has) and
        the defaults."""
        values: dict[str, str] = {}
        if env_file is not None and Path(env_file).is_file():
            values.update(_read_env_file(Path(env_file)))
        env = os.environ if environ is None else environ
        values.update({k.lower(): v for k, v in env.items()})
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            raw: Any = values.get(f.name)
            if raw is None and kotte_settings is not None:
                raw = getattr(kotte_settings, f.name, None)
            if raw is None:
                continue
            kwargs[f.name] = _convert(f.name, f.type, raw)
        return cls(**kwargs)

    def with_(self, **changes: Any) -> "KotteSettings":
        return replace(self, **changes)


_TRUE = ("1", "true", "yes", "on", "t", "y")
_FALSE = ("0", "false", "no", "off", "f", "n", "")


def _convert(name: str, typ: Any, raw: Any) -> Any:
    if typ in (bool, "bool"):
        if isinstance(raw, bool):
            return raw
        v = str(raw).strip().lower()
        if v in _TRUE or v in _FALSE:
            return v in _TRUE
        raise ValueError(f"{name.upper()} must be true or false, not {raw!r}")
    if typ in (int, "int"):
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{name.upper()} must be an integer, not {raw!r}") from None
    value = str(raw)
    if name.endswith("_storage_type"):
        value = value.strip().lower()
    return value


def _read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, # comments, optional `export` and quotes (as dotenv reads them)."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[len("export "):]
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        out[key.strip().lower()] = value
    return out
