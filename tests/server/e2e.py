#!/usr/bin/env python3
"""kotte-server end to end: Kotte's API contract against the real binary.

    python3 tests/server/e2e.py path/to/kotte-server
"""

import json
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Client, Server, check, cookie_session, expect_error, run,  # noqa: E402
                     sign_cookie)

CONN = {"name": "graphs on db1", "host": "db1.internal", "port": 5433, "database": "graphs",
        "username": "graph_reader", "password": "s3cret-Connection-Passw0rd"}


def connections_flow(c, csrf):
    """save -> duplicate -> list -> get -> not found -> delete -> list."""
    r, js, _ = c.request("POST", "/api/v1/connections", CONN, headers=csrf)
    check(r.status == 201, f"save: {r.status} {js}")
    cid = js["id"]
    check(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                       cid), f"id is a UUID v4: {cid}")
    check(set(js) == {"id", "name", "host", "port", "database", "created_at", "updated_at"},
          f"save answers metadata only: {js}")
    check((js["name"], js["host"], js["port"], js["database"]) ==
          (CONN["name"], CONN["host"], CONN["port"], CONN["database"]), f"save: {js}")

    r, js, _ = c.request("POST", "/api/v1/connections", dict(CONN, port=5434), headers=csrf)
    expect_error(r, js, 422, "QUERY_VALIDATION_ERROR")
    check("already exists" in js["error"]["message"].lower(), f"duplicate: {js}")

    r, js, _ = c.request("GET", "/api/v1/connections")
    check(r.status == 200 and isinstance(js, list) and len(js) == 1, f"list: {js}")
    check("password" not in js[0] and "username" not in js[0], f"list leaks secrets: {js}")
    check(js[0]["id"] == cid, "list has the saved id")

    r, js, _ = c.request("GET", f"/api/v1/connections/{cid}")
    check(r.status == 200, f"get: {r.status} {js}")
    check(js["username"] == CONN["username"] and js["password"] == CONN["password"],
          f"get returns the decrypted credentials: {js}")
    # libkotte stores an absent sslmode as libpq's default, "prefer"
    check(js["sslmode"] in (None, "prefer") and js["id"] == cid, f"get: {js}")
    check(set(js) == {"id", "name", "host", "port", "database", "username", "password",
                      "sslmode", "created_at", "updated_at"}, f"get fields: {js}")

    # validation as Kotte's model does it
    for bad, field in ((dict(CONN, port=70000), "port"), (dict(CONN, port="x"), "port"),
                       (dict(CONN, port=1e300), "port"), (dict(CONN, name=""), "name"),
                       (dict(CONN, name="n" * 101), "name"), ({"name": "x"}, "host")):
        r, js, _ = c.request("POST", "/api/v1/connections", bad, headers=csrf)
        expect_error(r, js, 422, "QUERY_VALIDATION_ERROR")
        check(js["error"]["details"]["errors"][0]["loc"] == ["body", field], f"loc: {js}")
    r, js, _ = c.request("POST", "/api/v1/connections", dict(CONN, name="with ssl",
                                                             sslmode="require"), headers=csrf)
    check(r.status == 201, f"save with sslmode: {js}")
    r, js2, _ = c.request("GET", f"/api/v1/connections/{js['id']}")
    check(js2["sslmode"] == "require", f"sslmode kept: {js2}")
    r, _, _ = c.request("DELETE", f"/api/v1/connections/{js['id']}", headers=csrf)
    check(r.status == 204, "delete the second one")
    # no CSRF token, no change
    r, js, _ = c.request("DELETE", f"/api/v1/connections/{cid}")
    expect_error(r, js, 403, "INTERNAL_ERROR", "CSRF token validation failed")

    r, js, _ = c.request("GET", "/api/v1/connections/00000000-0000-4000-8000-000000000000")
    expect_error(r, js, 404, "CONNECTION_NOT_FOUND")
    r, js, _ = c.request("GET", "/api/v1/connections/not-a-uuid")
    expect_error(r, js, 404, "CONNECTION_NOT_FOUND")

    r, js, body = c.request("DELETE", f"/api/v1/connections/{cid}", headers=csrf)
    check(r.status == 204 and body == b"", f"delete: {r.status} {body!r}")
    r, js, _ = c.request("DELETE", f"/api/v1/connections/{cid}", headers=csrf)
    expect_error(r, js, 404, "CONNECTION_NOT_FOUND")
    r, js, _ = c.request("GET", "/api/v1/connections")
    check(r.status == 200 and js == [], f"list after delete: {js}")


