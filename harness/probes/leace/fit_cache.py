"""The fitted LEACE erasers, kept on disk so a rerun with the same inputs does not refit them.

Why: :func:`.fit.fit_erasers` costs one forward pass per fitting item, layer and concept (64 items × 9 layers × 2
concepts = 1152 passes, minutes on a CPU), while what it returns is a few small matrices per layer; every session
of the suite would otherwise redo it.

Key: everything that defines the fit — the system's fingerprint, the prompt version, the task (name, kind,
instruction), the items (``Item.as_dict``), each audio's float32 samples (sha256) and sample rate, the layers,
``affine``, the dtype, ``sequential``, ``scope``, the fitter's and the compaction's tolerances, and per concept its
name, classes, description and the sha256 of its per-item labels (the labels are what the fit sees of a concept:
its labeler is code and cannot be hashed, its output can). A system without a fingerprint is not cached.

Entry: one ``.safetensors`` file for all concepts: each eraser's ``left``/``right``/``bias`` per layer as tensors,
and as metadata (JSON) the format, the key, per concept its name, config and fingerprint, and a sha256 over the
tensors; written atomically. On read the format, key and checksum are checked and each Eraser is rebuilt with
``make_eraser``, whose fingerprint (over config and matrices) must equal the stored one; an entry that fails is
rejected with a ``CacheWarning``, discarded and refitted, never trusted.
"""
from __future__ import annotations

import hashlib
import json
import struct
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from harness import prompts
from harness.audio import SAMPLE_RATE, Audio
from harness.cache import CacheWarning, cache_dir, discard, stable_key, store_bytes
from harness.tasks import Item, Task

from .concepts import Concept
from .erasers import RANK_TOL, Eraser, make_eraser

ENTRY_FORMAT = 1   # metadata {"format", "key", "sha256", "concepts"}; bump when the entry or the fit changes
PARTS = ("left", "right", "bias")


def key(system, task: Task, items: Sequence[Item], audios: Sequence[Audio], concepts: Sequence[Concept],
        labels: Mapping[str, Sequence[np.ndarray]], layers: Sequence[int], *, affine: bool, dtype, sequential: bool,
        scope: str, svd_tol: float, moments: str = "central") -> str | None:
    """The entry's key, or None when ``system`` has no fingerprint (then nothing is cached)."""
    fingerprint = getattr(system, "fingerprint", None)
    if not fingerprint:
        return None
    audio_digests = [hashlib.sha256(np.ascontiguousarray(a.samples, dtype=np.float32).tobytes()).hexdigest()
                     for a in audios]
    concept_parts = [{"name": c.name, "classes": list(c.classes), "description": c.description,
                      "reference": c.reference, "labels": _labels_digest(labels[c.name])} for c in concepts]
    return stable_key("leace-fit", ENTRY_FORMAT, fingerprint, prompts.PROMPT_VERSION, task.name, task.kind,
                      task.instruction, [item.as_dict() for item in items], audio_digests, SAMPLE_RATE,
                      [int(x) for x in layers], bool(affine), str(dtype), bool(sequential), scope, moments,
                      {"svd_tol": svd_tol, "rank_tol": RANK_TOL}, concept_parts)


def path(key: str) -> Path:
    return cache_dir("leace") / key[:2] / f"{key}.safetensors"


def load(key: str, names: Sequence[str], layers: Sequence[int]) -> dict[str, Eraser] | None:
    """The cached erasers (name → Eraser, in ``names``' order) for ``key``; None when there are none or the entry
    was rejected (warned, discarded)."""
    where = path(key)
    if not where.exists():
        return None
    try:
        return _checked_entry(where.read_bytes(), key, names, layers)
    except Exception as e:  # unreadable, or written for another key: refit, never trust it
        warnings.warn(f"LEACE fit cache entry {where} rejected ({e}); refitting", CacheWarning, stacklevel=3)
        discard(where)
        return None


