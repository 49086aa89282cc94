"""The fault run's load: clients that log in, read (/auth/me, /session/status),
save and read back saved connections, and log out, through the proxy; a log
of every request (start, end, outcome) and a registry of what the stack
acknowledged (sessions, saved connections, logouts) for the checks after
each fault.

Only the standard library: http.client with keep-alive, threads (one per
client), http.cookies for Set-Cookie.
"""

from __future__ import annotations

import http.client
import http.cookies
import json
import random
import threading
import time
from dataclasses import dataclass, field

USERS = {"admin": "admin", "alice": "wonderland"}
EXPECT = {"login": 200, "logout": 200, "me": 200, "status": 200, "save": 201, "get": 200,
          "list": 200}
TIMEOUT = 30.0


@dataclass
class Req:
    t0: float
    t1: float
    who: str        # "load", "check", "witness"
    route: str      # the proxy group or replica it went to
    op: str
    status: int | None
    problem: str    # "" when the answer was the expected one


class Log:
    """Every request of the run; thread-safe append."""

    def __init__(self):
        self.reqs: list[Req] = []
        self.lock = threading.Lock()

    def add(self, r: Req) -> None:
        with self.lock:
            self.reqs.append(r)

    def between(self, t0: float, t1: float) -> list[Req]:
        with self.lock:
            return [r for r in self.reqs if r.t1 >= t0 and r.t0 <= t1]


@dataclass
class Session:
    route: str
    user: str
    cookie: str
    csrf: str
    born: float
    logout_started: float | None = None   # set before the logout is sent
    logged_out: float | None = None       # the logout was answered 200


@dataclass
class Saved:
    route: str
    user: str
    id: str
    fields: dict
    acked: float


@dataclass
class Registry:
    """What the stack acknowledged; the checks replay it."""
    sessions: list = field(default_factory=list)
    saved: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_session(self, s: Session) -> None:
        with self.lock:
            self.sessions.append(s)

    def add_saved(self, c: Saved) -> None:
        with self.lock:
            self.saved.append(c)

    def saved_of(self, route: str, user: str) -> list:
        with self.lock:
            return [c for c in self.saved if c.route == route and c.user == user]

    def snapshot(self) -> tuple[list, list]:
        with self.lock:
            return list(self.sessions), list(self.saved)


def classify(status: int | None, body: bytes, exc: Exception | None) -> str:
    """A short name for an unexpected outcome: the transport error, the
    proxy's own error page, or the replica's error code."""
    if exc is not None:
        return f"transport {type(exc).__name__}"
    try:
        js = json.loads(body) if body else None
    except ValueError:
        js = None
    code = None
    if isinstance(js, dict):
        e = js.get("error")
        code = e.get("code") if isinstance(e, dict) else js.get("detail")
    if code is None and body[:200].lstrip().lower().startswith(b"<html"):
        code = "proxy page"
    return f"{status} {code or body[:60]!r}"


