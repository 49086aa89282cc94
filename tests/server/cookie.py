"""kotte-server's session cookie against Starlette's SessionMiddleware.

Kotte's browser cookie is what Starlette's SessionMiddleware writes (Kotte
configures it with SESSION_SECRET_KEY, max_age SESSION_MAX_AGE,
same_site "lax", https_only in production, the name SESSION_COOKIE_NAME).
These tests run Debian's Starlette and itsdangerous beside the real server:

* the server's Set-Cookie is byte for byte the header Starlette's middleware
  writes for the same session at the same second;
* a cookie Starlette signs is a session for the server (me, CSRF, logout);
* a cookie with another key, a changed payload or signature, an expired or
  future timestamp, the bare session id of old, or "null" is no session;
* every answer to a request with a good cookie signs it anew, as Starlette
  does; SESSION_COOKIE_NAME and production's Secure flag are honoured, and
  production refuses to start without SESSION_SECRET_KEY.

    python3 tests/server/cookie.py path/to/kotte-server
"""

import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (TEST_SESSION_SECRET, Client, Server, check, cookie_session,  # noqa: E402
                     expect_error, run)

import itsdangerous  # noqa: E402
from starlette.middleware.sessions import SessionMiddleware  # noqa: E402


def starlette_set_cookie(session, ts, secret=TEST_SESSION_SECRET, max_age=3600,
                         name="kotte_session", production=False):
    """The Set-Cookie header Starlette's middleware, configured as Kotte's
    main.py configures it, writes for @session signed at second @ts."""
    async def app(scope, receive, send):
        scope["session"].update(session)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    mw = SessionMiddleware(app, secret_key=secret, max_age=max_age, same_site="lax",
                           https_only=production, session_cookie=name)
    mw.signer.get_timestamp = lambda: ts
    sent = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(msg):
        sent.append(msg)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    asyncio.run(mw(scope, receive, send))
    headers = dict((k.decode(), v.decode()) for k, v in sent[0]["headers"])
    return "Set-Cookie: " + headers["set-cookie"]


def signed(session, ts=None, secret=TEST_SESSION_SECRET):
    """A cookie value signed by itsdangerous at @ts (default: now)."""
    header = starlette_set_cookie(session, int(time.time()) if ts is None else ts, secret)
    return header.split("=", 1)[1].split(";", 1)[0]


def timestamp_of(cookie):
    ts = cookie.split(".")[1]
    return int.from_bytes(base64.urlsafe_b64decode(ts + "=" * (-len(ts) % 4)), "big")


def set_cookie_header(r):
    for k, v in r.getheaders():
        if k.lower() == "set-cookie":
            return f"Set-Cookie: {v}"
    return None


def test_login_cookie_is_starlettes(binary):
    srv = Server(binary).start()
    try:
        c = Client(srv)
        r, js = c.login()
        header = set_cookie_header(r)
        sess = cookie_session(c.cookie)
        check(list(sess) == ["session_id", "csrf_token"], f"cookie session keys: {sess}")
        check(sess["csrf_token"] == js["csrf_token"], "the cookie carries the login's CSRF token")
        want = starlette_set_cookie(sess, timestamp_of(c.cookie))
        check(header == want, f"Set-Cookie differs from Starlette's:\n {header}\n {want}")
        # itsdangerous verifies it with Kotte's max_age
        payload = itsdangerous.TimestampSigner(TEST_SESSION_SECRET).unsign(c.cookie, max_age=3600)
        check(json.loads(base64.b64decode(payload)) == sess, "itsdangerous opens the cookie")
    finally:
        srv.stop()


def test_starlette_cookie_is_a_session(binary):
    srv = Server(binary).start()
    try:
        a = Client(srv)
        a.login()
        sess = cookie_session(a.cookie)
        b = Client(srv)
        b.cookie = signed(sess)  # made by Python, not by the server
        r, js, _ = b.request("GET", "/api/v1/auth/me")
        check(r.status == 200 and js["username"] == "admin", f"me with Starlette's cookie: {js}")
        # its session only: {"session_id"} without a CSRF token is a session too
        b.cookie = signed({"session_id": sess["session_id"]})
        r, js, _ = b.request("GET", "/api/v1/auth/me")
        check(r.status == 200, f"me with a cookie without csrf_token: {r.status} {js}")
        b.cookie = signed(sess)
        r, js, _ = b.request("POST", "/api/v1/auth/logout", headers={"X-CSRF-Token": a.csrf})
        check(r.status == 200 and js == {"logged_out": True}, f"logout: {r.status} {js}")
        check(set_cookie_header(r) == "Set-Cookie: kotte_session=null; path=/; expires=Thu, 01 "
              "Jan 1970 00:00:00 GMT; httponly; samesite=lax", f"cleared: {set_cookie_header(r)}")
        r, js, _ = a.request("GET", "/api/v1/auth/me")
        expect_error(r, js, 401, "AUTH_SESSION_EXPIRED")
    finally:
        srv.stop()


