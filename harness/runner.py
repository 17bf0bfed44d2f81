"""Answers for (system, task, condition), each inferred once and cached in memory and on disk.

Every test draws its evidence from here, so one (system, item, condition) is never inferred twice in a run
however many claims use it; ``Runner.inferences`` counts real inferences so that is testable.
Cache key: system fingerprint (model id, revision, dtype, ASR) + prompt version + the item (with its
recording's content hash, if it has one) + condition (kind, SNR, seed). Entries are written atomically. An entry
carries its own key and a checksum of the answer, and is checked on read against the item it is for (key, item id,
option set, correctness against the gold label): one that fails is recomputed with a ``CacheWarning``, never
trusted. ``disk_cache=False`` writes nothing (answers or audio).
"""
from __future__ import annotations

import json
import warnings
from collections import Counter
from typing import Sequence

from tqdm.auto import tqdm

from harness import compute, prompts, tts
from harness.audio import Audio, Condition
from harness.cache import CacheWarning, cache_dir, checked_payload, discard, json_digest, stable_key, store_bytes
from harness.systems.base import Answer, System
from harness.tasks import Item, Task, load_recording

BABBLE_POOL = 8  # training-split utterances mixed into babble noise (never the evaluation items)
ENTRY_FORMAT = 2  # answer entries: {"format", "key", "item_id", "sha256", "answer"}; older entries are recomputed


def check_condition(condition: Condition | str) -> Condition:
    """The condition, if the runner can make its audio (before any model is loaded): no noise file is wired in."""
    condition = Condition.parse(condition)
    if condition.kind == "file":
        raise ValueError(f"condition {str(condition)!r}: noise from a file needs a noise file, which the runner "
                         "does not take; use white, pink or babble")
    return condition


class Runner:
    def __init__(self, *, disk_cache: bool = True, progress: bool = True, batch_size: int = 1):
        """``batch_size`` > 1: items a system has not answered yet go to its ``answer_batch`` (if it has one)
        that many at a time — the GPU path; 1 (default, CPU) answers one item at a time."""
        if int(batch_size) < 1:
            raise ValueError(f"batch_size={batch_size}: expected an integer ≥ 1")
        self.disk_cache, self.progress, self.batch_size = disk_cache, progress, int(batch_size)
        self._memory: dict[str, Answer] = {}
        self.inferences: Counter[str] = Counter()  # system name → items actually inferred
        self.inference_seconds: Counter[str] = Counter()   # system name → wall seconds spent inferring them

    # -- audio -------------------------------------------------------------------------------------
    def clean_audio(self, item: Item) -> Audio:
        """The item's own recording when it has one, else its text spoken by the offline TTS. (A recording's
        content hash is part of ``item.as_dict()``, hence of every answer's cache key.)"""
        if item.audio is not None:
            return load_recording(item.audio, item.id)
        return tts.synthesize(item.text, item.speech, item_id=item.id, use_cache=self.disk_cache)

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

    def _path(self, key: str):
        return cache_dir("answers") / key[:2] / f"{key}.json"

    def _load(self, key: str, task: Task, item: Item) -> Answer | None:
        path = self._path(key)
        if not (self.disk_cache and path.exists()):
            return None
        try:
            answer = _checked_entry(json.loads(path.read_text()), key, task, item)
        except Exception as e:  # unreadable, or written for another key/item: recompute, never trust it
            warnings.warn(f"answer cache entry {path} rejected ({e}); recomputing", CacheWarning, stacklevel=2)
            discard(path)
            return None
        return answer

    def _store(self, key: str, answer: Answer) -> None:
        if self.disk_cache:
            data = answer.to_json()
            entry = {"format": ENTRY_FORMAT, "key": key, "item_id": answer.item_id, "sha256": json_digest(data),
                     "answer": data}
            store_bytes(self._path(key), json.dumps(entry).encode())

    def answers(self, system: System, task: Task, items: Sequence[Item],
                condition: Condition | str = Condition()) -> list[Answer]:
        condition = check_condition(condition)
        keys = [self.key(system, task, item, condition) for item in items]
        out: list[Answer | None] = [self._memory.get(k) or self._load(k, task, item) for k, item in zip(keys, items)]
        first = {k: i for i, k in reversed(list(enumerate(keys)))}      # an item listed twice is inferred once
        todo = [i for i, a in enumerate(out) if a is None and first[keys[i]] == i]
        size = self.batch_size if hasattr(system, "answer_batch") else 1
        label = f"{system.name}/{task.name}/{condition}"
        with tqdm(total=len(todo), desc=label, unit="item", disable=not self.progress or len(todo) < 2) as bar:
            for start in range(0, len(todo), size):
                chunk = todo[start: start + size]
                audios = [self.audio(task, items[i], condition) if system.needs_audio else None for i in chunk]
                with compute.timed("answers") as timing:
                    if size == 1:
                        answers = [system.answer(task, items[chunk[0]], audios[0])]
                    else:
                        answers = system.answer_batch(task, [items[i] for i in chunk], audios)
                self.inference_seconds[system.name] += timing.seconds
                for i, answer in zip(chunk, answers, strict=True):
                    self.inferences[system.name] += 1
                    self._store(keys[i], answer)
                    out[i] = answer
                bar.update(len(chunk))
        for i, k in enumerate(keys):
            out[i] = out[i] or out[first[k]]
            self._memory[k] = out[i]
        return out


def _checked_entry(entry: dict, key: str, task: Task, item: Item) -> Answer:
    """The cached Answer if the entry is whole and is this item's answer under this key; else ValueError why."""
    data = checked_payload(entry, key, ENTRY_FORMAT, "answer")
    answer = Answer.from_json(data)
    if answer.item_id != item.id or entry.get("item_id") != item.id:
        raise ValueError(f"answer is for item {answer.item_id!r}, expected {item.id!r}")
    if task.kind != "open_qa":
        if answer.choice not in item.options:
            raise ValueError(f"choice {answer.choice!r} is not one of the item's options")
        if answer.scores and set(answer.scores) != set(item.options):
            raise ValueError(f"scored options {sorted(answer.scores)} differ from the item's {sorted(item.options)}")
    if answer.correct != task.is_correct(item, answer.choice):
        raise ValueError(f"correct={answer.correct} contradicts the gold label for choice {answer.choice!r}")
    return answer


def accuracy(answers: Sequence[Answer]) -> float:
    return sum(a.correct for a in answers) / len(answers) if answers else float("nan")
