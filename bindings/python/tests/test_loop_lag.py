"""The asyncio loop is never blocked by libkotte.

A ticker task sleeps 1 ms at a time and records how late it wakes up (the
loop lag) while 1000 tasks call ``get_session`` back to back, so that 1000
calls are in flight at every moment, against PostgreSQL (and, as an extra,
the json_file backend).

The bound, and why: with the eventfd bridge the asyncio thread never waits
on libkotte, so its longest loop iterations are pure Python work that any
asyncio program with 1000 concurrent coroutines pays: starting them (~5-20 µs
each, once) and resuming the ones whose results came back (the bridge
resolves at most 64 per iteration, ~10-15 µs each to build the session
dict: ~1 ms). The p99 lag must stay at or below 20 ms (the one-time start
of the 1000 tasks lands in the top percent when the ticker gets few turns)
and the largest single lag at or below 50 ms (room for a full garbage
collection of the interpreter, ~25 ms here, on top of that start).

Other processes on the machine delay the ticker too, and that is not
blocking: each tick's lag is therefore reduced by the time the asyncio
thread spent runnable but waiting for a CPU (the run-queue delay that Linux
reports in /proc/thread-self/schedstat). Time the thread spends blocked
(waiting on a lock or a condition variable, as a blocking call does) is not
run-queue time and still counts in full. The workload runs for at least
0.5 s (so p99 is not just the maximum), and a measurement that misses the
bounds is repeated, up to 3 attempts; a design that blocks the loop misses
them every time. For scale, the same run measures what a naive
binding does (the 1000 gets as blocking calls on the loop thread): the
ticker must see that stall, which shows the measurement can fail.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from conftest import require_pg, settings_for
from libkotte.kotte import SessionManager

P99_BOUND_S = 0.020
MAX_BOUND_S = 0.050
MIN_SECONDS = 0.5
ATTEMPTS = 3
CONCURRENT = 1000


SCHEDSTAT = "/proc/thread-self/schedstat"


def _run_delay_reader():
    """Seconds this thread has waited in the run queue, or None without schedstat."""
    try:
        fd = os.open(SCHEDSTAT, os.O_RDONLY)
    except OSError:
        return None

    def read() -> float:
        return int(os.pread(fd, 128, 0).split()[1]) / 1e9

    return read


async def _ticker(samples: list[tuple[float, float]], stop: asyncio.Event,
                  period: float = 0.001) -> None:
    run_delay = _run_delay_reader()
    while not stop.is_set():
        d0 = run_delay() if run_delay else 0.0
        t = time.perf_counter()
        await asyncio.sleep(period)
        raw = time.perf_counter() - t - period
        adjusted = raw - (run_delay() - d0) if run_delay else raw  # CPU withheld by the OS
        samples.append((raw, max(0.0, adjusted)))


async def _measure(work) -> tuple[list[tuple[float, float]], float]:
    """(raw lag, lag less run-queue delay) per tick while `work` runs; its duration."""
    samples: list[tuple[float, float]] = []
    stop = asyncio.Event()
    ticker = asyncio.ensure_future(_ticker(samples, stop))
    await asyncio.sleep(0.02)
    samples.clear()
    t0 = time.perf_counter()
    await work()
    elapsed = time.perf_counter() - t0
    await asyncio.sleep(0.005)
    stop.set()
    await ticker
    return samples, elapsed


@pytest.mark.parametrize("backend", ["postgresql", "json_file"])
async def test_thousand_concurrent_get_session_keep_loop_lag_small(backend: str, tmp_path: Path,
                                                                    capsys):
    if backend == "postgresql":
        require_pg()
    m = SessionManager(settings_for(backend, tmp_path))
    try:
        ids = [await m.create_session(f"user{i % 50}", {"username": f"user{i % 50}"})
               for i in range(100)]

        done = 0

        async def bridged() -> None:
            """CONCURRENT tasks, each calling get_session back to back: 1000 calls
            are in flight at every moment, for at least MIN_SECONDS."""
            nonlocal done
            done = 0
            deadline = time.perf_counter() + MIN_SECONDS

            async def worker(w: int) -> None:
                nonlocal done
                i = w
                while True:
                    s = await m.get_session(ids[i % 100])
                    assert s["user_id"] == f"user{i % 100 % 50}"
                    done += 1
                    i += CONCURRENT
                    if time.perf_counter() >= deadline:
                        return

            await asyncio.gather(*(worker(w) for w in range(CONCURRENT)))

        async def naive_blocking() -> None:
            for i in range(CONCURRENT):
                m.store.get(ids[i % 100])  # a blocking call on the loop thread

        for attempt in range(1, ATTEMPTS + 1):
            samples, elapsed = await _measure(bridged)
            lag = sorted(adj for _, adj in samples)
            p99 = lag[int(len(lag) * 0.99)]
            with capsys.disabled():
                print(f"\n[{backend}] attempt {attempt}: {done:,} get_session, {CONCURRENT} "
                      f"always in flight, in {elapsed * 1000:.0f} ms "
                      f"({done / elapsed:,.0f}/s): loop lag p50 "
                      f"{lag[len(lag) // 2] * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, "
                      f"max {lag[-1] * 1000:.2f} ms over {len(lag)} ticks")
            if p99 <= P99_BOUND_S and lag[-1] <= MAX_BOUND_S:
                break
        control_samples, control_elapsed = await _measure(naive_blocking)
        control = sorted(raw for raw, _ in control_samples)
        with capsys.disabled():
            print(f"[{backend}] naive blocking calls: 1000 gets in "
                  f"{control_elapsed * 1000:.0f} ms, max lag {control[-1] * 1000:.1f} ms")
        assert len(lag) >= 50, "the ticker barely ran"
        assert p99 <= P99_BOUND_S, f"p99 loop lag {p99 * 1000:.1f} ms"
        assert lag[-1] <= MAX_BOUND_S, f"max loop lag {lag[-1] * 1000:.1f} ms"
        # The measurement sees a blocked loop: the naive variant stalls it for
        # (nearly) the whole run.
        assert control[-1] >= 0.5 * control_elapsed
    finally:
        m._sessions.clear()
        m.close()
