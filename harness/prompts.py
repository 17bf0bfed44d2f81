"""The task prompt both sides of a matched pair see: same instruction, same options, same examples.

The only difference between a cascade and its speech-LLM is what stands in the ``content`` slot: the
transcript for the cascade, the model's audio placeholder for the speech-LLM. Bumping PROMPT_VERSION
invalidates every cached answer (it is part of the runner's cache key).

Few-shot examples come from the task's *training* split (never evaluation items), picked
deterministically and round-robin over labels, and are given as earlier chat turns in text form.
"""
from __future__ import annotations

from harness.tasks import Item, Task

PROMPT_VERSION = "p1"
SHOTS_PER_LABEL = 1  # classification: this many training examples per label
MC_SHOTS = 2


def _question(task: Task, content: str, options: tuple[str, ...]) -> str:
    if task.kind == "classification":
        return f"{task.instruction}\nText: {content}\nAnswer with one word: {', '.join(options)}."
    if task.kind == "multiple_choice":
        listed = "\n".join(f"- {o}" for o in options)
        return f"{task.instruction}\nQuestion: {content}\nChoices:\n{listed}\nAnswer with one of the choices."
    return f"{task.instruction}\nQuestion: {content}\nAnswer in a few words."


def shots(task: Task) -> list[Item]:
    """Deterministic few-shot examples from the training split (labels interleaved)."""
    if task.kind == "open_qa" or not task.train:
        return []
    if task.kind == "multiple_choice":
        return list(task.train[:MC_SHOTS])
    by_label: dict[str, list[Item]] = {}
    for item in task.train:
        by_label.setdefault(item.label, []).append(item)
    out: list[Item] = []
    for k in range(SHOTS_PER_LABEL):
        out += [by_label[label][k] for label in task.labels if len(by_label.get(label, [])) > k]
    return out


def messages(task: Task, item: Item, content: str) -> list[dict]:
    """Chat messages for ``item`` with ``content`` (transcript or audio placeholder) in the slot."""
    turns: list[dict] = []
    for shot in shots(task):
        turns.append({"role": "user", "content": _question(task, shot.text, shot.options)})
        turns.append({"role": "assistant", "content": shot.label})
    turns.append({"role": "user", "content": _question(task, content, item.options)})
    return turns


def options(task: Task, item: Item) -> tuple[str, ...]:
    """What is scored: the item's options (classification labels or MC choices)."""
    return item.options
