"""Shared fixtures for unit tests: an isolated cache directory per test session."""
from __future__ import annotations

import pytest


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
