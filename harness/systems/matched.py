"""The matched cascade, derived from the speech-LLM's spec — backbone, revision and chat template are never
configured twice. Two kinds (``spec.matched_cascade`` says which the claims use):

* **self** — the speech-LLM's own language model reading the transcript: the same module in memory, the same
  weights, the prompt rendered by the speech-LLM's own ``render`` (same chat template), the transcript where the
  audio placeholder was. For adapter-only designs (Ultravox, Granite-Speech, Phi-4-MM with its speech LoRA off)
  this *is* the paper's matched cascade, and one model is loaded, not two. For jointly-trained models
  (Qwen2-Audio, Qwen2.5-Omni) it is the only exact match. LoRA adapters of the speech path (PEFT-loaded) are
  switched off for the text path and on again for the speech path, as the models' own text-only ``generate`` does.
* **separate** — ``spec.backbone`` loaded on its own (its own tokenizer and chat template): the paper's cascade
  for jointly-trained models, kept beside the self-cascade so both κ can be reported.

The instruction text is ``prompts.messages`` for both kinds and both sides.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from harness.lm import Backbone
from harness.specs import ModelSpec


def matched_backbone(spec: ModelSpec) -> tuple[str, str]:
    """(hub id, revision) of the text LLM the *separate* matched cascade uses."""
    if not spec.has_cascade:
        raise ValueError(f"{spec.id}: an {spec.loader} model has no matched cascade")
    return spec.backbone.repo, spec.backbone.revision


def matched_cascade(spec: ModelSpec, *, asr=None, device: str = "cpu", dtype: str | None = None):
    """The separate cascade: Whisper (``spec.asr`` unless an ASR is given) → ``spec.backbone``; same prompt code
    as the speech-LLM."""
    from harness.asr import load_asr
    from harness.lm import load_backbone
    from harness.systems.cascade import Cascade

    repo, revision = matched_backbone(spec)
    backbone = load_backbone(repo, revision, device=device, dtype=dtype or spec.dtype)
    return Cascade(asr or load_asr(spec.asr, device), backbone, name=f"cascade[{spec.id}]")


# -- the self-cascade ------------------------------------------------------------------------------------------
def _peft_switches(model):
    """(on, off) for the PEFT adapters loaded into ``model`` (no-ops when there are none)."""
    if not getattr(model, "_hf_peft_config_loaded", False):
        return (lambda: None), (lambda: None)
    return model.enable_adapters, model.disable_adapters


@dataclass
class SelfBackbone(Backbone):
    """The speech-LLM's language model as a text backbone: prompts rendered by the speech-LLM's own ``render``."""

    render: object = None              # messages → prompt text (the speech-LLM's chat template)

    def prompt_ids(self, messages: Sequence[dict]) -> list[int]:
        return list(self.tokenizer(self.render(list(messages)), add_special_tokens=False)["input_ids"])


def self_cascade(system, *, asr=None, asr_name: str = "large-v3", device: str = "cpu", name: str | None = None):
    """Whisper → ``system``'s own language model (the very module the speech path uses), same chat template.

    ``system``: a loaded SpeechLLM (``ultravox`` or ``hf_native``) — ``render``, ``backbone`` (a TextView over the
    model that answers from ``inputs_embeds``) and ``model`` are used as they are."""
    from harness.asr import load_asr
    from harness.systems.cascade import Cascade
    from harness.systems.speech_llm import TextView

    view = system.backbone.model                       # the speech path's TextView
    inner = view.inner
    on, off = _peft_switches(getattr(system, "model", inner))
    speech_before = view._before_call

    def speech_call(m):                                # speech path: adapters on
        on()
        speech_before(m)

    def text_call(m):                                  # text path: adapters off
        off()
        speech_before(m)

    view._before_call = speech_call
    text_view = TextView(inner, text_call)
    backbone = SelfBackbone(model=text_view, tokenizer=system.backbone.tokenizer,
                            model_id=f"self:{system.backbone.model_id}", revision=system.backbone.revision,
                            render=system.render)
    return Cascade(asr or load_asr(asr_name, device), backbone, name=name or f"self-cascade[{system.name}]")
