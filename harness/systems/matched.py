"""The matched cascade, derived from the speech-LLM's spec — backbone, revision and chat template are never
configured twice. The cascade's backbone is loaded from ``spec.backbone`` (its own chat template comes with
its tokenizer); the instruction text is ``prompts.messages`` for both sides.
"""
from __future__ import annotations

from harness.specs import ModelSpec


def matched_backbone(spec: ModelSpec) -> tuple[str, str]:
    """(hub id, revision) of the text LLM the matched cascade uses."""
    if not spec.has_cascade:
        raise ValueError(f"{spec.id}: an {spec.loader} model has no matched cascade")
    return spec.backbone.repo, spec.backbone.revision


def matched_cascade(spec: ModelSpec, *, asr=None, device: str = "cpu", dtype: str | None = None):
    """Whisper (``spec.asr`` unless an ASR is given) → ``spec.backbone``; same prompt code as the speech-LLM."""
    from harness.asr import load_asr
    from harness.lm import load_backbone
    from harness.systems.cascade import Cascade

    repo, revision = matched_backbone(spec)
    backbone = load_backbone(repo, revision, device=device, dtype=dtype or spec.dtype)
    return Cascade(asr or load_asr(spec.asr, device), backbone, name=f"cascade[{spec.id}]")