def test_bad_cookies_are_no_session(binary):
    srv = Server(binary).start()
    try:
        a = Client(srv)
        a.login()
        sess = cookie_session(a.cookie)
        now = int(time.time())
        good = signed(sess)
        payload, ts, sig = good.split(".")
        other_payload = base64.b64encode(json.dumps(dict(sess, csrf_token="x" * 43)).encode())
        bad = {
            "another key": signed(sess, secret="another-secret-key-of-someone-else"),
            "payload changed": other_payload.decode() + "." + ts + "." + sig,
            "signature changed": payload + "." + ts + "." + ("A" if sig[0] != "A" else "B")
                                 + sig[1:],
            "expired": signed(sess, ts=now - 3600 - 5),
            "signed in the future": signed(sess, ts=now + 120),
            "bare session id": sess["session_id"],
            "null": "null",
            "no timestamp": payload + "." + sig,
            "session_id not a token": signed({"session_id": "not-a-token"}),
        }
        for what, cookie in bad.items():
            r, js, _ = Client(srv).request("GET", "/api/v1/auth/me", cookie=cookie)
            expect_error(r, js, 401, "AUTH_REQUIRED")
            check(set_cookie_header(r) is None, f"{what}: no cookie set for a bad one")
        # just inside Kotte's max_age: still good
        r, js, _ = Client(srv).request("GET", "/api/v1/auth/me",
                                       cookie=signed(sess, ts=now - 3600 + 30))
        check(r.status == 200, f"a cookie 3570 s old is good: {r.status} {js}")
    finally:
        srv.stop()


def test_every_answer_signs_the_cookie_anew(binary):
    srv = Server(binary).start()
    try:
        c = Client(srv)
        c.login()
        sess = cookie_session(c.cookie)
        old = signed(sess, ts=int(time.time()) - 100)
        r, js, _ = c.request("GET", "/api/v1/auth/me", cookie=old)
        header = set_cookie_header(r)
        check(header is not None, "me answers with the cookie signed anew")
        new = header.split("=", 1)[1].split(";", 1)[0]
        check(timestamp_of(new) >= int(time.time()) - 5, "with a fresh timestamp")
        check(header == starlette_set_cookie(sess, timestamp_of(new)), f"as Starlette: {header}")
        # also an error answer, as Starlette's middleware signs any non-empty session
        r, js, _ = c.request("GET", "/api/v1/connections/not-a-uuid", cookie=old)
        check(r.status == 404 and set_cookie_header(r) is not None, f"404 with cookie: {r.status}")
    finally:
        srv.stop()


def test_a_cookie_signed_just_after_a_second_turns_is_good(binary):
    """Python signs with time.time() (CLOCK_REALTIME); glibc's time() reads
    the coarse clock, which turns to the next second a few milliseconds
    later. A cookie a Python replica signed in those milliseconds, sent at
    once to a server that checks it with time(), is "from the future" there
    (age -1) and refused: a 401 in the middle of a mixed deployment's flow
    (seen in test_mixed_replicas). Signed right after 8 second turns, each
    must be a session."""
    srv = Server(binary).start()
    try:
        a = Client(srv)
        a.login()
        sess = cookie_session(a.cookie)
        b = Client(srv)
        b.request("GET", "/api/v1/health")  # the connection is open before the turn
        refused = 0
        for _ in range(8):
            second = int(time.time())
            while int(time.time()) == second:
                pass
            b.cookie = signed(sess)
            r, js, _ = b.request("GET", "/api/v1/auth/me")
            refused += r.status != 200
        check(refused == 0, f"{refused} of 8 cookies signed just after a second turned refused")
    finally:
        srv.stop()


def test_cookie_name_and_production(binary):
    env = {"SESSION_COOKIE_NAME": "kotte_sid", "ENVIRONMENT": "production",
           "ADMIN_PASSWORD": "Prod-Adm1n-Passw0rd", "SESSION_MAX_AGE": "900"}
    srv = Server(binary, env=env).start()
    try:
        c = Client(srv)
        r, js, _ = c.request("POST", "/api/v1/auth/login",
                             {"username": "admin", "password": "Prod-Adm1n-Passw0rd"})
        check(r.status == 200, f"login: {r.status} {js}")
        header = set_cookie_header(r)
        value = re.match(r"Set-Cookie: kotte_sid=([^;]+);", header)
        check(value is not None, f"cookie name from SESSION_COOKIE_NAME: {header}")
        sess = cookie_session(value.group(1))
        want = starlette_set_cookie(sess, timestamp_of(value.group(1)), max_age=900,
                                    name="kotte_sid", production=True)
        check(header == want, f"production cookie differs:\n {header}\n {want}")
        r, js, _ = c.request("GET", "/api/v1/auth/me",
                             headers={"Cookie": f"kotte_sid={value.group(1)}"})
        check(r.status == 200, f"me with kotte_sid: {r.status} {js}")
        r, js, _ = c.request("GET", "/api/v1/auth/me",
                             headers={"Cookie": f"kotte_session={value.group(1)}"})
        expect_error(r, js, 401, "AUTH_REQUIRED")
    finally:
        srv.stop()
    for bad_env, message in (
            ({"ENVIRONMENT": "production", "ADMIN_PASSWORD": "Prod-Adm1n-Passw0rd",
              "SESSION_SECRET_KEY": ""}, "SESSION_SECRET_KEY must be set in production"),
            ({"SESSION_COOKIE_NAME": "bad name;"}, "SESSION_COOKIE_NAME")):
        s = Server(binary, env=bad_env)
        p = subprocess.run([binary], env=s.env, cwd=s.dir, capture_output=True, timeout=60)
        check(p.returncode != 0 and message in p.stderr.decode(),
              f"refused at start ({message}): {p.returncode} {p.stderr[-500:]!r}")


if __name__ == "__main__":
    run([test_login_cookie_is_starlettes, test_starlette_cookie_is_a_session,
         test_bad_cookies_are_no_session, test_every_answer_signs_the_cookie_anew,
         test_a_cookie_signed_just_after_a_second_turns_is_good,
         test_cookie_name_and_production], sys.argv[1])
