"""The matched cascade: faster-whisper transcript → the speech-LLM's own text backbone, same prompt.

``oracle=True`` replaces the ASR transcript by the item's gold text: the ceiling a perfect recogniser
would reach, used to tell ASR errors from backbone errors.
"""
from __future__ import annotations

from harness import prompts
from harness.asr import ASR
from harness.audio import Audio
from harness.lm import Backbone
from harness.systems.base import Answer, answer_from_prefix
from harness.tasks import Item, Task


class Cascade:
    def __init__(self, asr: ASR | None, backbone: Backbone, *, oracle: bool = False, name: str | None = None):
        if asr is None and not oracle:
            raise ValueError("a cascade needs an ASR model unless oracle=True")
        self.asr, self.backbone, self.oracle = asr, backbone, oracle
        front = "oracle" if oracle else asr.fingerprint
        self.name = name or ("oracle-cascade" if oracle else "cascade")
        self.fingerprint = f"cascade[{front} → {backbone.fingerprint}]"
        self.needs_audio = not oracle

    def transcribe(self, item: Item, audio: Audio | None) -> str:
        if self.oracle:
            return item.text
        if audio is None:
            raise ValueError(f"item {item.id!r}: the cascade needs audio (got none)")
        # kept on disk (keyed by the ASR's fingerprint and the clip's samples): every cascade of the same ASR,
        # its words-deleted twin and the LEACE labels read the same clip, and decode it once between them
        return self.asr.transcribe(audio, cached=True).text

    def answer(self, task: Task, item: Item, audio: Audio | None) -> Answer:
        transcript = self.transcribe(item, audio)
        ids = self.backbone.prompt_ids(prompts.messages(task, item, transcript))
        return answer_from_prefix(self.backbone, task, item, self.backbone.embed(ids), transcript)
