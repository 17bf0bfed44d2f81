"""Answers for (system, task, condition), each inferred once and cached in memory and on disk.

Every test draws its evidence from here, so one (system, item, condition) is never inferred twice in a run
however many claims use it; ``Runner.inferences`` counts real inferences so that is testable.
Cache key: system fingerprint (model id, revision, dtype, ASR) + prompt version + the item (with its
recording's content hash, if it has one) + condition (kind, SNR, seed). Entries are written atomically; an unreadable entry is recomputed, never trusted.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Sequence

from tqdm.auto import tqdm

from harness import prompts, tts
from harness.audio import Audio, Condition
from harness.cache import atomic_write_bytes, cache_dir, stable_key
from harness.systems.base import Answer, System
from harness.tasks import Item, Task, load_recording

BABBLE_POOL = 8  # training-split utterances mixed into babble noise (never the evaluation items)


class Runner:
    def __init__(self, *, disk_cache: bool = True, progress: bool = True, batch_size: int = 1):
        """``batch_size`` > 1: items a system has not answered yet go to its ``answer_batch`` (if it has one)
        that many at a time — the GPU path; 1 (default, CPU) answers one item at a time."""
        if int(batch_size) < 1:
            raise ValueError(f"batch_size={batch_size}: expected an integer ≥ 1")
        self.disk_cache, self.progress, self.batch_size = disk_cache, progress, int(batch_size)
        self._memory: dict[str, Answer] = {}
        self.inferences: Counter[str] = Counter()  # system name → items actually inferred

    # -- audio -------------------------------------------------------------------------------------
    def clean_audio(self, item: Item) -> Audio:
        """The item's own recording when it has one, else its text spoken by the offline TTS. (A recording's
        content hash is part of ``item.as_dict()``, hence of every answer's cache key.)"""
        if item.audio is not None:
            return load_recording(item.audio, item.id)
        return tts.synthesize(item.text, item.speech, item_id=item.id)

    def audio(self, task: Task, item: Item, condition: Condition) -> Audio:
        """The item's speech under ``condition``; babble is made of the task's training utterances."""
        clean = self.clean_audio(item)
        if condition.kind == "clean":
            return clean
        sources = {}
        if condition.kind == "babble":
            pool = [it for it in (task.train or task.items) if it.id != item.id][:BABBLE_POOL]
            sources["babble_sources"] = [self.clean_audio(it) for it in pool]
        return condition.apply(clean, **sources)

    # -- answers -----------------------------------------------------------------------------------
    def key(self, system: System, task: Task, item: Item, condition: Condition) -> str:
        return stable_key("answer", system.fingerprint, prompts.PROMPT_VERSION, task.name, task.kind,
                          task.instruction, item.as_dict(), condition.key)

    def _load(self, key: str) -> Answer | None:
        path = cache_dir("answers") / key[:2] / f"{key}.json"
        if not (self.disk_cache and path.exists()):
            return None
        try:
            return Answer.from_json(json.loads(path.read_text()))
        except Exception:
            path.unlink(missing_ok=True)  # corrupt: recompute
            return None

    def _store(self, key: str, answer: Answer) -> None:
        if self.disk_cache:
            path = cache_dir("answers") / key[:2] / f"{key}.json"
            atomic_write_bytes(path, json.dumps(answer.to_json()).encode())

    def answers(self, system: System, task: Task, items: Sequence[Item],
                condition: Condition | str = Condition()) -> list[Answer]:
        condition = Condition.parse(condition)
        keys = [self.key(system, task, item, condition) for item in items]
        out: list[Answer | None] = [self._memory.get(k) or self._load(k) for k in keys]
        first = {k: i for i, k in reversed(list(enumerate(keys)))}      # an item listed twice is inferred once
        todo = [i for i, a in enumerate(out) if a is None and first[keys[i]] == i]
        size = self.batch_size if hasattr(system, "answer_batch") else 1
        label = f"{system.name}/{task.name}/{condition}"
        with tqdm(total=len(todo), desc=label, unit="item", disable=not self.progress or len(todo) < 2) as bar:
            for start in range(0, len(todo), size):
                chunk = todo[start: start + size]
                audios = [self.audio(task, items[i], condition) if system.needs_audio else None for i in chunk]
                if size == 1:
                    answers = [system.answer(task, items[chunk[0]], audios[0])]
                else:
                    answers = system.answer_batch(task, [items[i] for i in chunk], audios)
                for i, answer in zip(chunk, answers, strict=True):
                    self.inferences[system.name] += 1
                    self._store(keys[i], answer)
                    out[i] = answer
                bar.update(len(chunk))
        for i, k in enumerate(keys):
            out[i] = out[i] or out[first[k]]
            self._memory[k] = out[i]
        return out


def accuracy(answers: Sequence[Answer]) -> float:
    return sum(a.correct for a in answers) / len(answers) if answers else float("nan")
