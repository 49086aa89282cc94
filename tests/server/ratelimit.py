#!/usr/bin/env python3
"""kotte-server's rate limits, as Kotte's RateLimitMiddleware answers them,
against the real binary: 429 with Kotte's envelope after N requests,
X-RateLimit-* counting down, the per-user limit, RATE_LIMIT_ENABLED=false,
X-Forwarded-For believed only from FORWARDED_ALLOW_IPS, probes never
limited, bad settings refused at start (FORWARDED_ALLOW_IPS's: e2e.py).

Every client here connects from 127.0.0.1, which FORWARDED_ALLOW_IPS trusts
by default, so a test gives each simulated client its own address in
X-Forwarded-For.

    python3 tests/server/ratelimit.py path/to/kotte-server
"""

import datetime
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Client, Server, check, expect_error, run  # noqa: E402

MESSAGE = "Rate limit exceeded. Please try again later."
RL_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def limited(env=None, forwarded=None):
    """Server env: limiting on, the given settings, FORWARDED_ALLOW_IPS as
    given (None: unset, uvicorn's default 127.0.0.1)."""
    e = {"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_PER_MINUTE": "60", "RATE_LIMIT_PER_USER": "100"}
    e.update(env or {})
    return e, forwarded


def start(binary, env=None, forwarded=None, name="server"):
    e, fwd = limited(env, forwarded)
    srv = Server(binary, env=e, name=name)
    for k in ("KOTTE_RATE_LIMIT_MAX_KEYS", "KOTTE_RATE_LIMIT_IPV6_PREFIX", "FORWARDED_ALLOW_IPS"):
        if k not in e:
            srv.env.pop(k, None)
    if fwd is not None:
        srv.env["FORWARDED_ALLOW_IPS"] = fwd
    return srv.start()


class As(Client):
    """A client that a trusted proxy introduces as @p addr."""

    def __init__(self, server, addr=None):
        super().__init__(server)
        self.addr = addr

    def request(self, method, path, body=None, headers=None, raw_body=None, cookie=None):
        h = dict(headers or {})
        if self.addr is not None:
            h.setdefault("X-Forwarded-For", self.addr)
        return super().request(method, path, body, h, raw_body, cookie)


def wait_for(fn, what, timeout=5.0):
    """The log is read by a thread: give it a moment."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def expect_limited(r, js):
    """Kotte's 429: the envelope, retryable, details null, no X-RateLimit-*."""
    expect_error(r, js, 429, "RATE_LIMITED", MESSAGE)
    e = js["error"]
    check(e["category"] == "rate_limit", f"category: {e}")
    check(e["details"] is None, f"details must be null: {e}")
    check(e["retryable"] is True, f"retryable: {e}")
    ts = datetime.datetime.fromisoformat(e["timestamp"])
    check(ts.tzinfo is not None and abs((datetime.datetime.now(datetime.timezone.utc) - ts)
                                        .total_seconds()) < 30, f"timestamp: {e['timestamp']}")
    for h in RL_HEADERS:
        check(r.getheader(h) is None, f"a refusal carries no {h}, as Kotte's: {r.getheaders()}")
    ra = r.getheader("Retry-After")
    check(ra is not None and 1 <= int(ra) <= 61, f"Retry-After: {ra}")
    check(r.getheader("X-Content-Type-Options") == "nosniff", "security headers on a 429 too")
    check(r.getheader("Connection") == "keep-alive", "a 429 keeps the connection")


def remaining(r):
    v = r.getheader("X-RateLimit-Remaining")
    check(v is not None, f"no X-RateLimit-Remaining on {r.status}: {r.getheaders()}")
    return int(v)


def metric(srv, name):
    c = Client(srv)
    try:
        r, _, text = c.request("GET", "/metrics")
    finally:
        c.close()
    m = re.search(r"^" + re.escape(name) + r" (\d+)$", text.decode(), re.M)
    return int(m.group(1)) if m else None


def add_user(binary, srv, name, password):
    p = subprocess.run([binary, "user", "add", name], env=srv.env, cwd=srv.dir,
                       input=(password + "\n").encode(), capture_output=True, timeout=30)
    check(p.returncode == 0, f"user add {name}: {p.stderr!r}")


# ---------------------------------------------------------------------------