def not_utf8_is_a_client_error(srv, c, username, password):
    """Bytes that are not UTF-8 get FastAPI's 400 for an undecodable body,
    on every route whose strings go to a store, and reach no store: no 503,
    no ERROR line, and the log stays UTF-8 JSON (stop() checks every line)
    with U+FFFD for a path's bad byte. A real login works afterwards."""
    hdr = {"Content-Type": "application/json"}
    for raw in (b'{"username":"ad\xffmin","password":"x"}',
                b'{"username":"admin","password":"\xc0\xaf"}',   # overlong '/'
                b'{"username":"\xed\xa0\x80","password":"x"}'):  # a surrogate
        r, js, _ = c.request("POST", "/api/v1/auth/login", raw_body=raw, headers=hdr)
        check((r.status, js) == (400, {"detail": "There was an error parsing the body"}),
              f"login with {raw!r}: {r.status} {js}")
    r, js, _ = c.request("POST", "/api/v1/connections",
                         raw_body=json.dumps(CONN).encode().replace(b"db1", b"db\xe9"),
                         headers=dict(hdr, **{"X-CSRF-Token": c.csrf}))
    check((r.status, js) == (400, {"detail": "There was an error parsing the body"}),
          f"save with a Latin-1 host: {r.status} {js}")
    # a path with a byte that is not UTF-8, logged by the access log
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"GET /api/v1/nope\xff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head = s.recv(4096)
    check(head.startswith(b"HTTP/1.1 404"), f"unknown path: {head[:40]!r}")
    deadline = time.monotonic() + 10
    while not any(l.get("path") == "/api/v1/nope\ufffd" for l in srv.lines):
        check(time.monotonic() < deadline, "the path was logged with U+FFFD for its bad byte")
        time.sleep(0.05)
    check(all("unparsed" not in l for l in srv.lines), "every log line is JSON")
    check(not [l for l in srv.lines if l.get("level") == "ERROR"],
          f"no ERROR line: {[l for l in srv.lines if l.get('level') == 'ERROR']}")
    r, js = c.login(username, password)
    check(r.status == 200, "a real login works")


def test_text_that_is_not_utf8(binary):
    srv = Server(binary).start()
    try:
        c = Client(srv)
        c.login()
        not_utf8_is_a_client_error(srv, c, "admin", "admin")
        r, js, _ = c.request("GET", "/api/v1/connections")
        check(r.status == 200 and js == [], f"nothing was saved: {js}")
        c.close()
    finally:
        srv.stop()


def test_full_flow(binary):
    """login -> me -> csrf-token -> save connection -> list -> get -> delete
    -> logout -> me is 401; no secret in any log line."""
    srv = Server(binary, env={"ADMIN_PASSWORD": "Adm1n-Passw0rd-for-tests"}).start()
    secrets = ["Adm1n-Passw0rd-for-tests", CONN["password"]]
    try:
        c = Client(srv)
        r, js = c.login("admin", "Adm1n-Passw0rd-for-tests")
        check(js == {"user_id": "admin", "username": "admin", "authenticated": True,
                     "csrf_token": js["csrf_token"]}, f"login body: {js}")
        check(len(js["csrf_token"]) == 43, "csrf token is 43 characters")
        sid = cookie_session(c.cookie)["session_id"]
        check(len(sid) == 43, "the cookie's session id is a 43-character token")
        check(cookie_session(c.cookie)["csrf_token"] == c.csrf, "the cookie holds the CSRF token")
        secrets += [c.cookie, c.csrf, sid]
        sc = r.getheader("Set-Cookie")
        check(re.fullmatch(r"kotte_session=[A-Za-z0-9+/]+=*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{27}; "
                           r"path=/; Max-Age=3600; httponly; samesite=lax", sc),
              f"cookie attributes: {sc}")

        r, js, _ = c.request("GET", "/api/v1/auth/me")
        check(r.status == 200 and js == {"user_id": "admin", "username": "admin"}, f"me: {js}")

        r, js, _ = c.request("GET", "/api/v1/auth/csrf-token")
        check(r.status == 200 and js == {"csrf_token": c.csrf}, f"csrf-token: {js}")

        r, js, _ = c.request("GET", "/api/v1/session/status")
        check(r.status == 200 and js == {"connected": False, "database": None, "host": None,
                                         "port": None, "current_graph": None}, f"status: {js}")

        csrf = {"X-CSRF-Token": c.csrf}
        connections_flow(c, csrf)

        old_cookie = c.cookie
        r, js, _ = c.request("POST", "/api/v1/auth/logout", headers=csrf)
        check(r.status == 200 and js == {"logged_out": True}, f"logout: {js}")
        check(r.getheader("Set-Cookie").startswith("kotte_session=null; path=/; expires=Thu, 01 Jan "
                                                   "1970 00:00:00 GMT"), "logout clears cookie")
        check(c.cookie is None, "cookie cleared")
        r, js, _ = c.request("GET", "/api/v1/auth/me")
        expect_error(r, js, 401, "AUTH_REQUIRED")
        # the old cookie, replayed, is dead
        r, js, _ = c.request("GET", "/api/v1/auth/me", cookie=old_cookie)
        expect_error(r, js, 401, "AUTH_SESSION_EXPIRED", "Session expired or invalid")
        c.close()
    finally:
        srv.stop()
    for line in srv.raw:
        for s in secrets:
            check(s not in line, f"a secret appears in a log line: {line}")
    check(srv.events("auth_success") and srv.events("auth_logout"), "auth events logged")
    for line in srv.lines:
        check("timestamp" in line and "level" in line, f"log line shape: {line}")


