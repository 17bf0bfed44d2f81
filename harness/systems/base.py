"""What every system (cascade, speech-LLM, mutant) returns, and the answering step they share.

Sharing ``answer_from_prefix`` is what makes a pair *matched*: once the prompt is embedded, a cascade and
its speech-LLM choose answers with identical code (option log-likelihoods; greedy text for open QA).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol

import torch

from harness.audio import Audio
from harness.tasks import Item, Task


@dataclass(frozen=True)
class Answer:
    """One system's answer to one item, with the evidence it was chosen on."""

    item_id: str
    choice: str                       # the chosen option, or the generated text for open QA
    correct: bool
    scores: dict[str, float] = field(default_factory=dict)  # option → summed log-likelihood
    transcript: str | None = None     # what the cascade's ASR heard (None for speech-LLMs)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Answer":
        return cls(**data)


class System(Protocol):
    """Anything that answers task items: ``fingerprint`` identifies it in caches and reports."""

    name: str
    fingerprint: str
    needs_audio: bool

    def answer(self, task: Task, item: Item, audio: Audio | None) -> Answer: ...


def answer_from_prefix(backbone, task: Task, item: Item, prefix_embeds: torch.Tensor,
                       transcript: str | None = None) -> Answer:
    """Choose an answer given the embedded prompt (up to the assistant's reply)."""
    if task.kind == "open_qa":
        text = backbone.generate(prefix_embeds)
        return Answer(item.id, text, task.is_correct(item, text), {}, transcript)
    return choose(task, item, backbone.score_options(prefix_embeds, item.options), transcript)


def choose(task: Task, item: Item, scores: list[float], transcript: str | None = None) -> Answer:
    """The highest-scoring option (ties → the first, deterministic) as an Answer."""
    best = max(range(len(scores)), key=lambda k: (scores[k], -k))
    choice = item.options[best]
    return Answer(item.id, choice, task.is_correct(item, choice), dict(zip(item.options, scores)), transcript)


def answers_from_prefixes(backbone, task: Task, items: list[Item], prefixes: list[torch.Tensor]) -> list[Answer]:
    """:func:`answer_from_prefix` for several items: option scoring in one batch; open QA stays one at a time
    (greedy generation)."""
    if task.kind == "open_qa":
        return [answer_from_prefix(backbone, task, it, p) for it, p in zip(items, prefixes)]
    scores = backbone.score_options_batch(prefixes, [it.options for it in items])
    return [choose(task, it, s) for it, s in zip(items, scores)]