def test_client_limit_then_429(binary):
    srv = start(binary, {"RATE_LIMIT_PER_MINUTE": "5"})
    try:
        listening = srv.events("listening")[0]
        check(listening.get("rate_limit_per_minute") == 5 and
              listening.get("forwarded_allow_ips") == "127.0.0.1", f"start line: {listening}")
        c = Client(srv)  # no X-Forwarded-For: the peer, 127.0.0.1
        for i in range(5):
            before = int(time.time())
            r, js, _ = c.request("GET", "/api/v1/auth/me")
            check(r.status == 401, f"request {i + 1}: {r.status} {js}")  # counted all the same
            check(r.getheader("X-RateLimit-Limit") == "5", f"limit header: {r.getheaders()}")
            check(remaining(r) == 4 - i, f"request {i + 1}: remaining {remaining(r)}")
            reset = int(r.getheader("X-RateLimit-Reset"))
            check(before + 60 <= reset <= int(time.time()) + 60, f"reset {reset}, now {before}")
        for method, path, body in (("GET", "/api/v1/auth/me", None),
                                   ("GET", "/api/v1/auth/me", None),
                                   ("POST", "/api/v1/auth/login",
                                    {"username": "admin", "password": "admin"}),
                                   ("GET", "/api/v1/nowhere", None),
                                   ("POST", "/api/v1/auth/logout", None)):  # before CSRF
            r, js, _ = c.request(method, path, body)
            expect_limited(r, js)
        c.close()
        ev = wait_for(lambda: srv.events("rate_limit_exceeded_ip"), "rate_limit_exceeded_ip")
        check(ev[0]["ip"] == "127.0.0.1" and ev[0]["level"] == "WARNING" and
              ev[0]["path"] == "/api/v1/auth/me", f"log line: {ev[0]}")
        # one line a minute per client; every refusal is in the metrics
        time.sleep(0.3)
        check(len(srv.events("rate_limit_exceeded_ip")) == 1, "refusals after the first are not logged")
        check(metric(srv, 'kotte_rate_limited_total{limit="client"}') == 5, "refusals counted")
        check(metric(srv, 'kotte_rate_limit_keys{limit="client"}') == 1, "one client tracked")
        check(metric(srv, 'http_requests_total{method="GET",endpoint="/api/v1/auth/me",'
                          'status_code="429"}') == 2, "429s in the request metrics")
        def refused_lines():
            return [l for l in srv.events("http_request") if l.get("status_code") == 429]

        access = wait_for(lambda: len(refused_lines()) >= 5 and refused_lines(),
                          "access lines of the 429s")
        check(len(access) == 5 and all(l["client_ip"] == "127.0.0.1" for l in access),
              f"access lines of the 429s: {access}")
    finally:
        srv.stop()


