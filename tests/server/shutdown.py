#!/usr/bin/env python3
"""kotte-server and SIGTERM: stop accepting, finish what is in flight
within the bound, close the stores, exit 0 (under ASan+UBSan: no leak).

    python3 tests/server/shutdown.py path/to/kotte-server
"""

import http.client
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Client, Server, check, raw_exchange, run, status_of  # noqa: E402

ENV = {"KOTTE_READ_TIMEOUT_MS": "1500", "KOTTE_IDLE_TIMEOUT_MS": "5000",
       "KOTTE_SHUTDOWN_TIMEOUT_MS": "4000"}


def read_until_closed(s):
    """Everything the server sends on @s until it closes: (bytes, reset)."""
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out, False
            out += chunk
    except ConnectionResetError:
        return out, True
    finally:
        s.close()


def test_sigterm_during_load(binary):
    srv = Server(binary, env=ENV).start()
    boot = Client(srv)
    boot.login()
    cookie = boot.cookie
    boot.close()
    stop = threading.Event()
    stats = {"ok": 0, "truncated": [], "refused": 0, "closed": 0, "other": []}
    lock = threading.Lock()

    def hammer(path, method="GET", body=None):
        c = None
        while not stop.is_set():
            try:
                if c is None:
                    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
                hdr = {"Cookie": f"kotte_session={cookie}"}
                if body:
                    hdr["Content-Type"] = "application/json"
                c.request(method, path, body=body, headers=hdr)
                r = c.getresponse()
                data = r.read()
                with lock:
                    if r.status in (200, 401) and len(data) == int(r.getheader("Content-Length")):
                        stats["ok"] += 1
                    else:
                        stats["other"].append((r.status, data[:100]))
                if r.getheader("Connection") == "close":
                    c.close()
                    c = None
            except http.client.IncompleteRead as exc:
                with lock:
                    stats["truncated"].append(repr(exc))
                c = None
            except ConnectionRefusedError:
                with lock:
                    stats["refused"] += 1
                time.sleep(0.01)
                c = None
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                with lock:
                    stats["closed"] += 1  # between requests: allowed
                c = None

    threads = [threading.Thread(target=hammer, args=("/api/v1/session/status",), daemon=True)
               for _ in range(4)]
    threads.append(threading.Thread(target=hammer, args=(
        "/api/v1/auth/login", "POST", b'{"username":"admin","password":"admin"}'), daemon=True))
    for t in threads:
        t.start()
    try:
        took = sigterm_with_login_in_flight(srv)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    check(stats["ok"] > 50, f"load ran: {stats}")
    check(not stats["truncated"] and not stats["other"], f"no truncated or odd answers: {stats}")
    print(f"     load: {stats['ok']} answers, {stats['closed']} closed between requests, "
          f"{stats['refused']} refused after the signal; shutdown took {took:.2f}s")


def sigterm_with_login_in_flight(srv):
    """SIGTERM while the server is busy; returns how long the exit took."""
    time.sleep(1.5)

    # a login in flight when the signal comes: its answer must still arrive
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    body = b'{"username":"admin","password":"admin"}'
    s.sendall(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    # Sent before the signal, so answered whatever the server had done with
    # it by then: read it, accepted the connection only, or not even that
    # (the socket still in the kernel's backlog: the case a busy server hit
    # in CI, reset before take_backlog() in http.c).
    time.sleep(0.02)
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    out, reset = read_until_closed(s)
    check(not reset and status_of(out) == 200 and b"Connection: close" in out,
          f"in-flight login answered during shutdown: {out[:200]!r}")
    code = srv.stop(timeout=15)
    took = time.monotonic() - t0
    check(code == 0, "exit 0")
    check(took < 8, f"shutdown within the bound: {took:.1f}s")
    check(srv.events("shutdown_started") and srv.events("shutdown_complete"), "shutdown logged")
    check(not srv.events("shutdown_timeout"), "drained without hitting the bound")
    return took


def test_sigterm_with_slow_and_idle_clients(binary):
    srv = Server(binary, env=ENV).start()
    idle = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    idle.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\n\r\n")
    check(status_of(idle.recv(65536)) == 200, "idle keep-alive client")
    slow = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    slow.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\nX-Slow: ")
    time.sleep(0.1)
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    check(idle.recv(100) == b"", "idle connection closed at once")
    check(time.monotonic() - t0 < 1, "idle closed promptly")
    out, reset = read_until_closed(slow)
    check(not reset and status_of(out) == 408, f"the half-sent request times out: {out[:100]!r}")
    srv.stop(timeout=15)
    took = time.monotonic() - t0
    check(took < 6, f"exit within read timeout + linger: {took:.1f}s")
    try:
        socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
        fail_msg = "still accepting after exit"
    except OSError:
        fail_msg = None
    check(fail_msg is None, "no longer accepting")


def test_sigterm_answers_connections_not_yet_accepted(binary):
    """Connections the kernel completed while the server could not run
    (SIGSTOP), each with a request or none, then SIGTERM and SIGCONT: every
    request sent before the signal is answered; an empty connection is
    closed without a reset, as an idle keep-alive one."""
    srv = Server(binary, env=ENV).start()
    req = b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\n\r\n"
    srv.proc.send_signal(signal.SIGSTOP)
    try:
        full = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(8)]
        for s in full:
            s.sendall(req)
        empty = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        srv.proc.send_signal(signal.SIGTERM)
    finally:
        srv.proc.send_signal(signal.SIGCONT)
    answers = []
    for s in full:
        out, reset = read_until_closed(s)
        answers.append(out + (b"<reset>" if reset else b""))
    # the loop may answer some before it sees the signal (keep-alive, then
    # closed as idle): every one is answered and then closed
    bad = [a[:80] for a in answers if status_of(a) != 200]
    check(not bad, f"all 8 requests sent before SIGTERM answered 200: {bad}")
    try:
        tail = empty.recv(100)
    except ConnectionResetError:
        tail = b"<reset>"
    empty.close()
    check(tail == b"", f"the empty connection closed without an answer or a reset: {tail!r}")
    check(srv.stop(timeout=15) == 0, "exit 0")


def test_shutdown_bound_cancels_queued_work(binary):
    """With one password check at a time and many logins queued, the drain
    bound expires: queued work is cancelled (503), the process exits 0."""
    env = dict(ENV, KOTTE_SHUTDOWN_TIMEOUT_MS="150", KOTTE_MAX_PASSWORD_CHECKS="1")
    srv = Server(binary, env=env).start()
    body = b'{"username":"admin","password":"admin"}'
    req = (b"POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    socks = []
    for _ in range(24):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
        s.sendall(req)
        socks.append(s)
    time.sleep(0.2)
    srv.proc.send_signal(signal.SIGTERM)
    statuses = [status_of(read_until_closed(s)[0]) for s in socks]
    srv.stop(timeout=20)
    check(srv.events("shutdown_timeout"), "the bound was hit")
    check(set(statuses) <= {200, 503, None}, f"answers: {statuses}")
    check(503 in statuses, f"queued logins cancelled with 503: {statuses}")


if __name__ == "__main__":
    run([test_sigterm_during_load, test_sigterm_with_slow_and_idle_clients,
         test_sigterm_answers_connections_not_yet_accepted,
         test_shutdown_bound_cancels_queued_work], sys.argv[1])