class Client:
    """One keep-alive connection and one kotte_session cookie."""

    def __init__(self, port: int, route: str, log: Log, who: str):
        self.port, self.route, self.log, self.who = port, route, log, who
        self.conn = None
        self.cookie = None
        self.csrf = None

    def call(self, op: str, method: str, path: str, body=None, cookie=None, expect=None,
             verify=None):
        """One request; returns (status or None, parsed JSON or None, problem)
        and logs it. verify(json) may name a problem with an expected status."""
        ck = self.cookie if cookie is None else cookie
        headers = {}
        raw = None
        if body is not None:
            raw = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if ck:
            headers["Cookie"] = f"kotte_session={ck}"
        if self.csrf and method != "GET":
            headers["X-CSRF-Token"] = self.csrf
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        t0 = time.monotonic()
        status, data, exc = None, b"", None
        try:
            self.conn.request(method, path, body=raw, headers=headers)
            r = self.conn.getresponse()
            status, data = r.status, r.read()
            for k, v in r.getheaders():
                if k.lower() == "set-cookie" and v.startswith("kotte_session="):
                    morsel = http.cookies.SimpleCookie(v).get("kotte_session")
                    val = morsel.value if morsel is not None else ""
                    self.cookie = None if val in ("", "null") else val
            if r.getheader("Connection", "").lower() == "close":
                self.close()
        except (OSError, http.client.HTTPException) as e:
            exc = e
            self.close()
        t1 = time.monotonic()
        want = expect if expect is not None else EXPECT[op]
        try:
            js = json.loads(data) if data else None
        except ValueError:
            js = None
        problem = "" if status == want else classify(status, data, exc)
        if not problem and verify is not None:
            problem = verify(js)
        self.log.add(Req(t0, t1, self.who, self.route, op, status, problem))
        return status, js, problem

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def login(self, user: str, registry: Registry | None):
        self.cookie = self.csrf = None  # a login must not present an old cookie
        status, js, problem = self.call("login", "POST", "/api/v1/auth/login",
                                        {"username": user, "password": USERS[user]})
        if problem or not self.cookie:
            self.cookie = None
            return None
        self.csrf = (js or {}).get("csrf_token")
        s = Session(self.route, user, self.cookie, self.csrf, time.monotonic())
        if registry is not None:
            registry.add_session(s)
        return s

    def logout(self, s: Session) -> None:
        s.logout_started = time.monotonic()
        _, _, problem = self.call("logout", "POST", "/api/v1/auth/logout", cookie=s.cookie)
        if not problem:
            s.logged_out = time.monotonic()
        self.cookie = self.csrf = None

    def save(self, s: Session, registry: Registry, name: str, rng: random.Random) -> None:
        fields = {"name": name, "host": f"db{rng.randrange(1000)}.internal",
                  "port": rng.randrange(1024, 65535), "database": f"graphs_{rng.randrange(99)}",
                  "username": f"reader_{rng.randrange(10**6)}",
                  "password": f"pw-{rng.getrandbits(64):x}-Ω"}
        status, js, problem = self.call("save", "POST", "/api/v1/connections", fields,
                                        cookie=s.cookie)
        if not problem and isinstance(js, dict) and js.get("id"):
            registry.add_saved(Saved(s.route, s.user, js["id"], fields, time.monotonic()))

    def get_saved(self, s: Session, c: Saved) -> str:
        """Reads c back; "" if intact, else what was wrong."""
        def verify(js) -> str:
            got = js if isinstance(js, dict) else {}
            bad = sorted(k for k, v in c.fields.items() if got.get(k) != v)
            return f"data differs {bad}" if bad else ""

        return self.call("get", "GET", f"/api/v1/connections/{c.id}", cookie=s.cookie,
                         verify=verify)[2]


class Worker(threading.Thread):
    """A client of the load: login, 4-12 reads and saves, logout; again until
    told to stop (or its request budget is spent)."""

    def __init__(self, n: int, port: int, route: str, log: Log, registry: Registry,
                 stop: threading.Event, seed: int, think: float, budget: int):
        super().__init__(daemon=True, name=f"load-{route}-{n}")
        self.n, self.log, self.registry, self.stop_ev = n, log, registry, stop
        self.client = Client(port, route, log, "load")
        self.rng = random.Random(seed)
        self.think, self.budget = think, budget
        self.saves = 0

    def pause(self) -> None:
        self.stop_ev.wait(self.think * (0.5 + self.rng.random()))

    def run(self) -> None:
        c, rng = self.client, self.rng
        while not self.stop_ev.is_set() and len(self.log.reqs) < self.budget:
            user = rng.choice(sorted(USERS))
            s = c.login(user, self.registry)
            self.pause()
            if s is None:
                continue
            for _ in range(rng.randrange(4, 13)):
                if self.stop_ev.is_set():
                    break
                op = rng.random()
                if op < 0.3:
                    c.call("me", "GET", "/api/v1/auth/me", cookie=s.cookie)
                elif op < 0.45:
                    c.call("status", "GET", "/api/v1/session/status", cookie=s.cookie)
                elif op < 0.65:
                    self.saves += 1
                    c.save(s, self.registry, f"w{self.n}-{self.saves}-{rng.getrandbits(32):x}", rng)
                elif op < 0.9:
                    mine = self.registry.saved_of(s.route, s.user)
                    if mine:
                        c.get_saved(s, rng.choice(mine))
                else:
                    c.call("list", "GET", "/api/v1/connections", cookie=s.cookie)
                self.pause()
            c.logout(s)
            self.pause()
        c.close()