def test_per_user_limit_and_refusals_not_counted(binary):
    srv = Server(binary, env=limited({"RATE_LIMIT_PER_MINUTE": "6",
                                      "RATE_LIMIT_PER_USER": "3"})[0])
    srv.env.pop("FORWARDED_ALLOW_IPS", None)
    add_user(binary, srv, "alice", "alice-pw-1")
    add_user(binary, srv, "bob", "bob-pw-2")
    srv.start()
    try:
        a = As(srv, "198.51.100.1")
        r, js = a.login("alice", "alice-pw-1")  # login reads no session: the address only
        check(remaining(r) == 5, f"after login: {remaining(r)}")
        for i in range(3):
            r, js, _ = a.request("GET", "/api/v1/auth/me")
            check(r.status == 200 and js["user_id"] == "alice", f"me {i + 1}: {r.status} {js}")
            check(remaining(r) == 4 - i, f"me {i + 1}: remaining {remaining(r)}")
        r, js, _ = a.request("GET", "/api/v1/auth/me")  # alice's 4th in the minute
        expect_limited(r, js)
        # Kotte limits before it checks CSRF: a 429, not a 403
        r, js, _ = a.request("POST", "/api/v1/connections", {"name": "x"},
                             headers={"X-CSRF-Token": "wrong"})
        expect_limited(r, js)
        r, js, _ = a.request("DELETE", "/api/v1/connections/x", headers={"X-CSRF-Token": a.csrf})
        expect_limited(r, js)
        # the user, not the session or the address: alice elsewhere, new session
        a2 = As(srv, "198.51.100.2")
        a2.login("alice", "alice-pw-1")
        r, js, _ = a2.request("GET", "/api/v1/session/status")
        expect_limited(r, js)
        # bob from alice's address has his own count; the address has counted
        # 4 of alice's and none of her 3 refused requests
        b = As(srv, "198.51.100.1")
        r, js = b.login("bob", "bob-pw-2")
        check(remaining(r) == 1, f"refused requests were counted: remaining {remaining(r)}")
        r, js, _ = b.request("GET", "/api/v1/auth/me")
        check(r.status == 200 and js["user_id"] == "bob" and remaining(r) == 0, f"bob: {r.status}")
        r, js, _ = b.request("GET", "/api/v1/auth/me")  # now the address's limit
        expect_limited(r, js)
        anon = As(srv, "198.51.100.3")
        r, js, _ = anon.request("GET", "/api/v1/auth/me")
        expect_error(r, js, 401, "AUTH_REQUIRED")
        ev = wait_for(lambda: srv.events("rate_limit_exceeded_user"), "rate_limit_exceeded_user")
        check(ev[0]["user_id"] == "alice" and ev[0]["ip"] == "198.51.100.1", f"user line: {ev[0]}")
        ev = wait_for(lambda: srv.events("rate_limit_exceeded_ip"), "rate_limit_exceeded_ip")
        check(ev[0]["ip"] == "198.51.100.1" and "user_id" not in ev[0], f"ip line: {ev[0]}")
        check(metric(srv, 'kotte_rate_limited_total{limit="user"}') == 4, "user refusals")
        check(metric(srv, 'kotte_rate_limited_total{limit="client"}') == 1, "client refusals")
        for c in (a, a2, b, anon):
            c.close()
    finally:
        srv.stop()


def test_probes_and_preflights_never_limited(binary):
    srv = start(binary, {"RATE_LIMIT_PER_MINUTE": "2"})
    probes = ("/api/v1/health", "/api/v1/ready", "/metrics", "/api/v1/metrics")
    try:
        c = Client(srv)

        def probe_all():
            for _ in range(10):
                for p in probes:
                    r, _, _ = c.request("GET", p)
                    check(r.status == 200, f"{p}: {r.status}")
                    for h in RL_HEADERS:
                        check(r.getheader(h) is None, f"{p} carries {h}: not counted")
            r, _, _ = c.request("OPTIONS", "/api/v1/auth/me",
                                headers={"Origin": "http://localhost:5173",
                                         "Access-Control-Request-Method": "GET"})
            check(r.status == 200, f"preflight: {r.status}")

        probe_all()
        r, js, _ = c.request("GET", "/api/v1/auth/me")
        check(remaining(r) == 1, f"probes were counted: remaining {remaining(r)}")
        r, js, _ = c.request("GET", "/api/v1/auth/me")
        check(remaining(r) == 0, "second request")
        r, js, _ = c.request("GET", "/api/v1/auth/me")
        expect_limited(r, js)
        probe_all()  # still answered while the address is over its limit
        # only the probes themselves: another method on their path is limited
        r, js, _ = c.request("POST", "/api/v1/health")
        expect_limited(r, js)
        c.close()
    finally:
        srv.stop()


def test_disabled(binary):
    for value in ("false", "0", "No", "OFF"):
        srv = start(binary, {"RATE_LIMIT_ENABLED": value, "RATE_LIMIT_PER_MINUTE": "1",
                             "RATE_LIMIT_PER_USER": "1"})
        try:
            c = Client(srv)
            c.login()
            for _ in range(15):
                r, js, _ = c.request("GET", "/api/v1/auth/me")
                check(r.status == 200, f"RATE_LIMIT_ENABLED={value}: {r.status} {js}")
                for h in RL_HEADERS + ("Retry-After",):
                    check(r.getheader(h) is None, f"RATE_LIMIT_ENABLED={value}: {h} sent")
            c.close()
            check(metric(srv, 'kotte_rate_limited_total{limit="client"}') is None,
                  "no rate-limit metrics when off")
            check(srv.events("listening")[0].get("rate_limit_enabled") is False, "start line")
        finally:
            srv.stop()
    for value in ("TRUE", "1", "yes", "on"):
        srv = start(binary, {"RATE_LIMIT_ENABLED": value, "RATE_LIMIT_PER_MINUTE": "1"})
        try:
            c = Client(srv)
            c.request("GET", "/api/v1/auth/me")
            r, js, _ = c.request("GET", "/api/v1/auth/me")
            expect_limited(r, js)
            c.close()
        finally:
            srv.stop()


