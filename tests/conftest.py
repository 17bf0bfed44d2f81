"""Shared fixtures for unit tests: an isolated cache directory per test, or the session's own for subprocess runs."""
from __future__ import annotations

import pytest

from harness.cache import cache_root

# Read at import, before pytester moves HOME to a temporary folder: a pytester subprocess run with CASCADE_EQ_CACHE
# unset (as in CI) would otherwise start from an empty cache under that HOME — convert the backbone, synthesise and
# infer everything again, for answers the session already has or will need.
SESSION_CACHE = cache_root()


def pytest_collection_modifyitems(session, config, items) -> None:
    """Subprocess runs that share this session's cache (``session_cache``) run last: by then the equivalence tests
    have inferred the answers, transcripts and lens readings those runs ask for (the mutants read the very answers of
    the controls they break), so that inference happens in this session, whose summary counts it, and a cold run's
    subprocesses only start up and judge. Stable: the rest keep their order."""
    items.sort(key=lambda item: "session_cache" in getattr(item, "fixturenames", ()))


@pytest.fixture
def session_cache(monkeypatch):
    """Subprocess runs (pytester) share this session's cache."""
    from harness.cache import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(SESSION_CACHE))
    return SESSION_CACHE


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """Point the TTS/answer caches at an empty folder; converted backbones stay shared (linked, not redone)."""
    from harness.cache import CACHE_ENV, cache_root

    real = cache_root()
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    backbones = real / "backbones"
    backbones.mkdir(parents=True, exist_ok=True)  # converted once per machine, shared by every test
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "backbones").symlink_to(backbones)
    return tmp_path / "cache"
