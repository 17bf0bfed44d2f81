"""Item and Task: what every system answers, whether the items come from a mini twin or the hub.

Both are frozen so a Task can be fingerprinted once and shared between the speech-LLM and its cascade
without either side mutating what the other sees.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import string
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

KINDS = ("classification", "multiple_choice", "open_qa")
MC_OPTIONS = 5

_EMPTY: Mapping[str, float] = MappingProxyType({})


@dataclass(frozen=True)
class Item:
    """One spoken input: `text` is exactly what is said, so it doubles as the oracle transcript."""

    id: str
    task: str
    text: str
    label: str
    options: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    # TTS prosody (e.g. piper's length_scale); read-only, left out of the hash (mappings don't hash).
    speech: Mapping[str, float] = field(default_factory=lambda: _EMPTY, hash=False)
    # A recording of this item (WAV/FLAC/MP3, any rate): spoken instead of TTS. Its identity in caches and
    # fingerprints is the file's content hash, never its path, so moving a task folder keeps its cache.
    audio: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", tuple(self.options))
        object.__setattr__(self, "aliases", tuple(self.aliases))
        object.__setattr__(self, "speech", MappingProxyType({k: float(v) for k, v in dict(self.speech).items()}))

    def as_dict(self) -> dict:
        """Plain JSON-able form (used for the fingerprint and for caches).

        A recorded item adds ``audio_sha256`` (the recording's bytes); items spoken by TTS have no such key,
        so their form (and every cache key built from it) is what it was before recordings existed."""
        d = {
            "id": self.id,
            "task": self.task,
            "text": self.text,
            "label": self.label,
            "options": list(self.options),
            "aliases": list(self.aliases),
            "speech": dict(sorted(self.speech.items())),
        }
        if self.audio is not None:
            d["audio_sha256"] = file_sha256(self.audio)
        return d


def file_sha256(path: str) -> str:
    """Content hash of a file, memoised per (path, size, mtime) so a rewritten file is hashed again."""
    st = os.stat(path)
    return _file_sha256(os.path.abspath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    from pathlib import Path

    from harness.cache import file_digest

    return file_digest(Path(path))


_PUNCT = set(string.punctuation) | set("‘’“”–—…")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(s: str) -> str:
    """SQuAD-style: lowercase, drop punctuation and articles, collapse whitespace.

    Also folds accents ("Nestlé" = "Nestle") and turns hyphens into spaces so "sci-tech" and
    "sci tech" agree.
    """
    s = unicodedata.normalize("NFKD", s)
    s = "".join(ch for ch in s if not unicodedata.combining(ch))
    s = s.lower().replace("-", " ")
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


@dataclass(frozen=True)
class Task:
    """A task family instance: metadata, evaluation items and (disjoint) training items."""

    name: str
    kind: str
    text_sufficient: bool
    instruction: str
    labels: tuple[str, ...]
    items: tuple[Item, ...]
    train: tuple[Item, ...] = ()
    source: str = "mini"
    paper_task: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "items", tuple(self.items))
        object.__setattr__(self, "train", tuple(self.train))

    @property
    def fingerprint(self) -> str:
        """sha256 over what determines answers; runner caches key on it, so it must be stable."""
        payload = {
            "name": self.name,
            "kind": self.kind,
            "instruction": self.instruction,
            "labels": list(self.labels),
            "items": [it.as_dict() for it in self.items],
        }
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    @property
    def chance(self) -> float:
        if self.kind == "classification":
            return 1.0 / len(self.labels)
        if self.kind == "multiple_choice":
            return 1.0 / MC_OPTIONS
        return 0.0

    def is_correct(self, item: Item, answer: str) -> bool:
        """Exact label match for closed tasks; SQuAD-style normalised match for open QA.

        Open QA also accepts an answer that contains a gold string as whole words
        ("It is Paris." for "Paris"), since generative systems rarely answer with the bare string.
        """
        if self.kind != "open_qa":
            return answer.strip() == item.label
        got = normalize_answer(answer)
        if not got:
            return False
        for gold in (item.label, *item.aliases):
            g = normalize_answer(gold)
            if not g:
                continue
            if got == g or re.search(rf"(?<!\S){re.escape(g)}(?!\S)", got):
                return True
        return False

    def balance_key(self, item: Item) -> str:
        """What subset() balances over: the label, or the correct option's position for MC."""
        if self.kind == "multiple_choice":
            return str(item.options.index(item.label))
        return item.label

    def subset(self, n: int | None) -> tuple[Item, ...]:
        """Deterministic label-balanced first-n: round-robin over labels, each label in file order.

        Picks are nested (subset(n) is contained in subset(n + 1)) and come back in file order.
        Open QA has no labels, so it is simply the first n.
        """
        if n is None or n >= len(self.items):
            return self.items
        if n <= 0:
            return ()
        if self.kind == "open_qa":
            return self.items[:n]
        groups: dict[str, list[int]] = {}
        for i, it in enumerate(self.items):
            groups.setdefault(self.balance_key(it), []).append(i)
        order = [k for k in self.labels if k in groups] + sorted(k for k in groups if k not in self.labels)
        queues = [list(reversed(groups[k])) for k in order]
        chosen: list[int] = []
        while len(chosen) < n:
            for q in queues:
                if q and len(chosen) < n:
                    chosen.append(q.pop())
        return tuple(self.items[i] for i in sorted(chosen))
