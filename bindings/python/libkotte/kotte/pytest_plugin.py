"""Runs Kotte's own test suite on libkotte stores.

    cd kotte/backend && SESSION_STORAGE_TYPE=postgresql ... \\
        python3 -m pytest -p libkotte.kotte.pytest_plugin tests/

install() runs after every other ``pytest_configure`` (Kotte's conftest sets
its test environment there) and before the test modules are collected, so
their ``from app.core.auth import session_manager`` gets libkotte's manager.
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    from . import install

    install()
