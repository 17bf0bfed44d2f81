"""A flip mutant: any system with a seeded share of its answers replaced by another option.

It is the suite's own known-bad model: wrapped around a system that passes the agreement claim, it must be
judged NOT equivalent, which shows the tests can fail for the reason they exist. Which items flip, and to
which option, depends only on (seed, item id) — a rerun flips the same items the same way.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import replace

from harness.audio import Audio
from harness.systems.base import Answer
from harness.tasks import Item, Task


class FlipMutant:
    def __init__(self, system, share: float, *, seed: int = 0):
        if not 0 < share <= 1:
            raise ValueError(f"flip share {share}: expected a value in (0, 1]")
        self.inner, self.share, self.seed = system, float(share), seed
        self.name = f"{system.name}~flip{share:g}"
        self.fingerprint = f"flip[{share:g},seed={seed}]({system.fingerprint})"
        self.needs_audio = system.needs_audio

    def _rng(self, item: Item) -> random.Random:
        digest = hashlib.sha256(f"{self.seed}/{item.id}".encode()).hexdigest()
        return random.Random(int(digest[:16], 16))

    def answer(self, task: Task, item: Item, audio: Audio | None) -> Answer:
        return self.flip(task, item, self.inner.answer(task, item, audio))

    def flip(self, task: Task, item: Item, answer: Answer) -> Answer:
        """The mutated version of the wrapped system's ``answer`` (reuses cached answers: no new inference)."""
        rng = self._rng(item)
        if task.kind == "open_qa" or rng.random() >= self.share or len(item.options) < 2:
            return answer
        others = [o for o in item.options if o != answer.choice]
        choice = others[rng.randrange(len(others))]
        return replace(answer, choice=choice, correct=task.is_correct(item, choice))

    def __getattr__(self, name):          # probes and reports see the wrapped system's backbone
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