def test_auth_errors(binary):
    srv = Server(binary).start()
    try:
        c = Client(srv)
        r, js, _ = c.request("POST", "/api/v1/auth/login", {"username": "admin", "password": "x"})
        expect_error(r, js, 401, "AUTH_INVALID_SESSION", "Invalid username or password")
        check(js["error"]["category"] == "authentication", "category")
        r, js, _ = c.request("POST", "/api/v1/auth/login", {"username": "nobody", "password": "x"})
        expect_error(r, js, 401, "AUTH_INVALID_SESSION", "Invalid username or password")
        check(r.getheader("Set-Cookie") is None, "no cookie for a failed login")

        for path in ("/api/v1/auth/me", "/api/v1/auth/csrf-token", "/api/v1/session/status",
                     "/api/v1/connections"):
            r, js, _ = c.request("GET", path)
            expect_error(r, js, 401, "AUTH_REQUIRED", "Authentication required")
        r, js, _ = c.request("GET", "/api/v1/auth/me", cookie="null")
        expect_error(r, js, 401, "AUTH_REQUIRED")
        r, js, _ = c.request("GET", "/api/v1/auth/me", cookie="A" * 42 + "A")
        expect_error(r, js, 401, "AUTH_REQUIRED")  # a bare id is not a signed cookie
        r, js, _ = c.request("GET", "/api/v1/auth/me", cookie=sign_cookie({"session_id": "A" * 43}))
        expect_error(r, js, 401, "AUTH_SESSION_EXPIRED")

        # CSRF: every state-changing request but login
        r, js, _ = c.request("POST", "/api/v1/auth/logout")
        expect_error(r, js, 403, "INTERNAL_ERROR", "CSRF token validation failed")
        check(js["error"]["category"] == "validation", "CSRF category")
        c.login()
        r, js, _ = c.request("POST", "/api/v1/auth/logout")
        expect_error(r, js, 403, "INTERNAL_ERROR", "CSRF token validation failed")
        r, js, _ = c.request("POST", "/api/v1/auth/logout", headers={"X-CSRF-Token": "x" * 43})
        expect_error(r, js, 403, "INTERNAL_ERROR", "CSRF token validation failed")
        r, js, _ = c.request("DELETE", "/api/v1/nowhere", headers={"X-CSRF-Token": c.csrf})
        check(r.status == 404 and js == {"detail": "Not Found"}, f"404 after CSRF: {js}")
        r, js, _ = c.request("PUT", "/api/v1/auth/me", headers={"X-CSRF-Token": c.csrf})
        check(r.status == 405 and js == {"detail": "Method Not Allowed"}, f"405: {js}")
        r, js, _ = c.request("GET", "/api/v1/auth/me")
        check(r.status == 200, "session still alive after CSRF failures")

        # a fresh id at every login; the id presented before is dead
        first = c.cookie
        c.login()
        check(c.cookie != first, "login regenerates the session id")
        r, js, _ = c.request("GET", "/api/v1/auth/me", cookie=first)
        expect_error(r, js, 401, "AUTH_SESSION_EXPIRED")
        r, js, _ = c.request("GET", "/api/v1/auth/me")
        check(r.status == 200, "new session works")

        # validation (FastAPI's 422, in Kotte's envelope)
        for body, raw, ctype in (({"username": "admin"}, None, None),
                                 ({"password": "admin"}, None, None),
                                 ({"username": 1, "password": "admin"}, None, None),
                                 (None, b"{not json", "application/json"),
                                 (None, b"[1,2]", "application/json"),
                                 (None, b'{"username":"admin","password":"admin"}', "text/plain"),
                                 (None, b"", None)):
            hdr = {"Content-Type": ctype} if ctype else {}
            r, js, _ = c.request("POST", "/api/v1/auth/login", body=body, raw_body=raw,
                                 headers=hdr)
            expect_error(r, js, 422, "QUERY_VALIDATION_ERROR")
            check(js["error"]["details"]["errors"], "validation details list the errors")

        r, js, _ = c.request("GET", "/api/v1/nowhere")
        check(r.status == 404 and js == {"detail": "Not Found"}, f"404: {js}")
        r, js, _ = c.request("GET", "/api/v1/auth/login")
        check(r.status == 405, f"405 for GET login: {r.status}")
        # Kotte's CSRF middleware exempts the login path for every method
        # (routes.h: csrf_exempt): a PUT there is a 405, not a CSRF 403
        r, js, _ = c.request("PUT", "/api/v1/auth/login", {})
        check(r.status == 405 and js == {"detail": "Method Not Allowed"}, f"405 for PUT login: {js}")

        # request ids: taken from the client when sane, else generated
        r, js, _ = c.request("GET", "/api/v1/health", headers={"X-Request-ID": "test-request-id-123"})
        check(r.getheader("X-Request-ID") == "test-request-id-123", "X-Request-ID kept")
        r, js, _ = c.request("GET", "/api/v1/health", headers={"X-Request-ID": "bad id\x7f"})
        check(re.fullmatch(r"[0-9a-f-]{36}", r.getheader("X-Request-ID")), "bad X-Request-ID replaced")
        check(r.getheader("X-Content-Type-Options") == "nosniff", "security headers")
        c.close()
    finally:
        srv.stop()


