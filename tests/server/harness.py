"""Runs the real kotte-server binary for the end-to-end tests.

A server is started on port 0 (the kernel picks one) with its data in a
temporary directory; its JSON log lines are collected from stdout, and the
port is read from its "listening" line. Stopping it sends SIGTERM and checks
that it exited 0 — under ASan+UBSan that also means no leak and no
undefined behaviour — and that stderr holds no sanitizer report.

Only the Python standard library: http.client for HTTP, sockets for the
malformed and slow requests.
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

DEFAULT_TIMEOUT = 10.0
TEST_SESSION_SECRET = "kotte-server-tests-session-secret-key"


def cookie_session(cookie):
    """The session a (signed) session cookie carries, unverified: its JSON."""
    return json.loads(base64.b64decode(cookie.split(".", 1)[0]))


def sign_cookie(session, secret=TEST_SESSION_SECRET, ts=None):
    """A session cookie as Starlette signs one, with the standard library
    only (this interpreter may lack itsdangerous; cookie.py compares the
    server with the real Starlette and itsdangerous)."""
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")  # noqa: E731
    payload = base64.b64encode(json.dumps(session).encode())
    t = int(time.time()) if ts is None else ts
    value = payload + b"." + b64(t.to_bytes(8, "big").lstrip(b"\0"))
    key = hashlib.sha1(b"itsdangerous.Signer" b"signer" + secret.encode()).digest()
    return (value + b"." + b64(hmac.new(key, value, hashlib.sha1).digest())).decode()


def fail(msg):
    raise AssertionError(msg)


def check(cond, msg):
    if not cond:
        fail(msg)


class Server:
    def __init__(self, binary, env=None, datadir=None, name="server"):
        self.binary = binary
        self.name = name
        self.own_dir = datadir is None
        self.dir = datadir or tempfile.mkdtemp(prefix="kotte-server-test-")
        self.lines = []          # parsed JSON log lines
        self.raw = []            # stdout lines as text
        self.not_utf8 = []       # stdout lines (bytes) that are not UTF-8
        self.port = None
        self.proc = None
        self.stderr_path = os.path.join(self.dir, f"{name}.stderr")
        e = dict(os.environ)
        e.update({
            "KOTTE_SERVER_HOST": "127.0.0.1",
            "KOTTE_SERVER_PORT": "0",
            "SESSION_STORAGE_TYPE": "json_file",
            "SESSION_STORAGE_PATH": os.path.join(self.dir, "sessions.journal"),
            "CREDENTIAL_STORAGE_TYPE": "json_file",
            "CREDENTIAL_STORAGE_PATH": os.path.join(self.dir, "connections.journal"),
            "KOTTE_USERS_FILE": os.path.join(self.dir, "users"),
            "MASTER_ENCRYPTION_KEY": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "ENVIRONMENT": "development",
            # signs the session cookie; the same for every server a test
            # starts, as replicas share it
            "SESSION_SECRET_KEY": TEST_SESSION_SECRET,
            "LOG_LEVEL": "DEBUG",
            # Kotte's 60 requests a minute per address would refuse these
            # suites' traffic from 127.0.0.1; ratelimit.py turns it on.
            "RATE_LIMIT_ENABLED": "false",
        })
        e.update(env or {})
        self.env = e

    def start(self, timeout=DEFAULT_TIMEOUT):
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([self.binary], env=self.env, cwd=self.dir,
                                     stdout=subprocess.PIPE, stderr=self.stderr)
        ready = threading.Event()

        def reader():
            for raw in self.proc.stdout:
                try:
                    text = raw.decode("utf-8").rstrip("\n")
                except UnicodeDecodeError:
                    self.not_utf8.append(raw)
                    text = raw.decode("utf-8", "replace").rstrip("\n")
                self.raw.append(text)
                try:
                    line = json.loads(text)
                except ValueError:
                    line = {"unparsed": text}
                self.lines.append(line)
                if line.get("event") == "listening":
                    self.port = line["port"]
                    ready.set()
            ready.set()

        self.thread = threading.Thread(target=reader, daemon=True)
        self.thread.start()
        if not ready.wait(timeout) or self.port is None:
            self.kill()
            fail(f"{self.name} did not start listening; stderr: {self.read_stderr()[-2000:]}")
        return self

    def read_stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def conn(self, timeout=DEFAULT_TIMEOUT):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def stop(self, sig=signal.SIGTERM, timeout=30.0, expect_code=0):
        """Signals the server and waits; checks exit code and stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            fail(f"{self.name} did not exit within {timeout}s of signal {sig}")
        self.thread.join(5)
        self.stderr.close()
        err = self.read_stderr()
        for marker in ("AddressSanitizer", "LeakSanitizer", "ThreadSanitizer", "runtime error:",
                       "UndefinedBehaviorSanitizer"):
            check(marker not in err, f"{self.name}: sanitizer report on stderr:\n{err[-6000:]}")
        check(code == expect_code, f"{self.name} exited {code}, expected {expect_code}; "
                                   f"stderr: {err[-3000:]}")
        # a log line is JSON, and JSON text is UTF-8 (RFC 8259 8.1)
        check(not self.not_utf8, f"{self.name}: log lines that are not UTF-8: {self.not_utf8[:3]}")
        return code

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def wait_raw(self, pred, timeout=10.0):
        """The stdout lines that satisfy pred, waiting up to timeout for the
        first: the server writes its log line before it answers, but the
        thread that reads its stdout may not have taken it in yet."""
        deadline = time.monotonic() + timeout
        while True:
            found = [l for l in list(self.raw) if pred(l)]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def events(self, name):
        return [l for l in self.lines if l.get("event") == name]


