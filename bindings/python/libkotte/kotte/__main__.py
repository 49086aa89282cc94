"""Command line of the Kotte drop-in: ``python3 -m libkotte.kotte COMMAND``.

Commands:
  import-connections  import Kotte's connections.json into the credential
                      store that CREDENTIAL_STORAGE_TYPE / _PATH name
  config              print the settings the drop-in would use (no secrets)
  rewrap              re-seal every saved connection under the current key
  migrate             apply libkotte's sql/ migrations to the DB_* database
                      (run it as the database owner; safe to run at once from
                      several places: they take turns under an advisory lock)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional

from .config import KotteSettings


def _import(args: argparse.Namespace, settings: KotteSettings) -> int:
    from .connection_storage import open_credential_store
    from .importer import import_connections, kotte_dev_key

    src = Path(args.source)
    if not src.is_file():
        print(f"import-connections: {src} does not exist", file=sys.stderr)
        return 2
    if settings.credential_storage_type == "json_file" and \
            Path(settings.credential_storage_path).resolve() == src.resolve():
        print(f"import-connections: {src} is also CREDENTIAL_STORAGE_PATH; libkotte's journal "
              "cannot replace Kotte's file in place. Move Kotte's file first (e.g. to "
              f"{src.with_name('kotte-connections.json')}) and import from there.",
              file=sys.stderr)
        return 2
    key = args.kotte_key or os.environ.get("KOTTE_MASTER_ENCRYPTION_KEY") or \
        settings.master_encryption_key or kotte_dev_key(src)
    if not key:
        print("import-connections: no Kotte master key (--kotte-key, "
              "KOTTE_MASTER_ENCRYPTION_KEY, MASTER_ENCRYPTION_KEY or a .master_encryption_key "
              "beside the file)", file=sys.stderr)
        return 2
    with open_credential_store(settings) as store:
        report = import_connections(src, key, store, dry_run=args.dry_run)
    verb = "would import" if args.dry_run else "imported"
    print(f"{verb} {report.imported}, skipped {report.skipped} (already there), "
          f"failed {len(report.failed)}")
    for line in report.failed:
        print(f"  failed: {line}", file=sys.stderr)
    if report.failed and report.imported == 0 and report.skipped == 0:
        print("import-connections: nothing was written (all or nothing)", file=sys.stderr)
    return 1 if report.failed else 0


def _rewrap(args: argparse.Namespace, settings: KotteSettings) -> int:
    from .connection_storage import open_credential_store

    with open_credential_store(settings) as store:
        report = store.rewrap()
    print(json.dumps(report, indent=2))
    return 1 if report["failed"] else 0


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m libkotte.kotte",
                                description="libkotte's drop-in for Kotte's backend")
    sub = p.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import-connections", help="import Kotte's connections.json")
    imp.add_argument("source", help="Kotte's connections.json")
    imp.add_argument("--kotte-key", help="the MASTER_ENCRYPTION_KEY Kotte encrypted it with "
                     "(default: $KOTTE_MASTER_ENCRYPTION_KEY, $MASTER_ENCRYPTION_KEY, or Kotte's "
                     "development key file beside it)")
    imp.add_argument("--dry-run", action="store_true", help="decrypt only; write nothing")
    sub.add_parser("config", help="print the effective settings (secrets masked)")
    sub.add_parser("rewrap", help="re-seal saved connections under the current key")
    mig = sub.add_parser("migrate", help="apply libkotte's migrations (as the database owner)")
    mig.add_argument("--sql-dir", help="the sql/ folder (default: $KOTTE_SQL_DIR or the installed one)")
    args = p.parse_args(argv)
    settings = KotteSettings.from_env()
    if args.command == "config":
        print(repr(settings))
        return 0
    if args.command == "import-connections":
        return _import(args, settings)
    if args.command == "migrate":
        from . import _schema
        from ..errors import KotteError

        if args.sql_dir:
            settings = settings.with_(kotte_sql_dir=args.sql_dir)
        try:
            n = _schema.migrate(settings)
        except (KotteError, FileNotFoundError) as e:
            print(f"migrate: {e}", file=sys.stderr)
            return 1
        print(f"migrate: done, {n} migration(s) applied")
        return 0
    return _rewrap(args, settings)


if __name__ == "__main__":
    sys.exit(main())