def test_health_ready_metrics(binary):
    srv = Server(binary).start()
    try:
        c = Client(srv)
        r, js, _ = c.request("GET", "/api/v1/health")
        check(r.status == 200 and js["status"] == "healthy" and "timestamp" in js, f"health {js}")
        r, js, _ = c.request("GET", "/api/v1/ready")
        check(r.status == 200 and js["status"] == "ready", f"ready {js}")
        check(js["stores"]["sessions"] == {"backend": "json_file", "ok": True}, f"ready {js}")
        check(js["stores"]["users"]["ok"] is True, f"ready {js}")
        check(js["stores"]["credentials"] == {"backend": "json_file", "ok": True}, f"ready {js}")
        c.login()
        r, _, text = c.request("GET", "/metrics")
        check(r.status == 200 and r.getheader("Content-Type").startswith("text/plain"), "metrics")
        text = text.decode()
        for needle in ('http_requests_total{method="POST",endpoint="/api/v1/auth/login",'
                       'status_code="200"} 1',
                       'http_request_duration_seconds_bucket{method="GET",endpoint="/api/v1/health",'
                       'le="+Inf"} 1',
                       "session_creations_total 1", "kotte_http_connections 1"):
            check(needle in text, f"metrics lack {needle!r}:\n{text}")
        r, _, text2 = c.request("GET", "/api/v1/metrics")
        check(r.status == 200 and b"http_requests_total" in text2, "/api/v1/metrics too")
        c.close()
        # the users file gone: ready says so, with 503
        os.rename(os.path.join(srv.dir, "users"), os.path.join(srv.dir, "users.moved"))
        c = Client(srv)
        r, js, _ = c.request("GET", "/api/v1/ready")
        check(r.status == 503 and js["status"] == "not_ready" and
              js["stores"]["users"]["ok"] is False, f"ready without users file: {js}")
        r, js, _ = c.request("POST", "/api/v1/auth/login", {"username": "admin", "password": "admin"})
        expect_error(r, js, 503, "DB_UNAVAILABLE")
        check(js["error"]["retryable"] is True, "503 is retryable")
        os.rename(os.path.join(srv.dir, "users.moved"), os.path.join(srv.dir, "users"))
        c.login()
        c.close()
    finally:
        srv.stop()


