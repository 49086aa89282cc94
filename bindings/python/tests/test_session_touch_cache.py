"""The touch interval and the postgresql cache from Python, and the drop-in's
SESSION_TOUCH_INTERVAL / SESSION_CACHE settings."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import libkotte
from conftest import open_store, pg_execute, require_pg, settings_for
from libkotte.kotte.config import KotteSettings
from libkotte.kotte.session_manager import open_session_store


def test_reads_inside_the_touch_interval_write_nothing(backend: str, tmp_path: Path):
    with open_store(backend, tmp_path, touch_interval=60) as st:
        s = st.create("u")
        time.sleep(0.05)
        assert st.get(s.id).last_activity == s.last_activity  # answered as stored
    with open_store(backend, tmp_path, touch_interval=0) as st:
        s = st.create("u")
        time.sleep(0.05)
        assert st.get(s.id).last_activity > s.last_activity  # every read writes


def test_touch_interval_out_of_range_is_refused(tmp_path: Path):
    with pytest.raises(ValueError):
        libkotte.SessionStore("memory", idle_timeout=10, touch_interval=11)


def test_settings_read_touch_interval_and_cache():
    s = KotteSettings.from_env({"SESSION_TOUCH_INTERVAL": "5", "SESSION_CACHE": "on"}, env_file=None)
    assert (s.session_touch_interval, s.session_cache) == (5, True)
    d = KotteSettings.from_env({}, env_file=None)
    assert (d.session_touch_interval, d.session_cache) == (-1, False)  # libkotte's 1 %, no cache
    with pytest.raises(ValueError):
        KotteSettings.from_env({"SESSION_TOUCH_INTERVAL": "1801"}, env_file=None)


def test_the_drop_ins_cache_hears_a_logout_elsewhere(tmp_path: Path):
    require_pg()
    pg_execute("DELETE FROM kotte_sessions")
    settings = settings_for("postgresql", tmp_path, session_cache=True)
    with open_session_store(settings) as a:
        s = a.create("alice", {"k": 1})
        a.get(s.id)
        pg_execute("DELETE FROM kotte_sessions WHERE user_id = 'alice'")  # another process
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                a.get(s.id)
            except libkotte.NotFoundError:
                break
            time.sleep(0.01)
        else:
            pytest.fail("a session deleted elsewhere was still served after 5 s")
        with pytest.raises(libkotte.NotFoundError):  # and stays gone
            a.get(s.id)
