"""The implicit cascade: the text the logit lens reads at one layer, fed to the backbone as the transcript.

If a speech-LLM is a cascade in disguise, the text it carries internally should be enough to answer like the
explicit cascade does (the paper: Ultravox's layer-31 text → Llama-3.1-8B agrees with the explicit cascade at
κ 0.943). ``ImplicitCascade`` is a System, so its answers go through ``harness.runner`` and its cache exactly
like the cascade's; the reading rule is ``lens.lens_text`` (top-1 at the audio positions, repeats collapsed,
specials dropped). The text goes into the very prompt the cascade uses (``prompts.messages``), answered by
``answer_from_prefix`` — by default on the speech-LLM's own text view of its backbone, or on ``backbone``
(e.g. the matched cascade's, when the speech-LLM's LLM was further trained, as Qwen2-Audio's was).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness import prompts
from harness.audio import Audio, Condition
from harness.runner import accuracy
from harness.stats import DEFAULT_RESAMPLES, Agreement, agreement
from harness.systems.base import Answer, answer_from_prefix
from harness.tasks import Item, Task, normalize_answer

from . import lens

READING_VERSION = "lens-top1-collapse-v1"   # part of the fingerprint: bump when lens_text changes


class ImplicitCascade:
    """Answers from the text that ``speech`` carries at residual entry ``layer`` (lens reading)."""

    needs_audio = True

    def __init__(self, speech, layer: int, *, backbone=None, name: str | None = None):
        n_entries = len(speech.decoder_layers) + 1
        if not 0 <= layer < n_entries:
            raise ValueError(f"layer {layer} out of range: {speech.name} has residual entries 0..{n_entries - 1}")
        self.speech, self.layer = speech, int(layer)
        self.backbone = backbone or speech.backbone
        self.name = name or f"implicit-cascade[{speech.name}@L{layer}]"
        self.fingerprint = (f"implicit-cascade[{speech.fingerprint}@L{layer}:{READING_VERSION} → "
                            f"{self.backbone.fingerprint}]")

    def transcript(self, task: Task, item: Item, audio: Audio) -> str:
        ids = lens.top1_tokens(self.speech, task, item, audio, [self.layer])[0]
        return lens.lens_text(self.speech, ids)

    def answer(self, task: Task, item: Item, audio: Audio | None) -> Answer:
        if audio is None:
            raise ValueError(f"item {item.id!r}: {self.name} needs audio (got none)")
        text = self.transcript(task, item, audio)
        ids = self.backbone.prompt_ids(prompts.messages(task, item, text))
        return answer_from_prefix(self.backbone, task, item, self.backbone.embed(ids), text)


@dataclass(frozen=True)
class ImplicitResult:
    """κ(implicit cascade, explicit cascade) beside κ(speech-LLM, explicit cascade), same items."""

    system: str
    task: str
    layer: int
    n: int
    implicit_vs_cascade: Agreement
    speech_vs_cascade: Agreement
    accuracy: dict                     # implicit / speech / cascade → accuracy
    transcripts: dict                  # first items: id → the implicit transcript

    def to_dict(self) -> dict:
        return {"system": self.system, "task": self.task, "layer": self.layer, "n": self.n,
                "kappa_implicit_vs_cascade": _agreement_dict(self.implicit_vs_cascade),
                "kappa_speech_vs_cascade": _agreement_dict(self.speech_vs_cascade),
                "accuracy": dict(self.accuracy), "transcripts": dict(self.transcripts)}


def _agreement_dict(a: Agreement) -> dict:
    return {"kappa": a.kappa, "ci_low": a.ci_low, "ci_high": a.ci_high, "raw": a.raw, "n": a.n,
            "text": str(a)}


def implicit_cascade_agreement(runner, speech, cascade, task: Task, items: Sequence[Item], layer: int, *,
                               condition: Condition | str = "clean", backbone=None, seed: int = 0,
                               n_resamples: int = DEFAULT_RESAMPLES, examples: int = 5) -> ImplicitResult:
    """Answers of the implicit cascade, the speech-LLM and the explicit ``cascade`` via ``runner``; their κ."""
    implicit = ImplicitCascade(speech, layer, backbone=backbone)
    got = {name: runner.answers(system, task, items, condition)
           for name, system in (("implicit", implicit), ("speech", speech), ("cascade", cascade))}
    norm = normalize_answer if task.kind == "open_qa" else (lambda c: c)   # κ compares with ==
    choices = {name: [norm(a.choice) for a in answers] for name, answers in got.items()}
    k, kw = len(task.labels) or None, dict(seed=seed, n_resamples=n_resamples)
    return ImplicitResult(
        system=speech.name, task=task.name, layer=int(layer), n=len(items),
        implicit_vs_cascade=agreement(choices["implicit"], choices["cascade"], n_categories=k, **kw),
        speech_vs_cascade=agreement(choices["speech"], choices["cascade"], n_categories=k, **kw),
        accuracy={name: accuracy(answers) for name, answers in got.items()},
        transcripts={a.item_id: a.transcript for a in got["implicit"][:examples]})