def test_production_cookie_and_users_cli(binary):
    # production refuses to seed the default admin password
    srv = Server(binary, env={"ENVIRONMENT": "production"})
    import subprocess
    p = subprocess.run([binary], env=srv.env, cwd=srv.dir, capture_output=True, timeout=30)
    check(p.returncode == 1 and b"ADMIN_PASSWORD" in p.stderr, f"production seed: {p.stderr!r}")
    # users created with the subcommand (password on stdin)
    for name, pw in (("alice", "alice-pw-1"), ("bob", "bob-pw-2")):
        p = subprocess.run([binary, "user", "add", name], env=srv.env, cwd=srv.dir,
                           input=(pw + "\n").encode(), capture_output=True, timeout=30)
        check(p.returncode == 0, f"user add: {p.stderr!r}")
        check(pw.encode() not in p.stdout + p.stderr, "password echoed")
    p = subprocess.run([binary, "user", "add", "alice"], env=srv.env, cwd=srv.dir,
                       input=b"x\n", capture_output=True, timeout=30)
    check(p.returncode == 1 and b"already exists" in p.stderr, "duplicate user refused")
    # a password that a login could not carry, or that would be cut short, is
    # refused, not stored as its prefix (carol is never created)
    for pw, why in ((b"carol-pw\0tail", b"NUL byte"), (b"c" * 4097, b"longer than 4096"),
                    (b"carol-\xff-pw", b"not UTF-8")):
        p = subprocess.run([binary, "user", "add", "carol"], env=srv.env, cwd=srv.dir,
                           input=pw + b"\n", capture_output=True, timeout=30)
        check(p.returncode == 2 and why in p.stderr, f"password {pw[:12]!r}... refused: {p.stderr!r}")
    p = subprocess.run([binary, "user", "add", "carol"], env=srv.env, cwd=srv.dir,
                       input=b"c" * 4096 + b"\r\n", capture_output=True, timeout=30)
    check(p.returncode == 0, f"a 4096-byte password (CRLF line) is taken: {p.stderr!r}")
    p = subprocess.run([binary, "user", "del", "carol"], env=srv.env, cwd=srv.dir,
                       capture_output=True, timeout=30)
    check(p.returncode == 0, f"user del carol: {p.stderr!r}")
    p = subprocess.run([binary, "user", "list"], env=srv.env, cwd=srv.dir, capture_output=True,
                       timeout=30)
    check(p.stdout.decode().split() == ["alice", "bob"], f"list: {p.stdout!r}")
    with open(os.path.join(srv.dir, "users")) as f:
        text = f.read()
    check("$argon2id$" in text and "alice-pw-1" not in text, "argon2id hashes stored")
    check(os.stat(os.path.join(srv.dir, "users")).st_mode & 0o077 == 0, "users file is 0600")
    srv.start()
    try:
        c = Client(srv)
        r, js = c.login("alice", "alice-pw-1")
        check(js["user_id"] == "alice", f"login alice: {js}")
        check(r.getheader("Set-Cookie").endswith("; httponly; samesite=lax; secure"),
              f"Secure in production: {r.getheader('Set-Cookie')}")
        r, js, _ = c.request("POST", "/api/v1/auth/login", {"username": "bob", "password": "nope"})
        expect_error(r, js, 401, "AUTH_INVALID_SESSION")
        # changed while the server runs: re-read
        p = subprocess.run([binary, "user", "passwd", "bob"], env=srv.env, cwd=srv.dir,
                           input=b"bob-pw-3\n", capture_output=True, timeout=30)
        check(p.returncode == 0, f"passwd: {p.stderr!r}")
        c2 = Client(srv)
        c2.login("bob", "bob-pw-3")
        p = subprocess.run([binary, "user", "del", "alice"], env=srv.env, cwd=srv.dir,
                           capture_output=True, timeout=30)
        check(p.returncode == 0, f"del: {p.stderr!r}")
        r, js, _ = c.request("GET", "/api/v1/auth/me")
        expect_error(r, js, 401, "AUTH_INVALID_SESSION", "User not found")
        c.close()
        c2.close()
    finally:
        srv.stop()


