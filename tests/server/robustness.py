#!/usr/bin/env python3
"""kotte-server against malformed, oversized, slow and hostile clients.

Every case talks raw bytes over a socket to the real binary (built with
ASan+UBSan by tests/run.sh); after each group the server must still answer,
and at the end it must exit 0 on SIGTERM with no sanitizer report (which
includes LeakSanitizer: no leak).

    python3 tests/server/robustness.py path/to/kotte-server
"""

import os
import random
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Client, Server, check, raw_exchange, run, status_of  # noqa: E402

LIMITS = {
    "KOTTE_READ_TIMEOUT_MS": "1000",
    "KOTTE_IDLE_TIMEOUT_MS": "1000",
    "KOTTE_MAX_HEADER_SIZE": "4096",
    "KOTTE_MAX_HEADERS": "16",
    "KOTTE_MAX_BODY_SIZE": "4096",
    "KOTTE_MAX_CONNECTIONS": "32",
}

GOOD = b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\n\r\n"


def alive(srv):
    out, _ = raw_exchange(srv.port, b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    check(status_of(out) == 200, f"server no longer answers: {out[:200]!r}")


def expect_close(srv, data, status, what, **kw):
    out, closed = raw_exchange(srv.port, data, **kw)
    check(status_of(out) == status, f"{what}: expected {status}, got {out[:300]!r}")
    check(b"Connection: close" in out, f"{what}: answer says Connection: close")
    check(b'"error":{' in out, f"{what}: error envelope")
    check(closed, f"{what}: connection closed after the answer")


def test_malformed(binary):
    srv = Server(binary, env=LIMITS).start()
    try:
        cases = [
            b"GARBAGE\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\nBadHeaderWithoutColon\r\n\r\n",
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"GET /a b c HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)),  # a TLS hello
            b"GET http://[::1 HTTP/1.1\r\nHost: t\r\n\r\n",
            # request smuggling: both framings at once
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/v1/health HTTP/1.1\r\nHost: t\r\n\r\n",
        ]
        for data in cases:
            expect_close(srv, data, 400, f"malformed {data[:40]!r}")
        alive(srv)
    finally:
        srv.stop()


def test_oversized(binary):
    srv = Server(binary, env=LIMITS).start()
    try:
        expect_close(srv, b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414, "long URL")
        expect_close(srv, b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"v" * 5000 + b"\r\n\r\n", 431,
                     "big header")
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(20))
        expect_close(srv, b"GET / HTTP/1.1\r\nHost: t\r\n" + many + b"\r\n", 431, "many headers")
        # refused on the headers, before any body byte was sent
        expect_close(srv, b"POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 5000\r\n\r\n", 413, "big Content-Length")
        chunk = b"1000\r\n" + b"a" * 4096 + b"\r\n"
        expect_close(srv, b"POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + chunk + chunk, 413, "big chunked body")
        # a body within the limit but deeply nested JSON: 422, connection kept
        c = Client(srv)
        r, js, _ = c.request("POST", "/api/v1/auth/login", raw_body=b"[" * 2000 + b"]" * 2000,
                             headers={"Content-Type": "application/json"})
        check(r.status == 422, f"nested JSON: {r.status}")
        r, js, _ = c.request("GET", "/api/v1/health")
        check(r.status == 200, "same connection still usable")
        c.close()
        alive(srv)
    finally:
        srv.stop()


def test_slow_and_idle(binary):
    srv = Server(binary, env=LIMITS).start()
    try:
        # slowloris: one header byte every 200 ms never completes in time
        start = time.monotonic()
        head = b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\n"
        drip = [head] + [b"X-Slow: " + b"a" * i for i in range(1, 2)] + [b"b"] * 30
        out, closed = raw_exchange(srv.port, None, chunks=drip, pause=0.2, read_timeout=8)
        took = time.monotonic() - start
        check(status_of(out) == 408 and closed, f"slowloris: {out[:200]!r} closed={closed}")
        check(took < 7, f"slowloris cut after the read timeout, took {took:.1f}s")

        # a connection that sends nothing is closed after the read timeout
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        start = time.monotonic()
        check(s.recv(100) == b"", "silent connection closed without an answer")
        check(time.monotonic() - start < 4, "silent connection closed in time")
        s.close()

        # keep-alive: a second request on the same connection, then idle close
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        for _ in range(2):
            s.sendall(GOOD)
            data = s.recv(65536)
            check(status_of(data) == 200 and b"keep-alive" in data, "keep-alive answer")
        start = time.monotonic()
        check(s.recv(100) == b"", "idle keep-alive connection closed")
        check(time.monotonic() - start < 4, "idle close in time")
        s.close()

        # HTTP/1.0 without keep-alive: answered and closed
        out, closed = raw_exchange(srv.port, b"GET /api/v1/health HTTP/1.0\r\n\r\n")
        check(status_of(out) == 200 and closed and b"Connection: close" in out, "HTTP/1.0")
        alive(srv)
    finally:
        srv.stop()


def test_pipelining_and_continue(binary):
    srv = Server(binary, env=LIMITS).start()
    try:
        reqs = b"".join(b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\nX-Request-ID: p%d\r\n\r\n" % i
                        for i in range(5))
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(reqs + b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
        s.close()
        ids = [line.split(b": ")[1] for line in out.split(b"\r\n") if line.startswith(b"X-Request-ID")]
        check(ids[:5] == [b"p0", b"p1", b"p2", b"p3", b"p4"] and len(ids) == 6,
              f"pipelined answers in order: {ids}")

        # Expect: 100-continue
        body = b'{"username":"admin","password":"admin"}'
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.sendall(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                  b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
        first = s.recv(100)
        check(first == b"HTTP/1.1 100 Continue\r\n\r\n", f"100 Continue: {first!r}")
        s.sendall(body)
        resp = s.recv(65536)
        check(status_of(resp) == 200, f"login after 100-continue: {resp[:200]!r}")
        s.close()
    finally:
        srv.stop()


def test_fuzz_and_disconnects(binary):
    srv = Server(binary, env=LIMITS).start()
    try:
        rnd = random.Random(6)
        seeds = [GOOD,
                 b"POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 39\r\n\r\n{\"username\":\"admin\",\"password\":\"x\"}",
                 b"POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n",
                 b"GET /api/v1/auth/me HTTP/1.1\r\nHost: t\r\nCookie: kotte_session=" + b"A" * 43 + b"\r\n\r\n"]

        def mutate(data):
            b = bytearray(data)
            for _ in range(rnd.randint(1, 6)):
                op = rnd.randrange(4)
                pos = rnd.randrange(len(b) + 1)
                if op == 0 and b:
                    b[min(pos, len(b) - 1)] = rnd.randrange(256)
                elif op == 1:
                    b[pos:pos] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 8)))
                elif op == 2 and b:
                    del b[pos:pos + rnd.randint(1, 8)]
                else:
                    b[pos:pos] = rnd.choice([b"\r\n", b":", b" ", b"\r\n\r\n", b"0\r\n"])
            return bytes(b)

        cases = [mutate(rnd.choice(seeds)) for _ in range(400)]
        bad = []

        def worker(items):
            for data in items:
                try:
                    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
                    s.sendall(data)
                    s.shutdown(socket.SHUT_WR)  # EOF: no waiting for the read timeout
                    out = b""
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        out += chunk
                    s.close()
                    if out and not out.startswith(b"HTTP/1.1 "):
                        bad.append((data, out[:100]))
                except ConnectionResetError:
                    pass
                except OSError as exc:
                    bad.append((data, repr(exc)))

        threads = [threading.Thread(target=worker, args=(cases[i::8],)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        check(not bad, f"bad answers to fuzzed input: {bad[:3]}")
        alive(srv)

        # clients that vanish mid-request and mid-login
        for data in (b"GET /api/v1/health HTTP/1.1\r\nHost:", b"POST /api/v1/auth/login HTTP/1.1\r\n"
                     b"Host: t\r\nContent-Type: application/json\r\nContent-Length: 39\r\n\r\n"
                     b"{\"username\":\"admin\",\"password\":\"admin\"}"):
            for _ in range(5):
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
                s.sendall(data)
                s.close()
        time.sleep(0.5)
        alive(srv)
    finally:
        srv.stop()


def test_connection_flood(binary):
    srv = Server(binary, env=LIMITS).start()
    try:
        socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(48)]
        time.sleep(0.3)
        closed = 0
        for s in socks[32:]:
            s.settimeout(2)
            try:
                if s.recv(10) == b"":
                    closed += 1
            except (ConnectionResetError, socket.timeout):
                closed += 1
        check(closed == 16, f"connections over the limit closed at once: {closed}/16")
        for s in socks:
            s.close()
        time.sleep(0.3)
        alive(srv)
        c = Client(srv)
        r, _, text = c.request("GET", "/metrics")
        check(b"kotte_http_connections_refused_total 16" in text, "refusals counted")
        c.close()
    finally:
        srv.stop()


def test_login_flood(binary):
    """More logins than checks may queue: the surplus gets 429 at once, the
    rest are answered, and other requests are served meanwhile."""
    srv = Server(binary, env=dict(LIMITS, KOTTE_MAX_PASSWORD_CHECKS="1",
                                  KOTTE_MAX_CONNECTIONS="256")).start()
    try:
        body = b'{"username":"admin","password":"wrong"}'
        req = (b"POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        socks = []
        for _ in range(100):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
            s.sendall(req)
            socks.append(s)
        t0 = time.monotonic()
        alive(srv)  # not stuck behind the password checks
        check(time.monotonic() - t0 < 2, "health answered during the flood")
        statuses = []
        for s in socks:
            out = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
            s.close()
            statuses.append(status_of(out))
        check(statuses.count(429) >= 30, f"surplus refused with 429: {statuses.count(429)}")
        check(set(statuses) == {401, 429}, f"every login answered: {set(statuses)}")
    finally:
        srv.stop()


def read_all(s):
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            return out
        out += b


def test_chunked_trailers(binary):
    """Trailer fields after a chunked body are read and dropped: they never
    reach the header table (which is sized when the headers end; a trailer
    written into it overflowed the heap), and they count against the
    header-size limit."""
    srv = Server(binary, env=LIMITS).start()
    try:
        # the report's request (no Host): refused for that, nothing else
        out, closed = raw_exchange(srv.port, b"GET /api/v1/health HTTP/1.1\r\nTransfer-Encoding: "
                                   b"chunked\r\n\r\n0\r\nX: a\r\n\r\n")
        check(status_of(out) == 400 and b"Missing Host" in out and closed, f"no Host: {out[:300]!r}")
        alive(srv)
        trailed = (b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"0\r\nX: a\r\nX-Request-ID: from-trailer\r\n\r\n")
        out, _ = raw_exchange(srv.port, trailed)
        check(status_of(out) == 200, f"request with trailers answered: {out[:300]!r}")
        check(b"from-trailer" not in out, "a trailer field is not taken as a header")
        alive(srv)
        # more trailer fields than KOTTE_MAX_HEADERS (16) allows headers:
        # dropped, so not counted as header fields
        many = b"".join(b"T%d: v\r\n" % i for i in range(40))
        out, _ = raw_exchange(srv.port, b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n0\r\n" + many + b"\r\n")
        check(status_of(out) == 200, f"many trailer fields: {out[:300]!r}")
        # a login whose body arrives chunked, with a trailer; then a second
        # request on the same connection (pipelined in one write, and in
        # pieces split inside the trailer section)
        body = b'{"username":"admin","password":"admin"}'
        login = (b"POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\nX-Checksum: abc\r\n\r\n"
                 % (len(body), body))
        tail = b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        for pieces in ([login + tail], [login[:-12], login[-12:-5], login[-5:] + tail]):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            for p in pieces:
                s.sendall(p)
                time.sleep(0.05)
            out = read_all(s)
            s.close()
            codes = [int(c) for c in re.findall(rb"HTTP/1\.1 (\d{3}) ", out)]
            check(codes == [200, 200], f"login with a trailer, then health: {codes} {out[:300]!r}")
        # trailers larger than the header-size limit (4096): 431
        big = b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
        expect_close(srv, big + b"X-Big: " + b"v" * 5000 + b"\r\n\r\n", 431, "big trailer")
        alive(srv)
    finally:
        srv.stop()


def test_protocol_answers(binary):
    """RFC 9112 answers: 505 for a version other than HTTP/1.x, 400 for an
    HTTP/1.1 request without Host or with two, 414 / 431 for a long URL or
    header with the default limits (http-parser's own limit fired first and
    made them a bare 400)."""
    srv = Server(binary).start()  # default limits: 16 KiB head
    try:
        for version in (b"HTTP/2.0", b"HTTP/9.9", b"HTTP/0.9"):
            out, closed = raw_exchange(srv.port, b"GET /api/v1/health " + version +
                                       b"\r\nHost: t\r\n\r\n")
            check(status_of(out) == 505 and closed, f"{version!r}: {out[:300]!r}")
            check(b'"code":"QUERY_VALIDATION_ERROR"' in out and b'"retryable":false' in out,
                  f"{version!r}: the client's error, not retryable: {out[:400]!r}")
        # a higher HTTP/1.x minor version is served as HTTP/1.1 (RFC 9110 §6.2)
        out, _ = raw_exchange(srv.port, b"GET /api/v1/health HTTP/1.2\r\nHost: t\r\n"
                              b"Connection: close\r\n\r\n")
        check(status_of(out) == 200, f"HTTP/1.2: {out[:200]!r}")
        # Host: required in HTTP/1.1, not in HTTP/1.0; one at most; a valid value
        out, _ = raw_exchange(srv.port, b"GET /api/v1/health HTTP/1.0\r\n\r\n")
        check(status_of(out) == 200, f"HTTP/1.0 without Host: {out[:200]!r}")
        for what, head in (("no Host", b""), ("two Host", b"Host: a\r\nHost: b\r\n"),
                           ("Host with a space", b"Host: a b\r\n"), ("Host with userinfo", b"Host: u@h\r\n"),
                           ("Host with a path", b"Host: h/x\r\n"), ("two Host in HTTP/1.0", None)):
            req = (b"GET /api/v1/health HTTP/1.1\r\n" + head + b"\r\n" if head is not None else
                   b"GET /api/v1/health HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n")
            expect_close(srv, req, 400, what)
        for host in (b"", b"example.com", b"127.0.0.1:8000", b"[::1]:8000", b"kotte-server.ns.svc"):
            out, _ = raw_exchange(srv.port, b"GET /api/v1/health HTTP/1.1\r\nHost: " + host +
                                  b"\r\nConnection: close\r\n\r\n")
            check(status_of(out) == 200, f"Host {host!r}: {out[:200]!r}")
        expect_close(srv, b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414, "20 KB URL")
        expect_close(srv, b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"v" * (1 << 20) + b"\r\n\r\n",
                     431, "1 MB header")
        # many header fields of a few bytes each, together over 16 KiB
        many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 300) for i in range(60))
        expect_close(srv, b"GET / HTTP/1.1\r\nHost: t\r\n" + many + b"\r\n", 431, "16 KiB of headers")
        alive(srv)
    finally:
        srv.stop()


if __name__ == "__main__":
    run([test_malformed, test_oversized, test_chunked_trailers, test_protocol_answers,
         test_slow_and_idle, test_pipelining_and_continue, test_fuzz_and_disconnects,
         test_connection_flood, test_login_flood], sys.argv[1])
