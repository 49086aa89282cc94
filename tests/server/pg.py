#!/usr/bin/env python3
"""kotte-server on PostgreSQL: sessions in kotte_sessions, users in
kotte_users (bcrypt), two servers sharing one database, and a database that
goes away and comes back. Needs the server of tests/pg/pg.sh (the
KOTTE_TEST_PG_* variables); without it exits 77 (skipped).

    eval "$(bash tests/pg/pg.sh start)"
    python3 tests/server/pg.py path/to/kotte-server
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Client, Server, check, cookie_session, expect_error, run  # noqa: E402
from e2e import CONN, connections_flow, not_utf8_is_a_client_error  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pg_env():
    return {
        "SESSION_STORAGE_TYPE": "postgresql",
        "CREDENTIAL_STORAGE_TYPE": "postgresql",
        "DB_HOST": os.environ["KOTTE_TEST_PG_DIR"],
        "DB_PORT": os.environ["KOTTE_TEST_PG_PORT"],
        "DB_NAME": "kotte",
        "DB_USER": "kotte_app",
        "DB_CONNECT_TIMEOUT": "2",
        "SESSION_SECRET_KEY": "server-tests-session-secret-key",
        "ADMIN_PASSWORD": "pg-admin-Passw0rd",
    }


def psql(sql):
    return subprocess.run(["bash", os.path.join(ROOT, "tests/pg/pg.sh"), "psql",
                           os.environ["KOTTE_TEST_PG_DIR"], "-At", "-c", sql],
                          capture_output=True, text=True, timeout=60, check=True).stdout.strip()


def test_pg_flow_and_users(binary):
    psql("DELETE FROM kotte_sessions; DELETE FROM kotte_credentials; DELETE FROM kotte_users")
    srv = Server(binary, env=pg_env()).start()
    try:
        check(srv.events("users_seeded"), "admin seeded into the empty kotte_users")
        row = psql("SELECT id, username, password_hash FROM kotte_users").split("|")
        check(row[1] == "admin" and row[2].startswith("$2b$12$"), f"bcrypt hash stored: {row[:2]}")
        c = Client(srv)
        r, js = c.login("admin", "pg-admin-Passw0rd")
        check(js["user_id"] == row[0] and js["username"] == "admin", f"login: {js}")
        check(psql("SELECT last_login_at IS NOT NULL FROM kotte_users WHERE username = 'admin'")
              == "t", "last_login_at recorded")
        r, js, _ = c.request("GET", "/api/v1/auth/me")
        check(r.status == 200 and js == {"user_id": row[0], "username": "admin"}, f"me: {js}")
        # the database holds no usable token
        check(cookie_session(c.cookie)["session_id"]
              not in psql("SELECT string_agg(t::text, ',') FROM kotte_sessions t"),
              "kotte_sessions holds no session token")
        # users added by the subcommand (bcrypt), Kotte's citext usernames
        p = subprocess.run([binary, "user", "add", "carol"], env=srv.env, cwd=srv.dir,
                           input=b"carol-pw\n", capture_output=True, timeout=60)
        check(p.returncode == 0, f"user add on PostgreSQL: {p.stderr!r}")
        c2 = Client(srv)
        r, js = c2.login("Carol", "carol-pw")
        check(js["username"] == "carol", f"citext login: {js}")
        r, js, _ = c2.request("POST", "/api/v1/auth/login", {"username": "carol", "password": "no"})
        expect_error(r, js, 401, "AUTH_INVALID_SESSION")
        r, js, _ = c2.request("POST", "/api/v1/auth/login", {"username": "nobody", "password": "x"})
        expect_error(r, js, 401, "AUTH_INVALID_SESSION")
        # saved connections in kotte_credentials, sealed
        connections_flow(c, {"X-CSRF-Token": c.csrf})
        r, js, _ = c.request("POST", "/api/v1/connections", CONN, headers={"X-CSRF-Token": c.csrf})
        check(r.status == 201, f"save: {js}")
        dump = psql("SELECT string_agg(t::text, ',') FROM kotte_credentials t")
        check(js["id"] in dump and CONN["password"] not in dump and CONN["username"] not in dump,
              "kotte_credentials holds the record, sealed")
        r, js, _ = c.request("GET", "/api/v1/ready")
        check(js["stores"]["credentials"] == {"backend": "postgresql", "ok": True}, f"ready: {js}")
        r, js, _ = c.request("POST", "/api/v1/auth/logout", headers={"X-CSRF-Token": c.csrf})
        check(r.status == 200, "logout")
        r, js, _ = c.request("GET", "/api/v1/auth/me")
        expect_error(r, js, 401, "AUTH_REQUIRED")
        r, _, text = c.request("GET", "/metrics")
        check(b'db_pool_size{database="kotte",type="total"}' in text, "pool stats in /metrics")
        c.close()
        c2.close()
    finally:
        srv.stop()


def pool_errors(c):
    r, _, text = c.request("GET", "/metrics")
    line = [l for l in text.decode().splitlines() if l.startswith("kotte_pg_pool_errors_total ")]
    check(r.status == 200 and len(line) == 1, "kotte_pg_pool_errors_total in /metrics")
    return int(line[0].split()[1])


def test_text_that_is_not_utf8_on_pg(binary):
    """Users, sessions and saved connections in PostgreSQL: a username that
    is not UTF-8 used to reach kotte_users and come back as 503
    DB_UNAVAILABLE (retryable), an ERROR line and a pool error."""
    srv = Server(binary, env=pg_env()).start()
    try:
        c = Client(srv)
        c.login("admin", "pg-admin-Passw0rd")
        before = pool_errors(c)
        not_utf8_is_a_client_error(srv, c, "admin", "pg-admin-Passw0rd")
        check(pool_errors(c) == before, "no query failed on the pool")
        r, js, _ = c.request("GET", "/api/v1/ready")
        check(r.status == 200, f"still ready: {js}")
        c.close()
    finally:
        srv.stop()


def test_two_servers_pg(binary):
    """Log in on A, use the cookie on B, log out on B: A rejects the cookie."""
    a = Server(binary, env=pg_env(), name="A").start()
    b = Server(binary, env=pg_env(), name="B").start()
    try:
        ca = Client(a)
        ca.login("admin", "pg-admin-Passw0rd")
        cb = Client(b)
        cb.cookie = ca.cookie
        r, js, _ = cb.request("GET", "/api/v1/auth/me")
        check(r.status == 200 and js["username"] == "admin", f"B accepts A's cookie: {js}")
        r, js, _ = cb.request("GET", "/api/v1/auth/csrf-token")
        check(js == {"csrf_token": ca.csrf}, "same CSRF token on B")
        r, js, _ = ca.request("POST", "/api/v1/connections", dict(CONN, name="shared"),
                              headers={"X-CSRF-Token": ca.csrf})
        check(r.status == 201, f"save on A: {js}")
        r, js, _ = cb.request("GET", f"/api/v1/connections/{js['id']}")
        check(r.status == 200 and js["password"] == CONN["password"], f"read on B: {r.status}")
        r, js, _ = cb.request("POST", "/api/v1/auth/logout", headers={"X-CSRF-Token": ca.csrf})
        check(r.status == 200, f"logout on B: {js}")
        r, js, _ = ca.request("GET", "/api/v1/auth/me")
        expect_error(r, js, 401, "AUTH_SESSION_EXPIRED")
        ca.close()
        cb.close()
    finally:
        b.stop()
        a.stop()


def ready_again(c, when):
    """/ready says 200 within 30 s."""
    deadline = time.monotonic() + 30
    while True:
        r, js, _ = c.request("GET", "/api/v1/ready")
        if r.status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    check(r.status == 200, f"ready again {when}: {js}")


def test_database_down_and_back(binary):
    srv = Server(binary, env=pg_env()).start()
    pgsh = ["bash", os.path.join(ROOT, "tests/pg/pg.sh")]
    try:
        c = Client(srv)
        c.login("admin", "pg-admin-Passw0rd")
        subprocess.run(pgsh + ["stop-server", os.environ["KOTTE_TEST_PG_DIR"], "immediate"],
                       check=True, timeout=60, capture_output=True)
        try:
            r, js, _ = c.request("GET", "/api/v1/health")
            check(r.status == 200, "health needs no database")
            r, js, _ = c.request("GET", "/api/v1/ready")
            check(r.status == 503 and js["status"] == "not_ready", f"ready without db: {js}")
            r, js, _ = c.request("GET", "/api/v1/auth/me")
            expect_error(r, js, 503, "DB_UNAVAILABLE")
            check(js["error"]["retryable"] is True, "retryable")
            r, js, _ = c.request("POST", "/api/v1/auth/login",
                                 {"username": "admin", "password": "pg-admin-Passw0rd"})
            expect_error(r, js, 503, "DB_UNAVAILABLE")
        finally:
            subprocess.run(pgsh + ["start-server", os.environ["KOTTE_TEST_PG_DIR"]],
                           check=True, timeout=60, capture_output=True)
        ready_again(c, "after the database came back")
        r, js, _ = c.request("GET", "/api/v1/auth/me")
        check(r.status == 200, f"the session survived the restart: {r.status} {js}")
        c.close()
    finally:
        srv.stop()


def test_ready_answers_from_the_pool_state(binary):
    """With PostgreSQL stopped, /ready answers 503 at once from what the
    pool knows (it used to wait out the pool's 5 s acquire timeout on every
    probe), names the stores on PostgreSQL and why, and says 200 again once
    the database is back: also with DB_POOL_MIN_SIZE=0, where no connection
    attempt happens unless something asks for one."""
    pgsh = ["bash", os.path.join(ROOT, "tests/pg/pg.sh")]
    for min_size in ("1", "0"):
        srv = Server(binary, env=dict(pg_env(), DB_POOL_MIN_SIZE=min_size,
                                      SESSION_STORAGE_TYPE="json_file",
                                      KOTTE_USERS_STORE="postgresql")).start()
        try:
            c = Client(srv)
            r, js, _ = c.request("GET", "/api/v1/ready")
            check(r.status == 200, f"ready: {js}")
            subprocess.run(pgsh + ["stop-server", os.environ["KOTTE_TEST_PG_DIR"], "immediate"],
                           check=True, timeout=60, capture_output=True)
            try:
                # the pool finds out (its connection breaks, or the first probe's attempt fails)
                deadline = time.monotonic() + 30
                while c.request("GET", "/api/v1/ready")[0].status != 503:
                    check(time.monotonic() < deadline, "ready turned 503")
                for _ in range(5):
                    t0 = time.monotonic()
                    r, js, _ = c.request("GET", "/api/v1/ready")
                    took = time.monotonic() - t0
                    check(r.status == 503 and took < 2.0,
                          f"min {min_size}: 503 within 2 s of the probe: {r.status} in {took:.2f} s")
                    stores = js["stores"]
                    check(stores["sessions"] == {"backend": "json_file", "ok": True},
                          f"a store not on PostgreSQL still answers: {stores}")
                    for name in ("users", "credentials"):
                        st = stores[name]
                        check(st["backend"] == "postgresql" and st["ok"] is False and
                              st["error"] == "KOTTE_EDB" and
                              "connection attempt" in st["reason"] and
                              os.environ["KOTTE_TEST_PG_DIR"] not in st["reason"],
                              f"{name} names the reason, not the host: {st}")
            finally:
                subprocess.run(pgsh + ["start-server", os.environ["KOTTE_TEST_PG_DIR"]],
                               check=True, timeout=60, capture_output=True)
            ready_again(c, f"with DB_POOL_MIN_SIZE={min_size} once the database is back")
            c.close()
        finally:
            srv.stop()


def test_sigterm_during_pg_load(binary):
    """Session reads in flight on the pool when SIGTERM comes: answered,
    then the pool is closed and the process exits 0."""
    import http.client
    import signal
    import threading
    srv = Server(binary, env=pg_env()).start()
    c = Client(srv)
    c.login("admin", "pg-admin-Passw0rd")
    cookie = c.cookie
    c.close()
    stop = threading.Event()
    bad, ok = [], [0]

    def hammer():
        conn = None
        while not stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
                conn.request("GET", "/api/v1/session/status",
                             headers={"Cookie": f"kotte_session={cookie}"})
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    bad.append(r.status)
                ok[0] += 1
                if r.getheader("Connection") == "close":
                    conn.close()
                    conn = None
            except http.client.IncompleteRead as exc:
                bad.append(repr(exc))
                conn = None
            except (ConnectionError, http.client.RemoteDisconnected):
                conn = None
                time.sleep(0.01)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    srv.proc.send_signal(signal.SIGTERM)
    srv.stop(timeout=20)
    stop.set()
    for t in threads:
        t.join(20)
    check(ok[0] > 20 and not bad, f"answers during shutdown: {ok[0]} ok, bad {bad[:5]}")


if __name__ == "__main__":
    if not os.environ.get("KOTTE_TEST_PG_DIR"):
        print("KOTTE_TEST_PG_* not set (tests/pg/pg.sh start): skipped")
        sys.exit(77)
    run([test_pg_flow_and_users, test_text_that_is_not_utf8_on_pg, test_two_servers_pg,
         test_sigterm_during_pg_load, test_database_down_and_back,
         test_ready_answers_from_the_pool_state], sys.argv[1])