def test_two_servers_json_file(binary):
    """Two processes on one json_file store: a login on A is good on B; a
    logout on B ends it on A."""
    a = Server(binary, name="A").start()
    b = Server(binary, datadir=a.dir, name="B").start()
    try:
        check(a.port != b.port, "different ports")
        ca = Client(a)
        ca.login()
        cb = Client(b)
        cb.cookie = ca.cookie
        r, js, _ = cb.request("GET", "/api/v1/auth/me")
        check(r.status == 200 and js["username"] == "admin", f"B accepts A's cookie: {js}")
        r, js, _ = cb.request("GET", "/api/v1/auth/csrf-token")
        check(js == {"csrf_token": ca.csrf}, "B sees A's CSRF token")
        r, js, _ = ca.request("POST", "/api/v1/connections", CONN, headers={"X-CSRF-Token": ca.csrf})
        check(r.status == 201, f"save on A: {js}")
        r, js, _ = cb.request("GET", f"/api/v1/connections/{js['id']}")
        check(r.status == 200 and js["password"] == CONN["password"], f"read on B: {r.status}")
        r, js, _ = cb.request("POST", "/api/v1/auth/logout", headers={"X-CSRF-Token": ca.csrf})
        check(r.status == 200, f"logout on B: {r.status} {js}")
        r, js, _ = ca.request("GET", "/api/v1/auth/me")
        expect_error(r, js, 401, "AUTH_SESSION_EXPIRED")
        ca.close()
        cb.close()
    finally:
        b.stop()
        a.stop()