def test_x_forwarded_for_only_from_trusted_peers(binary):
    # default FORWARDED_ALLOW_IPS: 127.0.0.1, which the tests connect from
    srv = start(binary, {"RATE_LIMIT_PER_MINUTE": "2"})
    try:
        x1, x2, me = As(srv, "203.0.113.1"), As(srv, "203.0.113.2"), As(srv)
        for c in (x1, x1):
            r, js, _ = c.request("GET", "/api/v1/auth/me")
            check(r.status == 401, f"{c.addr}: {r.status}")
        r, js, _ = x1.request("GET", "/api/v1/auth/me")
        expect_limited(r, js)
        r, js, _ = x2.request("GET", "/api/v1/auth/me")  # its own count
        check(r.status == 401 and remaining(r) == 1, f"203.0.113.2: {r.status}")
        r, js, _ = me.request("GET", "/api/v1/auth/me")  # the peer itself, no header
        check(r.status == 401 and remaining(r) == 1, f"127.0.0.1: {r.status}")
        # a trusted proxy hop on the right is skipped; the client is the
        # first address from the right that is not a trusted proxy
        r, js, _ = me.request("GET", "/api/v1/auth/me",
                              headers={"X-Forwarded-For": "203.0.113.1, 127.0.0.1"})
        expect_limited(r, js)
        r, js, _ = me.request("GET", "/api/v1/auth/me",
                              headers={"X-Forwarded-For": "203.0.113.1, 203.0.113.3"})
        check(r.status == 401 and remaining(r) == 1, "a spoofed left entry does not choose")
        # IPv6 clients: one count per /64
        v6a, v6b, v6c = As(srv, "2001:db8::1"), As(srv, "2001:db8::2"), As(srv, "2001:db8:0:1::1")
        for c in (v6a, v6b):
            r, js, _ = c.request("GET", "/api/v1/auth/me")
            check(r.status == 401, f"{c.addr}: {r.status}")
        r, js, _ = As(srv, "2001:db8::ffff").request("GET", "/api/v1/auth/me")
        expect_limited(r, js)
        r, js, _ = v6c.request("GET", "/api/v1/auth/me")
        check(r.status == 401, f"another /64: {r.status}")
        want = {"203.0.113.1", "203.0.113.2", "203.0.113.3", "127.0.0.1", "2001:db8::1",
                "2001:db8:0:1::1"}
        wait_for(lambda: want <= {l["client_ip"] for l in srv.events("http_request")},
                 f"access lines with client_ip {want}")
    finally:
        srv.stop()

    # a peer that is not trusted: the header is ignored, all is 127.0.0.1
    srv = start(binary, {"RATE_LIMIT_PER_MINUTE": "2"}, forwarded="10.0.0.0/8, 192.0.2.1")
    try:
        for i, addr in enumerate(("203.0.113.1", "203.0.113.2", "203.0.113.3")):
            r, js, _ = As(srv, addr).request("GET", "/api/v1/auth/me")
            if i < 2:
                check(r.status == 401, f"{addr}: {r.status}")
            else:
                expect_limited(r, js)
        ev = wait_for(lambda: srv.events("rate_limit_exceeded_ip"), "log line")
        check(ev[0]["ip"] == "127.0.0.1", f"the peer is the client: {ev[0]}")
        wait_for(lambda: len(srv.events("http_request")) >= 3, "access lines")
        check({l["client_ip"] for l in srv.events("http_request")} == {"127.0.0.1"},
              "access log: the peer")
    finally:
        srv.stop()

    # "*": every peer trusted, the first entry is the client (uvicorn's rule)
    srv = start(binary, {"RATE_LIMIT_PER_MINUTE": "1"}, forwarded="*")
    try:
        c = As(srv, "198.51.100.5, 203.0.113.9")
        c.request("GET", "/api/v1/auth/me")
        r, js, _ = c.request("GET", "/api/v1/auth/me")
        expect_limited(r, js)
        r, js, _ = As(srv, "203.0.113.9").request("GET", "/api/v1/auth/me")
        check(r.status == 401, f"* takes the first entry: {r.status}")
        ev = wait_for(lambda: srv.events("rate_limit_exceeded_ip"), "log line")
        check(ev[0]["ip"] == "198.51.100.5", f"{ev[0]}")
    finally:
        srv.stop()

    # a network: 127.0.0.0/8 holds the peer
    srv = start(binary, {"RATE_LIMIT_PER_MINUTE": "1"}, forwarded="127.0.0.0/8")
    try:
        As(srv, "203.0.113.1").request("GET", "/api/v1/auth/me")
        r, js, _ = As(srv, "203.0.113.2").request("GET", "/api/v1/auth/me")
        check(r.status == 401, f"CIDR trust: {r.status}")
    finally:
        srv.stop()


