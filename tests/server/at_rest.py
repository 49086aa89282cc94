#!/usr/bin/env python3
"""kotte-server's stores at rest: no live cookie value or CSRF token in any
file under the data directory, nor in a pg_dump of the database; and
/api/v1/ready while a json_file journal cannot be written (an immutable
file: chattr +i; a full disk: a 2 MB tmpfs filled up). Each of the last two
needs root (CAP_LINUX_IMMUTABLE, CAP_SYS_ADMIN) and says "skipped" without.

    python3 tests/server/at_rest.py path/to/kotte-server            # json_file
    eval "$(bash tests/pg/pg.sh start)"
    python3 tests/server/at_rest.py path/to/kotte-server postgresql

The postgresql run needs the server of tests/pg/pg.sh (the KOTTE_TEST_PG_*
variables); without it, it exits 77 (skipped).
"""

import base64
import binascii
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Client, Server, check, cookie_session, run  # noqa: E402
from e2e import CONN  # noqa: E402


def forms(token):
    """The ways a 43-character base64url token could sit in a file: as
    written, or its 32 bytes in hex or standard base64. Anything else (the
    whole signed cookie) only as written."""
    if len(token) != 43:
        return {"as sent": token.encode()}
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


def live_secrets(c):
    """The cookie value, the session id it carries (Kotte's signed cookie
    holds {"session_id", "csrf_token"}) and the CSRF token."""
    sid = cookie_session(c.cookie)["session_id"]
    check(len(sid) == 43, f"the cookie carries a session id: {sid!r}")
    return {"cookie": c.cookie, "session id": sid, "CSRF token": c.csrf}


def check_nothing_found(secrets, blobs):
    hits = find_secrets(secrets, blobs)
    check(not hits, "live secrets at rest: " + "; ".join(f"{w} ({f}) in {p}" for w, f, p in hits))


def test_json_file_data_dir_holds_no_live_cookie_or_csrf_token(binary):
    srv = Server(binary).start()
    try:
        c = live_session(srv)
        secrets = live_secrets(c)
        # the check itself finds what it looks for
        check(find_secrets(secrets, {"probe": b"x" + c.cookie.encode()}), "the search works")
        check(find_secrets({"session id": secrets["session id"]},
                           {"probe": base64.b64encode(base64.urlsafe_b64decode(secrets["session id"] + "="))}),
              "the search finds the id base64-encoded")
        check(find_secrets({"session id": secrets["session id"]},
                           {"probe": b"x" + secrets["session id"].encode()}), "the search finds the id")
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
        secrets = live_secrets(c)
        check(psql("SELECT count(*) FROM kotte_sessions") == "1", "the session is in the table")
        dump = pg_dump()
        check_nothing_found(secrets, {"pg_dump": dump})
        check_nothing_found(secrets, data_files(srv.dir))
        r, js, _ = c.request("GET", "/api/v1/auth/me")  # and the session is still live
        check(r.status == 200, f"me after the dump: {r.status} {js}")
    finally:
        srv.stop()


# ---- /ready while a journal cannot be written ----------------------------

JOURNALS = ("sessions.journal", "connections.journal")


def ready(c):
    r, js, _ = c.request("GET", "/api/v1/ready")
    return r.status, js


def expect_not_ready(c, broken):
    for _ in range(3):  # stays so: the probe itself cannot write either
        status, js = ready(c)
        check(status == 503 and js["status"] == "not_ready", f"ready while broken: {status} {js}")
        for store in ("sessions", "credentials"):
            s = js["stores"][store]
            want = {"backend": "json_file", "ok": False, "error": "KOTTE_EIO"} \
                if store in broken else {"backend": "json_file", "ok": True}
            check(s == want, f"{store}: expected {want}: {js}")


def try_login(srv):
    r, js, _ = Client(srv).request("POST", "/api/v1/auth/login",
                                   {"username": "admin", "password": "admin"})
    check(r.status == 503, f"login while the journal cannot be written: {r.status} {js}")


def try_save(c):
    r, js, _ = c.request("POST", "/api/v1/connections", dict(CONN, name="while broken"),
                         headers={"X-CSRF-Token": c.csrf})
    check(r.status == 503, f"save while the journal cannot be written: {r.status} {js}")