def test_cors_head_and_nul(binary):
    srv = Server(binary, env={"CORS_ORIGINS": "http://localhost:5173, https://kotte.example.com"}).start()
    try:
        c = Client(srv)
        # preflight from an allowed origin: Starlette's answer
        r, _, body = c.request("OPTIONS", "/api/v1/auth/login", headers={
            "Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-csrf-token"})
        check(r.status == 200 and body == b"OK", f"preflight: {r.status} {body!r}")
        check(r.getheader("Access-Control-Allow-Origin") == "http://localhost:5173", "allow origin")
        check(r.getheader("Access-Control-Allow-Credentials") == "true", "credentials")
        check("POST" in r.getheader("Access-Control-Allow-Methods"), "methods")
        check(r.getheader("Access-Control-Allow-Headers") == "content-type,x-csrf-token", "headers")
        r, _, body = c.request("OPTIONS", "/api/v1/auth/logout", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        check(r.status == 400 and body == b"Disallowed CORS origin", f"bad origin: {body!r}")
        check(r.getheader("Access-Control-Allow-Origin") is None, "no CORS header for it")
        # the real request carries the headers for an allowed origin only
        r, js, _ = c.request("POST", "/api/v1/auth/login", {"username": "admin", "password": "admin"},
                             headers={"Origin": "https://kotte.example.com"})
        check(r.status == 200 and r.getheader("Access-Control-Allow-Origin") ==
              "https://kotte.example.com" and r.getheader("Vary") == "Origin", "CORS on login")
        r, js, _ = c.request("GET", "/api/v1/health", headers={"Origin": "https://evil.example"})
        check(r.status == 200 and r.getheader("Access-Control-Allow-Origin") is None, "evil origin")
        # HEAD: the answer's headers, no body, and the connection stays usable
        r, _, body = c.request("HEAD", "/api/v1/health")
        check(r.status == 405 and body == b"", f"HEAD: {r.status} {body!r}")
        r, js, _ = c.request("GET", "/api/v1/health")
        check(r.status == 200 and js["status"] == "healthy", "same connection after HEAD")
        # an escaped NUL cannot shorten a password
        r, js, _ = c.request("POST", "/api/v1/auth/login",
                             raw_body=b'{"username":"admin","password":"admin\\u0000x"}',
                             headers={"Content-Type": "application/json"})
        expect_error(r, js, 422, "QUERY_VALIDATION_ERROR")
        c.close()
    finally:
        srv.stop()


def test_connections_isolation_and_persistence(binary):
    """Another user never sees a connection; json_file keeps them across a
    restart; without MASTER_ENCRYPTION_KEY a development key file is made."""
    import subprocess
    srv = Server(binary, env={"MASTER_ENCRYPTION_KEY": ""})
    for name in ("alice", "bob"):
        p = subprocess.run([binary, "user", "add", name], env=srv.env, cwd=srv.dir,
                           input=f"{name}-pw\n".encode(), capture_output=True, timeout=30)
        check(p.returncode == 0, f"user add: {p.stderr!r}")
    srv.start()
    try:
        check(srv.events("development_key"), "development key announced")
        key = os.path.join(srv.dir, ".master_encryption_key")
        check(os.stat(key).st_mode & 0o077 == 0, "development key file is 0600")
        a = Client(srv)
        a.login("alice", "alice-pw")
        r, js, _ = a.request("POST", "/api/v1/connections", CONN, headers={"X-CSRF-Token": a.csrf})
        check(r.status == 201, f"save: {js}")
        cid = js["id"]
        b = Client(srv)
        b.login("bob", "bob-pw")
        r, js, _ = b.request("GET", f"/api/v1/connections/{cid}")
        expect_error(r, js, 404, "CONNECTION_NOT_FOUND", f"Connection '{cid}' not found")
        r, js, _ = b.request("GET", "/api/v1/connections")
        check(r.status == 200 and js == [], f"bob's list: {js}")
        r, js, _ = b.request("DELETE", f"/api/v1/connections/{cid}", headers={"X-CSRF-Token": b.csrf})
        expect_error(r, js, 404, "CONNECTION_NOT_FOUND")
        a.close()
        b.close()
    finally:
        srv.stop()
    with open(os.path.join(srv.dir, "connections.journal"), "rb") as f:
        check(CONN["password"].encode() not in f.read(), "the journal holds no plaintext password")
    srv2 = Server(binary, env={"MASTER_ENCRYPTION_KEY": ""}, datadir=srv.dir, name="restarted")
    srv2.start()
    try:
        a = Client(srv2)
        a.login("alice", "alice-pw")
        r, js, _ = a.request("GET", f"/api/v1/connections/{cid}")
        check(r.status == 200 and js["password"] == CONN["password"], f"after restart: {r.status}")
        a.close()
    finally:
        srv2.stop()


def test_client_address(binary):
    """The client a log line names: the peer, or, when the peer is in
    FORWARDED_ALLOW_IPS (uvicorn's default: 127.0.0.1), the address its
    X-Forwarded-For names; bad FORWARDED_ALLOW_IPS values stop the start."""
    import subprocess
    import time

    def lines(srv, event, n):
        deadline = time.monotonic() + 5
        while len(srv.events(event)) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return srv.events(event)

    srv = Server(binary)
    srv.env.pop("FORWARDED_ALLOW_IPS", None)
    srv.start()
    try:
        check(srv.events("listening")[0]["forwarded_allow_ips"] == "127.0.0.1", "default trust")
        c = Client(srv)
        for xff in ("198.51.100.7", "198.51.100.7, 127.0.0.1", "203.0.113.1, 198.51.100.7", None):
            r, _, _ = c.request("GET", "/api/v1/auth/me",
                                headers={"X-Forwarded-For": xff} if xff else {})
            check(r.status == 401, f"me: {r.status}")
        got = [l["client_ip"] for l in lines(srv, "http_request", 4)[-4:]]
        check(got == ["198.51.100.7"] * 3 + ["127.0.0.1"], f"access log client_ip: {got}")
        r, js, _ = c.request("POST", "/api/v1/auth/login", {"username": "admin", "password": "no"},
                             headers={"X-Forwarded-For": "2001:DB8::7"})
        expect_error(r, js, 401, "AUTH_INVALID_SESSION")
        check(lines(srv, "auth_failed", 1)[0]["ip"] == "2001:db8::7", "auth_failed names the client")
        r, js, _ = c.request("POST", "/api/v1/auth/logout", headers={"X-Forwarded-For": "192.0.2.9"})
        expect_error(r, js, 403, "INTERNAL_ERROR")
        check(lines(srv, "csrf_failure", 1)[0]["client_ip"] == "192.0.2.9", "csrf_failure")
        c.close()
    finally:
        srv.stop()
    # a peer that is not trusted: the header is ignored
    srv = Server(binary, env={"FORWARDED_ALLOW_IPS": "10.0.0.0/8, ::1"}).start()
    try:
        c = Client(srv)
        c.request("GET", "/api/v1/auth/me", headers={"X-Forwarded-For": "198.51.100.7"})
        check(lines(srv, "http_request", 1)[-1]["client_ip"] == "127.0.0.1", "untrusted peer")
        c.close()
    finally:
        srv.stop()
    for value, needle in (("10.0.0.1/8", "host bits set"), ("10.0.0.0/33", "prefix length"),
                          ("300.1.1.1", "'300.1.1.1' is not an IP address"),
                          ("ingress-nginx", "is not an IP address"),
                          ("127.0.0.1,*", "only entry")):
        env = dict(srv.env, FORWARDED_ALLOW_IPS=value)
        p = subprocess.run([binary], env=env, cwd=srv.dir, capture_output=True, timeout=15)
        err = p.stderr.decode()
        check(p.returncode == 2 and err.startswith("kotte-server: FORWARDED_ALLOW_IPS") and
              needle in err, f"FORWARDED_ALLOW_IPS={value!r}: exit {p.returncode}, {err!r}")


def test_memory_backend(binary):
    srv = Server(binary, env={"SESSION_STORAGE_TYPE": "memory",
                              "CREDENTIAL_STORAGE_TYPE": "memory"}).start()
    try:
        c = Client(srv)
        c.login()
        r, js, _ = c.request("GET", "/api/v1/session/status")
        check(r.status == 200, f"status on memory: {js}")
        r, js, _ = c.request("GET", "/api/v1/ready")
        check(js["stores"]["sessions"]["backend"] == "memory", f"ready: {js}")
        c.close()
    finally:
        srv.stop()
    check(not os.path.exists(os.path.join(srv.dir, "sessions.journal")), "memory writes no file")


def test_json_nul_and_control_characters(binary):
    """cJSON ends a string at a NUL, raw or escaped: a body holding one is
    refused (422), never read shortened ("admin<NUL>zzz" checked as
    "admin", a saved password "pw<NUL>tail" stored as "pw"). Raw control
    characters are not JSON and are refused too. An escaped backslash
    followed by u0000 is a legal string and is kept as sent."""
    import subprocess
    literal = "\\u0000-pw"  # a backslash, then the text u0000-pw
    srv = Server(binary)
    for name, pw in (("admin", "admin"), ("carol", literal)):
        p = subprocess.run([binary, "user", "add", name], env=srv.env, cwd=srv.dir,
                           input=pw.encode() + b"\n", capture_output=True, timeout=30)
        check(p.returncode == 0, f"user add: {p.stderr!r}")
    srv.start()
    try:
        c = Client(srv)
        ct = {"Content-Type": "application/json"}
        for body, kind in ((b'{"username":"admin","password":"admin\x00zzz"}', "json_invalid"),
                           (b'{"username":"admin\x00zzz","password":"admin"}', "json_invalid"),
                           (b'{"username":"admin","password":"admin"}\x00', "json_invalid"),
                           (b'{"username":"admin","password":"adm\tin"}', "json_invalid"),
                           # cJSON read a \u without four hex digits as \u0000
                           (b'{"username":"admin","password":"admin\\uzzzz"}', "json_invalid"),
                           (b'{"username":"admin","password":"admin\\u0000zzz"}', "string_nul")):
            r, js, _ = c.request("POST", "/api/v1/auth/login", raw_body=body, headers=ct)
            expect_error(r, js, 422, "QUERY_VALIDATION_ERROR")
            check(js["error"]["details"]["errors"][0]["type"] == kind, f"{body!r}: {js}")
            check(c.cookie is None, f"{body!r}: no session")
        # the escaped backslash: a real password, not an escaped NUL
        r, js, _ = c.request("POST", "/api/v1/auth/login", {"username": "carol", "password": literal})
        check(r.status == 200, f"login with a backslash-u0000 password: {r.status} {js}")
        csrf = {"X-CSRF-Token": js["csrf_token"], "Content-Type": "application/json"}
        for pw in (b"pw\x00tail", b"pw\\u0000tail", b"pw\x1ftail", b"pw\\u00zztail"):
            body = json.dumps(dict(CONN, password="@")).encode().replace(b"@", pw)
            r, js, _ = c.request("POST", "/api/v1/connections", raw_body=body, headers=csrf)
            expect_error(r, js, 422, "QUERY_VALIDATION_ERROR")
        r, js, _ = c.request("GET", "/api/v1/connections")
        check(r.status == 200 and js == [], f"nothing saved: {js}")
        r, js, _ = c.request("POST", "/api/v1/connections", dict(CONN, password="pw" + literal),
                             headers={"X-CSRF-Token": csrf["X-CSRF-Token"]})
        check(r.status == 201, f"save with a backslash-u0000 password: {r.status} {js}")
        r, js, _ = c.request("GET", f"/api/v1/connections/{js['id']}")
        check(r.status == 200 and js["password"] == "pw" + literal, f"kept as sent: {js}")
        c.close()
    finally:
        srv.stop()


if __name__ == "__main__":
    run([test_full_flow, test_auth_errors, test_health_ready_metrics,
         test_production_cookie_and_users_cli, test_two_servers_json_file, test_cors_head_and_nul,
         test_connections_isolation_and_persistence, test_client_address, test_memory_backend,
         test_text_that_is_not_utf8,
         test_json_nul_and_control_characters],
        sys.argv[1])
