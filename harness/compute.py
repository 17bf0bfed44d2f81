"""Model compute by stage: a process-wide ledger of the seconds spent in model computations.

Why: a run's overhead ratio (session wall time / pure model compute) needs *every* model computation timed, not
only the answers — speech synthesis, ASR decoding, logit-lens passes and LEACE forward passes too. Each is
wrapped once, where it runs, in ``with timed(stage):`` (answers, tts, asr, lens, leace-fit, leace-displacement,
leace-probes); a cache hit never enters a block, so it adds nothing. Model loading is not in any block.

Nesting rule: every block records its own seconds and count under its stage, nested or not, so each stage shows
what it cost; the total (``Snapshot.total``) adds the *outermost* blocks only, so time is never counted twice —
a cascade's answer transcribes inside "answers": the ASR seconds show under "asr" and once in the total (as part
of "answers"). A block inside a block of the *same* stage is part of it and adds nothing to that stage. Nesting
is tracked per thread; blocks in parallel threads each count. Standard library only, so every layer may import it.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator


@dataclass
class Timing:
    """One timed block; ``seconds`` is set when the block ends (also when it raises)."""

    stage: str
    seconds: float = 0.0


@dataclass(frozen=True)
class Snapshot:
    seconds: dict[str, float]   # stage → seconds (nested blocks included)
    counts: dict[str, int]      # stage → blocks
    total: float                # seconds of the outermost blocks only: the model compute, counted once
    outermost: int              # how many outermost blocks


class Ledger:
    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self.total = 0.0
        self.outermost = 0
        self._lock = threading.Lock()
        self._local = threading.local()     # .stack: the stages of the blocks open in this thread

    @contextmanager
    def timed(self, stage: str) -> Iterator[Timing]:
        stack = self._local.__dict__.setdefault("stack", [])
        outermost, repeated = not stack, stage in stack
        stack.append(stage)
        timing = Timing(stage)
        started = time.perf_counter()
        try:
            yield timing
        finally:
            timing.seconds = time.perf_counter() - started
            stack.pop()
            with self._lock:
                if not repeated:
                    self.seconds[stage] += timing.seconds
                    self.counts[stage] += 1
                if outermost:
                    self.total += timing.seconds
                    self.outermost += 1

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(dict(self.seconds), dict(self.counts), self.total, self.outermost)

    def reset(self) -> None:
        with self._lock:
            self.seconds.clear()
            self.counts.clear()
            self.total, self.outermost = 0.0, 0


LEDGER = Ledger()       # the process's own: what the pytest summary reports
timed = LEDGER.timed
snapshot = LEDGER.snapshot
reset = LEDGER.reset
