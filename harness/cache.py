"""The on-disk cache shared by TTS audio, converted backbones and runner answers.

Why one module: every cache in the suite must agree on where it lives, how keys are made (stable
hashes, never Python's ``hash()``), and how it is written (atomically, so an interrupted run never
leaves a half-written entry that a later run would trust).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

CACHE_ENV = "CASCADE_EQ_CACHE"


def cache_root() -> Path:
    """``$CASCADE_EQ_CACHE`` or ``~/.cache/cascade-equivalence``."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "cascade-equivalence"
    return Path(root)


def cache_dir(kind: str) -> Path:
    path = cache_root() / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def stable_key(*parts: Any) -> str:
    """A sha256 hex digest of the canonical JSON of ``parts`` (order-sensitive, type-stable)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def file_digest(path: Path, *, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes (for provenance of packaged weights)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: readers see all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