def test_exact_under_concurrency(binary):
    """8 connections at once, 80 requests, limit 50: exactly 50 admitted."""
    srv = start(binary, {"RATE_LIMIT_PER_MINUTE": "50"})
    try:
        statuses = []
        lock = threading.Lock()

        def worker():
            c = Client(srv)
            got = []
            for _ in range(10):
                r, _, _ = c.request("GET", "/api/v1/auth/me")
                got.append(r.status)
            c.close()
            with lock:
                statuses.extend(got)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        check(len(statuses) == 80, f"answers: {len(statuses)}")
        check(statuses.count(401) == 50 and statuses.count(429) == 30,
              f"admitted {statuses.count(401)}, refused {statuses.count(429)}")
    finally:
        srv.stop()


def test_bad_settings_refused(binary):
    srv = Server(binary)
    for name, value, needle in (
            ("RATE_LIMIT_ENABLED", "maybe", "RATE_LIMIT_ENABLED must be true or false"),
            ("RATE_LIMIT_PER_MINUTE", "0", "RATE_LIMIT_PER_MINUTE must be an integer between 1"),
            ("RATE_LIMIT_PER_MINUTE", "-5", "RATE_LIMIT_PER_MINUTE"),
            ("RATE_LIMIT_PER_MINUTE", "sixty", "RATE_LIMIT_PER_MINUTE"),
            ("RATE_LIMIT_PER_MINUTE", "1e3", "RATE_LIMIT_PER_MINUTE"),
            ("RATE_LIMIT_PER_USER", "0", "RATE_LIMIT_PER_USER must be an integer between 1"),
            ("RATE_LIMIT_PER_USER", "99999999999", "RATE_LIMIT_PER_USER"),
            ("KOTTE_RATE_LIMIT_MAX_KEYS", "0", "KOTTE_RATE_LIMIT_MAX_KEYS"),
            ("KOTTE_RATE_LIMIT_IPV6_PREFIX", "16", "KOTTE_RATE_LIMIT_IPV6_PREFIX")):
        env = dict(srv.env, **{name: value})
        try:
            p = subprocess.run([binary], env=env, cwd=srv.dir, capture_output=True, timeout=15)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{name}={value!r} was accepted: the server started") from None
        err = p.stderr.decode()
        check(p.returncode == 2 and err.startswith("kotte-server: ") and needle in err,
              f"{name}={value!r}: exit {p.returncode}, stderr {err!r}")
        check(b'"event":"listening"' not in p.stdout, f"{name}={value!r} started")
    # good ones start
    for env in ({"FORWARDED_ALLOW_IPS": "*"}, {"FORWARDED_ALLOW_IPS": ""},
                {"FORWARDED_ALLOW_IPS": " 10.0.0.0/8, ::1 ,fd00::/8,"},
                {"KOTTE_RATE_LIMIT_IPV6_PREFIX": "128", "KOTTE_RATE_LIMIT_MAX_KEYS": "1"},
                {"RATE_LIMIT_PER_MINUTE": "1000000000"}):
        s = start(binary, env, forwarded=env.get("FORWARDED_ALLOW_IPS"))
        s.stop()


if __name__ == "__main__":
    run([test_client_limit_then_429, test_per_user_limit_and_refusals_not_counted,
         test_probes_and_preflights_never_limited, test_disabled,
         test_x_forwarded_for_only_from_trusted_peers, test_exact_under_concurrency,
         test_bad_settings_refused],
        sys.argv[1])
