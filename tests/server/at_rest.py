#!/usr/bin/env python3
"""kotte-server's stores at rest: no live cookie value or CSRF token in any
file under the data directory, nor in a pg_dump of the database; and the
json_file journals under the running server (damage, an unwritable file).

    python3 tests/server/at_rest.py path/to/kotte-server            # json_file
    eval "$(bash tests/pg/pg.sh start)"
    python3 tests/server/at_rest.py path/to/kotte-server postgresql

The postgresql run needs the server of tests/pg/pg.sh (the KOTTE_TEST_PG_*
variables); without it, it exits 77 (skipped).
"""

import base64
import binascii
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Client, Server, check, run  # noqa: E402
from e2e import CONN  # noqa: E402


def forms(token):
    """The ways a 43-character base64url token could sit in a file: as
    written, or its 32 bytes in hex or standard base64."""
    raw = base64.urlsafe_b64decode(token + "=")
    check(len(raw) == 32, f"not a token: {token!r}")
    std = base64.b64encode(raw).decode()
    return {
        "as sent": token.encode(),
        "hex": binascii.hexlify(raw),
        "HEX": binascii.hexlify(raw).upper(),
        "base64": std.rstrip("=").encode(),
        "raw bytes": raw,
    }


def find_secrets(secrets, blobs):
    """[(what, form, where)] for every secret found in any blob."""
    hits = []
    for what, token in secrets.items():
        for form, needle in forms(token).items():
            for where, data in blobs.items():
                if needle in data:
                    hits.append((what, form, where))
    return hits


def data_files(root):
    blobs = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                blobs[os.path.relpath(p, root)] = fh.read()
    return blobs


def live_session(srv):
    """Logs in, uses the session (reads, a saved connection, the CSRF
    token endpoint), and returns the client with its live cookie."""
    c = Client(srv)
    c.login("admin", srv.env.get("ADMIN_PASSWORD", "admin"))
    check(c.cookie and c.csrf, "login gave a cookie and a CSRF token")
    r, js, _ = c.request("GET", "/api/v1/auth/me")
    check(r.status == 200, f"me: {r.status} {js}")
    r, js, _ = c.request("GET", "/api/v1/auth/csrf-token")
    check(r.status == 200 and js["csrf_token"] == c.csrf, f"csrf-token: {js}")
    r, js, _ = c.request("POST", "/api/v1/connections", CONN, headers={"X-CSRF-Token": c.csrf})
    check(r.status == 201, f"save (the CSRF token checked against the stored one): {r.status} {js}")
    return c


def check_nothing_found(secrets, blobs):
    hits = find_secrets(secrets, blobs)
    check(not hits, "live secrets at rest: " + "; ".join(f"{w} ({f}) in {p}" for w, f, p in hits))


def test_json_file_data_dir_holds_no_live_cookie_or_csrf_token(binary):
    srv = Server(binary).start()
    try:
        c = live_session(srv)
        secrets = {"cookie": c.cookie, "CSRF token": c.csrf}
        # the check itself finds what it looks for
        check(find_secrets(secrets, {"probe": b"x" + c.cookie.encode()}), "the search works")
        check_nothing_found(secrets, data_files(srv.dir))  # while serving
        check_nothing_found(secrets, {"log": "\n".join(srv.raw).encode()})
    finally:
        srv.stop()
    check_nothing_found(secrets, data_files(srv.dir))  # and after a clean stop


def pg_dump():
    pgbin = os.environ["KOTTE_TEST_PG_BIN"]
    cmd = [os.path.join(pgbin, "pg_dump"), "-h", os.environ["KOTTE_TEST_PG_DIR"],
           "-p", os.environ["KOTTE_TEST_PG_PORT"], "-U", "postgres", "kotte"]
    if os.geteuid() == 0:  # as tests/pg/pg.sh runs its tools
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    p = subprocess.run(cmd, capture_output=True, timeout=120, cwd="/")
    check(p.returncode == 0, f"pg_dump: {p.stderr.decode()[-2000:]}")
    check(b"kotte_sessions" in p.stdout, "the dump holds the sessions table")
    return p.stdout


def test_postgresql_dump_and_data_dir_hold_no_live_cookie_or_csrf_token(binary):
    from pg import pg_env, psql

    psql("DELETE FROM kotte_sessions; DELETE FROM kotte_credentials; DELETE FROM kotte_users")
    srv = Server(binary, env=pg_env()).start()
    try:
        c = live_session(srv)
        secrets = {"cookie": c.cookie, "CSRF token": c.csrf}
        check(psql("SELECT count(*) FROM kotte_sessions") == "1", "the session is in the table")
        dump = pg_dump()
        check_nothing_found(secrets, {"pg_dump": dump})
        check_nothing_found(secrets, data_files(srv.dir))
        r, js, _ = c.request("GET", "/api/v1/auth/me")  # and the session is still live
        check(r.status == 200, f"me after the dump: {r.status} {js}")
    finally:
        srv.stop()


if __name__ == "__main__":
    kind = sys.argv[2] if len(sys.argv) > 2 else "json_file"
    if kind == "postgresql":
        if not os.environ.get("KOTTE_TEST_PG_DIR"):
            print("skipped: no PostgreSQL (tests/pg/pg.sh start)")
            sys.exit(77)
        run([test_postgresql_dump_and_data_dir_hold_no_live_cookie_or_csrf_token], sys.argv[1])
    else:
        run([test_json_file_data_dir_holds_no_live_cookie_or_csrf_token], sys.argv[1])
