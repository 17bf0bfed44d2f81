"""The logit lens's per-item top-1 tokens, kept on disk so a rerun does not redo the lens forward passes.

Why: the forward pass (and the unembedding of every layer's rows) is the lens's whole cost, seconds per item on
a CPU, while scoring the tokens it reads takes milliseconds; a rerun of the suite must not redo it.

Key: everything that defines the array — the system's fingerprint, the prompt version, the task (name, kind,
instruction), the item (``Item.as_dict``, with its recording's hash if it has one), the audio samples' sha256
and sample rate, and the requested layers (None = all). A system without a fingerprint cannot be keyed and is
not cached. Entry: an ``.npz`` holding the array, its key and the sha256 of its bytes, written atomically. On
read, the key, checksum and form (2-D integers, one row per requested layer) are checked; an entry that fails
is rejected with a ``CacheWarning``, discarded and recomputed, never trusted.
"""
from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from harness import prompts
from harness.audio import SAMPLE_RATE, Audio
from harness.cache import CacheWarning, cache_dir, discard, stable_key, store_bytes
from harness.tasks import Item, Task

ENTRY_FORMAT = 1   # {"format", "key", "sha256", "top1"}; bump when the entry or what top1_tokens computes changes


def key(system, task: Task, item: Item, audio: Audio, layers: Sequence[int] | None) -> str | None:
    """The entry's key, or None when ``system`` has no fingerprint (then nothing is cached)."""
    fingerprint = getattr(system, "fingerprint", None)
    if not fingerprint:
        return None
    samples = np.ascontiguousarray(audio.samples, dtype=np.float32)
    return stable_key("lens-top1", ENTRY_FORMAT, fingerprint, prompts.PROMPT_VERSION, task.name, task.kind,
                      task.instruction, item.as_dict(), hashlib.sha256(samples.tobytes()).hexdigest(), SAMPLE_RATE,
                      None if layers is None else [int(x) for x in layers])


def path(key: str) -> Path:
    return cache_dir("lens") / key[:2] / f"{key}.npz"


def load(key: str, layers: Sequence[int] | None = None) -> np.ndarray | None:
    """The cached array for ``key``; None when there is none or it was rejected (warned, discarded)."""
    where = path(key)
    if not where.exists():
        return None
    try:
        return _checked_entry(where.read_bytes(), key, layers)
    except Exception as e:  # unreadable, or written for another key: recompute, never trust it
        warnings.warn(f"lens cache entry {where} rejected ({e}); recomputing", CacheWarning, stacklevel=2)
        discard(where)
        return None


def store(key: str, top1: np.ndarray) -> bool:
    """Write the entry atomically; False (after one warning) when the cache is read-only."""
    top1 = np.ascontiguousarray(top1)
    buf = io.BytesIO()
    np.savez(buf, format=np.array(ENTRY_FORMAT), key=np.array(key), sha256=np.array(_digest(top1)), top1=top1)
    return store_bytes(path(key), buf.getvalue())


def cached(compute: Callable[..., np.ndarray], system, task: Task, item: Item, audio: Audio,
           layers: Sequence[int] | None = None) -> np.ndarray:
    """``compute(system, task, item, audio, layers)`` read from the cache, or computed and kept there."""
    k = key(system, task, item, audio, layers)
    if k is None:
        return compute(system, task, item, audio, layers)
    top1 = load(k, layers)
    if top1 is None:
        top1 = compute(system, task, item, audio, layers)
        store(k, top1)
    return top1


def _digest(top1: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(top1).tobytes()).hexdigest()


def _checked_entry(data: bytes, key: str, layers: Sequence[int] | None) -> np.ndarray:
    """The cached array if the entry is whole and was written under ``key``; else ValueError why."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        if set(z.files) != {"format", "key", "sha256", "top1"} or int(z["format"]) != ENTRY_FORMAT:
            raise ValueError(f"not a format-{ENTRY_FORMAT} lens entry")
        if str(z["key"]) != key:
            raise ValueError(f"written under key {str(z['key'])[:12]}…, expected {key[:12]}…")
        top1, digest = z["top1"], str(z["sha256"])
    if top1.ndim != 2 or top1.dtype.kind not in "iu":
        raise ValueError(f"expected a 2-D integer array, got {top1.dtype} of shape {top1.shape}")
    if layers is not None and top1.shape[0] != len(layers):
        raise ValueError(f"{top1.shape[0]} rows for {len(layers)} requested layers")
    if top1.shape[1] == 0:
        raise ValueError("no audio positions")
    if _digest(top1) != digest:
        raise ValueError("checksum mismatch")
    return top1
