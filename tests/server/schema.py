#!/usr/bin/env python3
"""kotte-server and the database schema: a database without libkotte's
migrations (Kotte's own tables only, the realistic upgrade) or with an older
schema stops the start with a message naming the versions and the command
that migrates; KOTTE_MIGRATE_ON_START=true migrates first (two servers
starting at once on a fresh database both start); a schema that goes wrong
while the server runs makes /api/v1/ready answer 503 with the reason, and a
failing statement's log line names SQLSTATE, PostgreSQL's message and a hint.

Needs the server of tests/pg/pg.sh (KOTTE_TEST_PG_*); without it exits 77.

    python3 tests/server/schema.py path/to/kotte-server
"""

import os
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Client, Server, check, run  # noqa: E402
from pg import pg_env, psql  # noqa: E402

NEED = None  # the version this build needs: the newest sql/migrations file
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def needed_version():
    names = os.listdir(os.path.join(ROOT, "sql", "migrations"))
    return max(int(n.split("_", 1)[0]) for n in names if n.endswith(".sql"))


_n = [0]


def fresh_db(kotte_tables=True):
    """A new database owned by kotte; with Kotte's own users table as
    Kotte's alembic migrations leave it (no libkotte migration applied)."""
    _n[0] += 1
    name = f"kotte_srv_schema_{os.getpid()}_{_n[0]}"
    psql(f"CREATE DATABASE {name} OWNER kotte")
    if kotte_tables:
        psql_db(name, "SET ROLE kotte; CREATE TABLE kotte_users (id bigserial PRIMARY KEY, "
                      "username text UNIQUE, password_hash text NOT NULL, created_at timestamptz "
                      "DEFAULT now(), last_login_at timestamptz)")
    return name


def drop_db(name):
    psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def env_for(db, **extra):
    e = pg_env()
    e.update(DB_NAME=db, **extra)
    return e


def start_fails(binary, env, needles):
    s = Server(binary, env=env)
    p = subprocess.run([binary], env=s.env, cwd=s.dir, capture_output=True, timeout=120)
    err = p.stderr.decode()
    check(p.returncode != 0, f"started on a wrong schema: {p.returncode}")
    for n in needles:
        check(n in err, f"the start's message lacks {n!r}: {err[-1500:]}")
    return err


def test_refuses_a_database_without_the_schema(binary):
    db = fresh_db()
    try:
        start_fails(binary, env_for(db), ["version found none", f"version needed {NEED}",
                                          "kotte-migrate", "KOTTE_MIGRATE_ON_START"])
        # and an older one: migrated, then the newest migration's record taken back
        subprocess.run([os.environ["KOTTE_MIGRATE_BIN"], f"host={os.environ['KOTTE_TEST_PG_DIR']} "
                        f"port={os.environ['KOTTE_TEST_PG_PORT']} user=kotte dbname={db}"],
                       check=True, capture_output=True, timeout=120)
        psql_db(db, f"DELETE FROM kotte_schema_migrations WHERE version = {NEED}")
        start_fails(binary, env_for(db), [f"at version {NEED - 1}", f"needs version {NEED}",
                                          "kotte-migrate"])
    finally:
        drop_db(db)


def psql_db(db, sql):
    return subprocess.run(["bash", os.path.join(ROOT, "tests/pg/pg.sh"), "psql",
                           os.environ["KOTTE_TEST_PG_DIR"], "-At", "-d", db, "-c", sql],
                          check=True, capture_output=True, text=True, timeout=60).stdout.strip()


def test_migrate_on_start_two_at_once(binary):
    """KOTTE_MIGRATE_ON_START=true (as the owner): two servers started at once
    on a fresh database both start, the schema is there once, login works."""
    db = fresh_db()
    env = env_for(db, KOTTE_MIGRATE_ON_START="true", DB_USER="kotte",
                  KOTTE_SQL_DIR=os.path.join(ROOT, "sql"))
    servers = [Server(binary, env=env, name=f"s{i}") for i in range(2)]
    errors = []

    def start(s):
        try:
            s.start(timeout=60)
        except AssertionError as e:
            errors.append(str(e))

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        check(not errors, f"a server did not start: {errors}")
        check(psql_db(db, "SELECT count(*), max(version) FROM kotte_schema_migrations")
              == f"{NEED}|{NEED}", "one schema, every migration once")
        applied = sum(len(s.events("schema_migrated")) for s in servers)
        check(applied == 2, "both servers ran the migration step")
        for s in servers:
            c = Client(s)
            c.login("admin", "pg-admin-Passw0rd")
            r, js, _ = c.request("GET", "/api/v1/ready")
            check(r.status == 200 and js["stores"]["schema"]["ok"], f"ready: {js}")
    finally:
        for s in servers:
            if s.proc:
                s.stop()
        drop_db(db)


def test_ready_and_errors_say_what_is_wrong(binary):
    db = fresh_db()
    subprocess.run([os.environ["KOTTE_MIGRATE_BIN"], f"host={os.environ['KOTTE_TEST_PG_DIR']} "
                    f"port={os.environ['KOTTE_TEST_PG_PORT']} user=kotte dbname={db}"],
                   check=True, capture_output=True, timeout=120)
    srv = Server(binary, env=env_for(db)).start()
    try:
        c = Client(srv)
        c.login("admin", "pg-admin-Passw0rd")
        r, js, _ = c.request("GET", "/api/v1/ready")
        check(r.status == 200, f"ready on the migrated database: {js}")
        # the schema goes back a version while the server runs (a restore)
        psql_db(db, f"DELETE FROM kotte_schema_migrations WHERE version = {NEED}")
        r, js, _ = c.request("GET", "/api/v1/ready")
        check(r.status == 503, f"ready with an older schema: {r.status} {js}")
        schema = js["stores"]["schema"]
        check(schema["error"] == "KOTTE_ESCHEMA" and f"needs version {NEED}" in schema["reason"]
              and "kotte-migrate" in schema["reason"], f"ready's reason: {schema}")
        # a table gone: the failing statement's log line says what and what to do
        psql_db(db, "DROP TABLE kotte_sessions")
        r, js, _ = c.request("GET", "/api/v1/auth/me")
        check(r.status in (500, 503), f"me without kotte_sessions: {r.status} {js}")
        lines = srv.wait_raw(lambda l: "42P01" in l)
        check(lines and "kotte_sessions" in lines[0] and "hint" in lines[0]
              and "kotte-migrate" in lines[0], f"log line of the failure: {lines[:1]}")
    finally:
        srv.stop()
        drop_db(db)


if __name__ == "__main__":
    if not os.environ.get("KOTTE_TEST_PG_DIR") or not os.environ.get("KOTTE_MIGRATE_BIN"):
        print("KOTTE_TEST_PG_* or KOTTE_MIGRATE_BIN not set (tests/pg/pg.sh start): skipped")
        sys.exit(77)
    NEED = needed_version()
    run([test_refuses_a_database_without_the_schema, test_migrate_on_start_two_at_once,
         test_ready_and_errors_say_what_is_wrong], sys.argv[1])
