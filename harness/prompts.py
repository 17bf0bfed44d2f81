"""The task prompt both sides of a matched pair see: same instruction, same options.

The only difference between a cascade and its speech-LLM is what stands in the ``content`` slot: the
transcript for the cascade, the model's audio placeholder for the speech-LLM. Bumping PROMPT_VERSION
invalidates every cached answer (it is part of the runner's cache key). Zero-shot on purpose: few-shot
examples did not make the 135M offline backbone a usable classifier (see the foundation issue's note), a
small text-only tune of the backbone did, and short prompts keep CPU inference fast.
"""
from __future__ import annotations

from harness.tasks import Item, Task

PROMPT_VERSION = "p2"


def question(task: Task, item: Item, content: str) -> str:
    """The user turn: instruction, the content slot, and the answer options."""
    if task.kind == "classification":
        return f"{task.instruction}\nText: {content}\nAnswer with one word: {', '.join(item.options)}."
    if task.kind == "multiple_choice":
        listed = "\n".join(f"- {o}" for o in item.options)
        return f"{task.instruction}\nQuestion: {content}\nChoices:\n{listed}\nAnswer with one of the choices."
    return f"{task.instruction}\nQuestion: {content}\nAnswer in a few words."


def messages(task: Task, item: Item, content: str) -> list[dict]:
    """Chat messages for ``item`` with ``content`` (transcript or audio placeholder) in the slot."""
    return [{"role": "user", "content": question(task, item, content)}]
