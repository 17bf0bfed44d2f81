"""The on-disk cache shared by TTS audio, converted backbones and runner answers.

Why one module: every cache in the suite must agree on where it lives, how keys are made (stable
hashes, never Python's ``hash()``), and how it is written (atomically, so an interrupted run never
leaves a half-written entry that a later run would trust).

Concurrency: single files are written to a per-process temporary name and renamed; a multi-file artefact
(a converted checkpoint folder) is built under ``cache_lock`` (``filelock``) in a per-process temporary folder.
A read-only cache is not an error: ``store_bytes`` warns once and the run goes on without writing (no-cache).
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from filelock import FileLock

CACHE_ENV = "CASCADE_EQ_CACHE"
_READ_ONLY_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM)
_warned_read_only: set[str] = set()


class CacheWarning(UserWarning):
    """A cache entry was rejected and rebuilt, or the cache cannot be written (the run goes on without it)."""


def cache_root() -> Path:
    """``$CASCADE_EQ_CACHE`` or ``~/.cache/cascade-equivalence``."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "cascade-equivalence"
    return Path(root)


def cache_dir(kind: str) -> Path:
    """``cache_root()/kind``, created if possible (a read-only cache is still read; writes degrade)."""
    path = cache_root() / kind
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        if e.errno not in _READ_ONLY_ERRNOS:
            raise
        warn_read_only(path, e)
    return path


def json_digest(payload: dict) -> str:
    """sha256 of a JSON payload in canonical form (sorted keys, no spaces): the checksum of a cache entry."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def checked_payload(entry, key: str, fmt: int, field: str) -> dict:
    """The ``field`` payload of an entry ``{"format", "key", "sha256", field, …}`` if it is of format ``fmt``, was
    written under ``key`` and matches its checksum; else ValueError saying which check failed."""
    if not isinstance(entry, dict) or entry.get("format") != fmt:
        raise ValueError(f"not a format-{fmt} {field} entry")
    if entry.get("key") != key:
        raise ValueError(f"written under key {str(entry.get('key'))[:12]}…, expected {key[:12]}…")
    data = entry.get(field)
    if not isinstance(data, dict) or entry.get("sha256") != json_digest(data):
        raise ValueError("checksum mismatch")
    return data


def warn_read_only(path: Path, error: OSError) -> None:
    """One warning per process and cache root: the cache cannot be written, so nothing new is kept."""
    root = str(cache_root())
    if root not in _warned_read_only:
        _warned_read_only.add(root)
        warnings.warn(f"the cache {root} cannot be written ({error.strerror or error}: {path}); running without "
                      f"a disk cache: results are computed but not kept", CacheWarning, stacklevel=3)


def store_bytes(path: Path, data: bytes) -> bool:
    """``atomic_write_bytes`` that degrades on a read-only cache: warns once, returns False, never raises there."""
    try:
        atomic_write_bytes(path, data)
        return True
    except OSError as e:
        if e.errno not in _READ_ONLY_ERRNOS:
            raise
        warn_read_only(path, e)
        return False


def discard(path: Path) -> None:
    """Remove a rejected entry if the cache allows it (a read-only cache keeps it; it is rejected again)."""
    try:
        path.unlink(missing_ok=True)
    except OSError as e:
        if e.errno not in _READ_ONLY_ERRNOS:
            raise


def cache_lock(path: Path, timeout: float = -1) -> FileLock:
    """An inter-process lock for building the artefact at ``path`` (``<path>.lock`` beside it)."""
    return FileLock(str(path) + ".lock", timeout=timeout)


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
