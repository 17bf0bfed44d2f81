"""A cascade that reads its transcript with some words deleted: the collapse claim's text-level check.

If LEACE erasure of a text concept collapses a speech-LLM because the concept *is* the task's information, the
matched cascade must lose the task too when the concept's words are simply deleted from what it reads. If
deleting them costs the cascade nothing, a collapse under erasure was damage, not the loss of that text.
"""
from __future__ import annotations

import hashlib

from harness import prompts
from harness.systems.base import answer_from_prefix


class WordsDeletedCascade:
    def __init__(self, cascade, words):
        from harness.positions import normalise_word

        self.inner, self.words = cascade, frozenset(words)
        self._normalise = normalise_word
        digest = hashlib.sha256("\n".join(sorted(self.words)).encode()).hexdigest()[:12]
        self.name = f"{cascade.name}-deleted[{len(self.words)} words]"
        self.fingerprint = f"deleted[{digest}]({cascade.fingerprint})"
        self.needs_audio = cascade.needs_audio
        self.backbone = cascade.backbone

    def delete(self, text: str) -> str:
        return " ".join(w for w in text.split() if self._normalise(w) not in self.words)

    def answer(self, task, item, audio):
        transcript = self.delete(self.inner.transcribe(item, audio))
        ids = self.backbone.prompt_ids(prompts.messages(task, item, transcript))
        return answer_from_prefix(self.backbone, task, item, self.backbone.embed(ids), transcript)