def expect_ready_again(srv, c):
    """200 with no user write in between (the probe's own write succeeded),
    then probes that do not grow the journals, and writes that work."""
    status, js = ready(c)
    check(status == 200 and js["stores"]["sessions"]["ok"] and js["stores"]["credentials"]["ok"],
          f"ready once writable again: {status} {js}")
    sizes = [os.path.getsize(os.path.join(srv.dir, j)) for j in JOURNALS]
    for _ in range(3):
        check(ready(c)[0] == 200, "still ready")
    check(sizes == [os.path.getsize(os.path.join(srv.dir, j)) for j in JOURNALS],
          "probes of a healthy store do not grow the journals")
    c2 = Client(srv)
    c2.login()
    r, js, _ = c2.request("POST", "/api/v1/connections", dict(CONN, name="after"),
                          headers={"X-CSRF-Token": c2.csrf})
    check(r.status == 201, f"save after: {r.status} {js}")


def chattr(flag, paths):
    return subprocess.run(["chattr", flag] + paths, capture_output=True, text=True)


def test_ready_while_a_journal_is_immutable(binary):
    srv = Server(binary).start()
    paths = [os.path.join(srv.dir, j) for j in JOURNALS]
    try:
        c = Client(srv)
        c.login()
        r, js, _ = c.request("POST", "/api/v1/connections", CONN, headers={"X-CSRF-Token": c.csrf})
        check(r.status == 201, f"save: {js}")
        probe = chattr("+i", paths)
        if probe.returncode != 0:  # e.g. no CAP_LINUX_IMMUTABLE, or overlayfs
            print(f"     skipped the immutable file: chattr +i: {probe.stderr.strip()}")
            return
        chattr("-i", paths)
        check(ready(c)[0] == 200, "ready before")
        chattr("+i", paths[1:])  # the credentials' journal alone
        try_save(c)
        expect_not_ready(c, ("credentials",))
        chattr("+i", paths[:1])  # and the sessions' too
        try_login(srv)
        expect_not_ready(c, ("sessions", "credentials"))
        chattr("-i", paths)
        expect_ready_again(srv, c)
    finally:
        chattr("-i", paths)
        srv.stop()


def test_ready_while_the_disk_is_full(binary):
    mnt = tempfile.mkdtemp(prefix="kotte-full-")
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", mnt],
                       capture_output=True, text=True)
    if m.returncode != 0:  # not root, or no CAP_SYS_ADMIN (a container)
        os.rmdir(mnt)
        print(f"     skipped the full disk: mount tmpfs: {m.stderr.strip()}")
        return
    srv = None
    filler = os.path.join(mnt, "filler")

    def fill():
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass  # ENOSPC: the disk is full
        finally:
            os.close(fd)

    try:
        srv = Server(binary, datadir=mnt).start()
        c = Client(srv)
        c.login()
        check(ready(c)[0] == 200, "ready before")
        fill()
        # logins go on while the journal's last page has room; then one fails
        for attempt in range(200):
            r, js, _ = Client(srv).request("POST", "/api/v1/auth/login",
                                           {"username": "admin", "password": "admin"})
            if r.status != 200:
                break
        check(r.status == 503, f"a login on a full disk: {r.status} {js} after {attempt} logins")
        expect_not_ready(c, ("sessions",))
        os.unlink(filler)
        expect_ready_again(srv, c)
    finally:
        if srv:
            srv.stop()
        subprocess.run(["umount", mnt], capture_output=True)
        shutil.rmtree(mnt, ignore_errors=True)


if __name__ == "__main__":
    kind = sys.argv[2] if len(sys.argv) > 2 else "json_file"
    if kind == "postgresql":
        if not os.environ.get("KOTTE_TEST_PG_DIR"):
            print("skipped: no PostgreSQL (tests/pg/pg.sh start)")
            sys.exit(77)
        run([test_postgresql_dump_and_data_dir_hold_no_live_cookie_or_csrf_token], sys.argv[1])
    else:
        run([test_json_file_data_dir_holds_no_live_cookie_or_csrf_token,
             test_ready_while_a_journal_is_immutable, test_ready_while_the_disk_is_full],
            sys.argv[1])