def store(key: str, erasers: Mapping[str, Eraser]) -> bool:
    """Write the entry atomically; False (after one warning) when the cache is read-only."""
    from safetensors.torch import save

    tensors = {}
    for i, eraser in enumerate(erasers.values()):
        for layer in eraser.layers:
            for part in PARTS:
                t = getattr(eraser, part).get(layer)
                if t is not None:       # a copy: safetensors refuses views sharing a larger storage
                    tensors[_name(i, layer, part)] = t.detach().to("cpu", torch.float32).contiguous().clone()
    meta = {"format": ENTRY_FORMAT, "key": key, "sha256": _digest(tensors),
            "concepts": [{"name": e.name, "config": dict(e.config), "fingerprint": e.fingerprint,
                          "layers": list(e.layers)} for e in erasers.values()]}
    return store_bytes(path(key), save(tensors, metadata={"entry": json.dumps(meta, default=str)}))


def _name(concept: int, layer: int, part: str) -> str:
    return f"{concept}/{layer}/{part}"


def _labels_digest(per_item: Sequence[np.ndarray]) -> str:
    h = hashlib.sha256()
    for y in per_item:       # each item's length too, so the split between items counts
        y = np.ascontiguousarray(y, dtype=np.int64)
        h.update(str(y.shape).encode())
        h.update(y.tobytes())
    return h.hexdigest()


def _digest(tensors: Mapping[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}:{str(t.dtype)}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _metadata(data: bytes) -> dict:
    """The entry's metadata from the safetensors header (8-byte little-endian length, then JSON)."""
    if len(data) < 8:
        raise ValueError("truncated file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError("truncated header")
    header = json.loads(data[8: 8 + n])
    entry = (header.get("__metadata__") or {}).get("entry") if isinstance(header, dict) else None
    if entry is None:
        raise ValueError(f"not a format-{ENTRY_FORMAT} LEACE fit entry (no metadata)")
    return json.loads(entry)


def _checked_entry(data: bytes, key: str, names: Sequence[str], layers: Sequence[int]) -> dict[str, Eraser]:
    """The cached erasers if the entry is whole and was written under ``key``; else ValueError why."""
    from safetensors.torch import load

    meta = _metadata(data)
    if not isinstance(meta, dict) or meta.get("format") != ENTRY_FORMAT:
        raise ValueError(f"not a format-{ENTRY_FORMAT} LEACE fit entry")
    if meta.get("key") != key:
        raise ValueError(f"written under key {str(meta.get('key'))[:12]}…, expected {key[:12]}…")
    tensors = load(data)
    if any(t.dtype != torch.float32 for t in tensors.values()) or meta.get("sha256") != _digest(tensors):
        raise ValueError("checksum mismatch")
    stored = meta.get("concepts")
    if not isinstance(stored, list) or [c.get("name") for c in stored] != list(names):
        raise ValueError(f"erasers for concepts {[c.get('name') for c in stored or []]}, expected {list(names)}")
    layers = tuple(int(x) for x in layers)
    out, used = {}, set()
    for i, c in enumerate(stored):
        parts = {part: {} for part in PARTS}
        for layer in layers:
            for part in PARTS:
                if _name(i, layer, part) in tensors:
                    parts[part][layer] = tensors[_name(i, layer, part)]
                    used.add(_name(i, layer, part))
        if set(parts["left"]) != set(layers) or set(parts["right"]) != set(layers):
            raise ValueError(f"concept {c['name']!r}: matrices for layers {sorted(parts['left'])}, "
                             f"expected {list(layers)}")
        eraser = make_eraser(c["name"], parts["left"], parts["right"], parts["bias"], c.get("config"))
        if eraser.fingerprint != c.get("fingerprint"):
            raise ValueError(f"concept {c['name']!r}: fingerprint {eraser.fingerprint} of the stored matrices and "
                             f"config, expected {c.get('fingerprint')}")
        out[c["name"]] = eraser
    if used != set(tensors):
        raise ValueError(f"unexpected tensors {sorted(set(tensors) - used)[:4]}")
    return out