class Client:
    """A keep-alive HTTP client with one cookie jar entry (kotte_session)."""

    def __init__(self, server, timeout=DEFAULT_TIMEOUT):
        self.server = server
        self.timeout = timeout
        self.c = server.conn(timeout)
        self.cookie = None
        self.csrf = None

    def request(self, method, path, body=None, headers=None, raw_body=None, cookie=None):
        h = {}
        if body is not None:
            raw_body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        ck = cookie if cookie is not None else self.cookie
        if ck:
            h["Cookie"] = f"kotte_session={ck}"
        h.update(headers or {})
        try:
            self.c.request(method, path, body=raw_body, headers=h)
            r = self.c.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # the server closed an idle keep-alive connection: one retry
            self.c.close()
            self.c = self.server.conn(self.timeout)
            self.c.request(method, path, body=raw_body, headers=h)
            r = self.c.getresponse()
        data = r.read()
        for k, v in r.getheaders():
            # a cookie given for one request is not the jar's: its answer
            # (which signs that cookie anew) leaves the jar alone
            if cookie is None and k.lower() == "set-cookie" and v.startswith("kotte_session="):
                val = v.split(";", 1)[0].split("=", 1)[1]
                self.cookie = None if val == "null" else val
        try:
            js = json.loads(data) if data else None
        except ValueError:
            js = None
        return r, js, data

    def login(self, username="admin", password="admin"):
        r, js, _ = self.request("POST", "/api/v1/auth/login",
                                {"username": username, "password": password})
        check(r.status == 200, f"login: {r.status} {js}")
        self.csrf = js["csrf_token"]
        return r, js

    def close(self):
        self.c.close()


def expect_error(r, js, status, code, message=None):
    check(r.status == status, f"expected {status} {code}, got {r.status} {js}")
    check(isinstance(js, dict) and "error" in js, f"no error envelope: {js}")
    e = js["error"]
    for k in ("code", "category", "message", "details", "request_id", "timestamp", "retryable"):
        check(k in e, f"envelope lacks {k}: {js}")
    check(e["code"] == code, f"expected code {code}, got {e['code']}")
    if message is not None:
        check(e["message"] == message, f"expected message {message!r}, got {e['message']!r}")
    rid = r.getheader("X-Request-ID")
    check(rid == e["request_id"], "X-Request-ID header differs from the envelope's request_id")


def run(tests, binary):
    """Runs test functions (each gets the binary); prints a summary."""
    binary = os.path.abspath(binary)
    failed = 0
    watchdog = threading.Timer(float(os.environ.get("KOTTE_TEST_BUDGET", "240")),
                               lambda: (print("watchdog: test budget exceeded", flush=True),
                                        os._exit(3)))
    watchdog.daemon = True
    watchdog.start()
    for t in tests:
        start = time.monotonic()
        try:
            t(binary)
            print(f"ok   {t.__name__} ({time.monotonic() - start:.1f}s)", flush=True)
        except Exception as exc:  # noqa: BLE001 - report and go on
            failed += 1
            print(f"FAIL {t.__name__}: {exc}", flush=True)
    watchdog.cancel()
    print(f"{len(tests) - failed} passed, {failed} failed", flush=True)
    sys.stderr.flush()
    # os._exit, not sys.exit: a failed test may leave its client threads
    # running, and the interpreter would wait for them until ctest's timeout
    # (it did, in CI: a 300 s timeout that hid the one-line failure).
    os._exit(1 if failed else 0)


def raw_exchange(port, data, read_timeout=5.0, chunks=None, pause=0.0):
    """Sends bytes on a fresh socket and returns everything read until the
    server closes (or read_timeout passes). Returns (bytes, closed_by_server)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    try:
        parts = chunks or [data]
        for p in parts:
            # stop sending once the server answered (or closed)
            if select.select([s], [], [], 0)[0]:
                break
            try:
                s.sendall(p)
            except (BrokenPipeError, ConnectionResetError):
                break
            if pause:
                time.sleep(pause)
        out = b""
        deadline = time.monotonic() + read_timeout
        closed = False
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not b:
                closed = True
                break
            out += b
        return out, closed
    finally:
        s.close()


def status_of(resp_bytes):
    if not resp_bytes.startswith(b"HTTP/1.1 "):
        return None
    return int(resp_bytes[9:12])
