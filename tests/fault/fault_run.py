#!/usr/bin/env python3
"""Stack-level fault run (tests/fault/run.sh starts it; see docs/testing.md#fault-run).

Two kotte-server and two uvicorn replicas of the drop-in on one PostgreSQL
(primary + streaming standby) behind nginx, under a bounded load of logins,
reads, saves and logouts (load.py). Each round injects, one after another:

  kill       SIGKILL one replica, then start it again
  term       SIGTERM another (a rolling restart: it must drain and exit
             cleanly — kotte-server with code 0 and no sanitizer report),
             then start it again
  pg-restart PostgreSQL primary: fast stop + start
  failover   the primary stops (fast), the standby is promoted; the replicas
             follow through DB_HOST=<both> and PGTARGETSESSIONATTRS=read-write;
             a new standby is then built from the new primary

A request may fail only if it was in flight during its fault's window: from
the injection until the process was gone (kill, term), or until every
replica answered again (the PostgreSQL faults). After each fault every
replica of a group is asked directly: every session alive before the fault
still works, every acknowledged saved connection reads back intact, every
acknowledged logout stays logged out. Prints a table per fault; exits 1 if a
zero column is not zero, a request failed outside a window, or a replica did
not exit cleanly or come back.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import Client, Log, Registry, Worker  # noqa: E402
from stack import USERS, CReplica, Nginx, PgPair, PyReplica, State, common_env  # noqa: E402

RECOVERY_BOUND = 90.0   # seconds a fault may take until every replica answers
DRAIN_BOUND = 30.0      # seconds a SIGTERMed replica may take to exit
TIMEOUT_JOIN = 40.0     # a load client's last request may take its 30 s timeout


class Run:
    def __init__(self, a):
        self.a = a
        self.work = Path(a.workdir)
        self.state = State(self.work / "state")
        self.log = Log()
        self.reg = Registry()
        self.stop_load = threading.Event()
        self.problems: list[str] = []       # defects that are not a table column
        self.windows: list[tuple[float, float]] = []
        self.rows: list[dict] = []
        self.last_check = 0.0
        self.rng = random.Random(a.seed)

    # ---- stack --------------------------------------------------------------

    def up(self) -> None:
        a = self.a
        self.pg = PgPair(self.state, self.work)
        self.pg.wait_streaming()
        env = common_env(self.pg)
        if a.proxy == "mixed":
            # One upstream for both kinds: a session must name the same user
            # id on each. The stand-in's ids are the user names (as Kotte's
            # built-in admin without a database); kotte-server's file users
            # store gives the same ids, its PostgreSQL one numbers the rows
            # (as Kotte's kotte_users table does), which the stand-in does
            # not read.
            env.update(KOTTE_USERS_STORE="file", KOTTE_USERS_FILE=str(self.work / "users"))
        for user, pw in USERS.items():  # as an operator adds them (docs/server.md#users)
            p = subprocess.run([a.server_bin, "user", "add", user], input=pw + "\n", text=True,
                               env=dict(os.environ, **env), capture_output=True, timeout=60)
            if p.returncode != 0:
                raise RuntimeError(f"kotte-server user add {user}: {p.stderr}")
        c = [CReplica(f"c{i}", self.work, env, self.state, a.server_bin) for i in (1, 2)]
        py = [PyReplica(f"py{i}", self.work, env, self.state, a.build_py) for i in (1, 2)]
        self.replicas = {r.name: r for r in c + py}
        for r in self.replicas.values():
            r.start()
        # By default one proxy group per kind; --proxy mixed puts all four
        # behind one upstream (each kind accepts the other's cookie).
        self.groups = {"all": c + py} if a.proxy == "mixed" else {"c": c, "py": py}
        self.nginx = Nginx(self.work, self.groups, self.state)
        self.nginx.start()
        # per group: a probe session (recovery), a checker session per user
        self.probe, self.checker = {}, {}
        for g in self.groups:
            self.probe[g] = self.witness(g, save=False)
            for u in USERS:
                self.checker[(g, u)] = self.must(Client(self.nginx.ports[g], g, self.log, "check")
                                                 .login(u, None), f"checker login {g}/{u}")
        seed = a.seed
        self.workers = []
        for g in self.groups:
            for n in range(a.clients):
                seed += 1
                self.workers.append(Worker(n, self.nginx.ports[g], g, self.log, self.reg,
                                           self.stop_load, seed, a.think, a.max_requests))

    def must(self, v, what: str):
        if v is None:
            raise RuntimeError(f"{what} failed: {self.log.reqs[-1] if self.log.reqs else ''}")
        return v

    def witness(self, g: str, save: bool = True):
        """A session (through the proxy) that no worker logs out."""
        c = Client(self.nginx.ports[g], g, self.log, "witness")
        s = c.login(sorted(USERS)[len(self.reg.sessions) % len(USERS)], self.reg)
        if s is not None and save:
            c.save(s, self.reg, f"witness-{len(self.reg.saved)}-{os.urandom(4).hex()}",
                   self.rng)
        c.close()
        return s

    def down(self) -> None:
        self.stop_load.set()
        for w in getattr(self, "workers", []):
            w.join(TIMEOUT_JOIN)
        for r in getattr(self, "replicas", {}).values():
            if r.alive():
                r.signal(signal.SIGTERM)
                code, problem = r.wait_exit(DRAIN_BOUND)
                if problem:
                    self.problems.append(f"{r.name} at the end: {problem}")
                    r.kill_now()
        if hasattr(self, "nginx"):
            self.nginx.stop()
        if hasattr(self, "pg"):
            self.pg.stop()

    # ---- faults -------------------------------------------------------------

    def wait_all_answer(self, t_inject: float) -> float | None:
        """Polls every replica directly (its group's probe session on
        /auth/me) until all answer 200; the time since t_inject, or None."""
        deadline = t_inject + RECOVERY_BOUND
        pending = {r.name for r in self.replicas.values()}
        while pending and time.monotonic() < deadline:
            for g, reps in self.groups.items():
                for r in reps:
                    if r.name in pending and r.answers(cookie=self.probe[g].cookie) == 200:
                        pending.discard(r.name)
            if pending:
                time.sleep(0.05)
        return None if pending else time.monotonic() - t_inject

    def restart(self, r) -> None:
        try:
            r.start()
        except RuntimeError as e:
            self.problems.append(f"{r.name} did not start again: {e}")

    def fault(self, kind: str, target) -> dict:
        row = {"fault": kind, "target": target.name if target else "primary", "notes": []}
        for g in self.groups:
            for _ in range(self.a.witnesses):
                if self.witness(g) is None:
                    row["notes"].append(f"witness login on {g} failed")
        phase0 = time.monotonic()
        self.stop_load.wait(self.a.pre)
        t_inject = time.monotonic()
        if kind in ("kill", "term"):
            target.signal(signal.SIGKILL if kind == "kill" else signal.SIGTERM)
            code, problem = target.wait_exit(DRAIN_BOUND)
            t_end = time.monotonic()
            if problem:
                row["notes"].append(f"{target.name}: {problem}")
                self.problems.append(f"{kind} {target.name}: {problem}")
                target.kill_now()
            row["exit"] = code
            self.restart(target)
        elif kind == "pg-restart":
            self.pg.restart_primary()
            t_end = None
        else:
            self.pg.fail_over()
            t_end = None
        rec = self.wait_all_answer(t_inject)
        if rec is None:
            self.problems.append(f"{kind}: not every replica answered within {RECOVERY_BOUND:.0f}s")
        t_rec = time.monotonic()
        window = (t_inject, t_end if t_end is not None else t_rec)
        self.windows.append(window)
        row.update(recovery=rec, window=window[1] - window[0])
        if kind == "failover":  # a standby for the next round, under load
            self.pg.rebuild_standby()
            self.pg.wait_streaming()
        self.stop_load.wait(self.a.settle)
        row.update(self.check(t_inject))
        row["phase"] = (phase0, time.monotonic())
        row["t_inject"] = t_inject
        return row

    # ---- checks -------------------------------------------------------------

    def check(self, t_inject: float, full: bool = False) -> dict:
        """Asks every replica of each group directly (who="check"), one thread
        per replica: every session alive before t_inject (not logged out by
        its worker since) answers /auth/me; saved connections read back
        intact; logged-out cookies stay refused. Saved connections and
        logouts acknowledged since the previous check are all asked, older
        ones a random sample of --sample (all of them when full: the final
        check), so that a long run does not grow quadratic."""
        sessions, saved = self.reg.snapshot()
        since = self.last_check
        self.last_check = time.monotonic()
        outs = [s for s in sessions if s.logged_out is not None]
        pick = lambda items, t: items if full else (  # noqa: E731
            [x for x in items if t(x) >= since]
            + self.rng.sample(old := [x for x in items if t(x) < since], min(len(old), self.a.sample)))
        outs = pick(outs, lambda s: s.logged_out)
        saved = pick(saved, lambda k: k.acked)
        alive = [s for s in sessions if s.logged_out is None and s.born < t_inject
                 and s.logout_started is None]
        lost_s, lost_c, back, check_fail = set(), set(), set(), []

        def on_replica(g: str, r) -> None:
            c = Client(r.port, r.name, self.log, "check")
            for s in (s for s in outs if s.route == g):
                st, _, p = c.call("me", "GET", "/api/v1/auth/me", cookie=s.cookie, expect=401)
                if st == 200:
                    back.add(id(s))
                elif p:
                    check_fail.append(f"{r.name} logged-out me: {p}")
            for s in (s for s in alive if s.route == g):
                st, _, p = c.call("me", "GET", "/api/v1/auth/me", cookie=s.cookie)
                if s.logout_started is not None:
                    continue  # its worker logged it out during this check
                if st == 401:
                    lost_s.add(id(s))
                elif p:
                    check_fail.append(f"{r.name} me: {p}")
            for k in (k for k in saved if k.route == g):
                p = c.get_saved(self.checker[(g, k.user)], k)
                if p.startswith("404") or p.startswith("data differs"):
                    lost_c.add(id(k))
                elif p:
                    check_fail.append(f"{r.name} get: {p}")
            c.close()

        threads = [threading.Thread(target=on_replica, args=(g, r)) for g, reps in self.groups.items()
                   for r in reps]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return {"sessions_lost": len(lost_s), "conns_lost": len(lost_c), "logouts_back": len(back),
                "checked": (len(alive), len(saved), len(outs)), "check_fail": check_fail}

    # ---- the checks' own test ------------------------------------------------

    def self_test(self) -> None:
        """Proves the checks can fail: with the load stopped, per group one
        session row deleted, one saved connection row deleted and one
        logged-out session's row put back in PostgreSQL; the checks must
        count exactly these."""
        cols = self.pg.psql("SELECT string_agg(column_name, ',' ORDER BY ordinal_position) "
                            "FROM information_schema.columns WHERE table_name = 'kotte_sessions' "
                            "AND is_generated = 'NEVER'")
        ids = lambda: set(self.pg.psql("SELECT session_id FROM kotte_sessions").split())  # noqa: E731
        for g in self.groups:
            before = ids()
            lost = self.must(self.witness(g), f"self-test login {g}")
            lost_row = ids() - before
            conn = [k for k in self.reg.saved if k.route == g][-1]  # the witness's own save
            before = ids()
            c = Client(self.nginx.ports[g], g, self.log, "witness")
            back = self.must(c.login(sorted(USERS)[0], self.reg), f"self-test login {g}")
            back_row = ids() - before
            if len(lost_row) != 1 or len(back_row) != 1 or conn.acked < lost.born:
                raise RuntimeError("self-test: could not single out the rows")
            self.pg.psql(f"CREATE TABLE fault_selftest_{g} AS SELECT {cols} FROM kotte_sessions "
                         f"WHERE session_id = '{back_row.pop()}'")
            c.logout(back)
            if back.logged_out is None:
                raise RuntimeError("self-test: logout failed")
            self.pg.psql(f"INSERT INTO kotte_sessions ({cols}) SELECT {cols} FROM fault_selftest_{g}; "
                         f"DELETE FROM kotte_sessions WHERE session_id = '{lost_row.pop()}'; "
                         f"DELETE FROM kotte_credentials WHERE id = '{conn.id}'")
        got = self.check(time.monotonic())
        n = len(self.groups)
        seen = (got["sessions_lost"], got["conns_lost"], got["logouts_back"])
        print(f"self-test: rows changed behind the replicas' back ({n} of each kind); the checks "
              f"count {seen[0]} sessions lost, {seen[1]} saved connections lost, {seen[2]} "
              f"logouts back: " + ("as expected" if seen == (n, n, n) else "WRONG"), flush=True)
        if seen != (n, n, n) or got["check_fail"]:
            self.problems.append(f"self-test: the checks saw {seen}, expected {(n, n, n)}; "
                                 f"check failures: {got['check_fail'][:5]}")

    # ---- report -------------------------------------------------------------

    def in_window(self, q) -> bool:
        return any(q.t1 >= w0 and q.t0 <= w1 for w0, w1 in self.windows)

    def report(self) -> bool:
        failed = [q for q in self.log.reqs if q.problem]
        # a check's unexpected answers are counted by the check itself: as
        # lost sessions / connections / logouts back, or as check_fail
        outside = [q for q in failed if not self.in_window(q) and q.who != "check"]
        print()
        print("| # | fault | target | window s | requests in window | failed in window | "
              "slowest in window s | failed outside | sessions lost | saved conns lost | logouts back | "
              "all answer after s |")
        print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        ok = True
        for i, row in enumerate(self.rows, 1):
            w0 = row["t_inject"]
            w1 = w0 + row["window"]
            inwin = [q for q in self.log.reqs if q.who == "load" and q.t1 >= w0 and q.t0 <= w1]
            fin = [q for q in inwin if q.problem]
            p0, p1 = row["phase"]
            fout = [q for q in outside if p0 <= q.t0 <= p1]
            nout = len(fout) + len(row["check_fail"])
            rec = f"{row['recovery']:.2f}" if row["recovery"] is not None else "never"
            slowest = max((q.t1 - q.t0 for q in inwin), default=0.0)
            print(f"| {i} | {row['fault']} | {row['target']} | {row['window']:.2f} | {len(inwin)} | "
                  f"{len(fin)} | {slowest:.2f} | {nout} | {row['sessions_lost']} | "
                  f"{row['conns_lost']} | {row['logouts_back']} | {rec} |")
            row["classes"] = collections.Counter(f"{q.route} {q.op}: {q.problem}" for q in fin)
            row["slowest"] = max((q.t1 - q.t0 for q in fin), default=0.0)
            row["fout"] = fout
            if row["sessions_lost"] or row["conns_lost"] or row["logouts_back"] or nout:
                ok = False
        print()
        for i, row in enumerate(self.rows, 1):
            alive, nsaved, nout = row["checked"]
            print(f"fault {i} ({row['fault']} {row['target']}): checked {alive} sessions alive "
                  f"before it, {nsaved} saved connections, {nout} logged-out cookies on every "
                  f"replica of their group" + (f"; exit code {row['exit']}" if "exit" in row else ""))
            for cls, n in sorted(row["classes"].items()):
                print(f"    in window: {n} x {cls}")
            if row["classes"]:
                print(f"    slowest failed request in window: {row['slowest']:.2f} s")
            for q in row["fout"][:20]:
                print(f"    OUTSIDE window: {q.who} {q.route} {q.op} -> {q.problem} "
                      f"(t={q.t0 - self.t_start:.2f}..{q.t1 - self.t_start:.2f}s)")
            for n in row["notes"]:
                print(f"    note: {n}")
            for n in row["check_fail"][:20]:
                print(f"    check request failed: {n}")
        stray = [q for q in outside if not any(r["phase"][0] <= q.t0 <= r["phase"][1]
                                               for r in self.rows)]
        for q in stray[:20]:
            print(f"OUTSIDE any fault: {q.who} {q.route} {q.op} -> {q.problem} "
                  f"(t={q.t0 - self.t_start:.2f}s)")
        for p in self.problems:
            print(f"DEFECT: {p}")
        load = [q for q in self.log.reqs if q.who == "load"]
        print(f"\nload: {len(load)} requests by {len(self.workers)} clients in "
              f"{time.monotonic() - self.t_start:.0f} s ({self.a.proxy} proxy); "
              f"{sum(1 for q in failed if q.who == 'load')} failed, {len(outside)} outside a fault window")
        return ok and not stray and not self.problems

    def main(self) -> int:
        self.t_start = time.monotonic()
        try:
            self.up()
            for w in self.workers:
                w.start()
            self.stop_load.wait(self.a.pre)
            kills = ["c1", "py2", "c2", "py1"]
            terms = ["py1", "c2", "py2", "c1"]
            for rnd in range(self.a.rounds):
                print(f"round {rnd + 1}/{self.a.rounds}", flush=True)
                for kind, target in (("kill", kills[rnd % 4]), ("term", terms[rnd % 4]),
                                     ("pg-restart", None), ("failover", None)):
                    if kind not in self.a.faults.split(","):
                        continue
                    row = self.fault(kind, self.replicas[target] if target else None)
                    self.rows.append(row)
                    print(f"  {kind} {row['target']}: all answer after "
                          f"{row['recovery'] if row['recovery'] is None else round(row['recovery'], 2)} s; "
                          f"lost: sessions {row['sessions_lost']}, saved {row['conns_lost']}, "
                          f"logouts back {row['logouts_back']}", flush=True)
            self.stop_load.set()
            for w in self.workers:
                w.join(TIMEOUT_JOIN)
            fin = self.check(time.monotonic(), full=True)
            print(f"final check, load stopped: {fin['checked'][0]} sessions alive, {fin['checked'][1]} "
                  f"saved connections, {fin['checked'][2]} logged-out cookies, each on every replica "
                  f"of its group: sessions lost {fin['sessions_lost']}, saved connections lost "
                  f"{fin['conns_lost']}, logouts back {fin['logouts_back']}, failed checks "
                  f"{len(fin['check_fail'])}", flush=True)
            if fin["sessions_lost"] or fin["conns_lost"] or fin["logouts_back"] or fin["check_fail"]:
                self.problems.append(f"final check: {fin}")
            self.self_test()
        except Exception as e:  # noqa: BLE001 - report, clean up, fail
            import traceback
            traceback.print_exc()
            self.problems.append(f"run aborted: {e}")
        finally:
            self.down()
        ok = self.report() if self.rows else False
        print("fault run: " + ("OK" if ok else f"FAILED (work dir {self.work})"), flush=True)
        return 0 if ok else 1



def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True)
    p.add_argument("--server-bin", required=True)
    p.add_argument("--build-py", required=True, help="the CMake build with the SWIG module")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--clients", type=int, default=3, help="load clients per proxy group")
    p.add_argument("--think", type=float, default=0.03, help="mean pause between requests, s")
    p.add_argument("--pre", type=float, default=3.0, help="seconds of load before each fault")
    p.add_argument("--settle", type=float, default=1.0, help="seconds of load after recovery")
    p.add_argument("--witnesses", type=int, default=2, help="sessions per group made before each fault")
    p.add_argument("--sample", type=int, default=300,
                   help="older saved connections and logouts re-read after each fault")
    p.add_argument("--faults", default="kill,term,pg-restart,failover",
                   help="which faults each round injects (comma-separated, in this order)")
    p.add_argument("--proxy", choices=("split", "mixed"), default="split")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--max-requests", type=int, default=2_000_000)
    p.add_argument("--budget", type=float, default=600.0, help="seconds; then the run aborts")
    a = p.parse_args()
    watchdog = threading.Timer(a.budget, lambda: (print("fault run: budget exceeded", flush=True),
                                                  os._exit(3)))
    watchdog.daemon = True
    watchdog.start()
    return Run(a).main()


if __name__ == "__main__":
    sys.exit(main())
