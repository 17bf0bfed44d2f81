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
    """(on, off) for the PEFT LoRA layers inside ``model`` (no-ops when there are none). Goes to the layers
    themselves (what transformers' ``enable_adapters``/``disable_adapters`` do), so adapters injected by peft
    directly are switched as well as ones loaded through transformers."""
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:
        return (lambda: None), (lambda: None)
    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]

    def switch(enabled: bool):
        for layer in layers:
            layer.enable_adapters(enabled)

    return (lambda: switch(True)), (lambda: switch(False))


@dataclass
class SelfBackbone(Backbone):
    """The speech-LLM's language model as a text backbone: prompts rendered by the speech-LLM's own ``render``."""

    render: object = None              # messages → prompt text (the speech-LLM's chat template)

    def prompt_ids(self, messages: Sequence[dict]) -> list[int]:
        return list(self.tokenizer(self.render(list(messages)), add_special_tokens=False)["input_ids"])


def self_cascade(system, *, asr=None, asr_name: str = "large-v3", device: str = "cpu", name: str | None = None,
                 oracle: bool = False):
    """Whisper → ``system``'s own language model (the very module the speech path uses), same chat template.

    ``system``: a loaded SpeechLLM (``ultravox`` or ``hf_native``) — ``render``, ``backbone`` (a TextView over the
    model that answers from ``inputs_embeds``) and ``model`` are used as they are. ``oracle``: the item's text
    instead of a transcript (no ASR)."""
    from harness.systems.cascade import Cascade
    from harness.systems.speech_llm import TextView

    view = system.backbone.model                       # the speech path's TextView
    inner = view.inner
    on, off = _peft_switches(getattr(system, "model", inner))
    if not hasattr(view, "speech_before_call"):        # first self-cascade of this system: switch adapters on
        view.speech_before_call = view._before_call    # for the speech path from now on

        def speech_call(m):
            on()
            view.speech_before_call(m)

        view._before_call = speech_call

    def text_call(m):                                  # text path: adapters off
        off()
        view.speech_before_call(m)

    backbone = SelfBackbone(model=TextView(inner, text_call), tokenizer=system.backbone.tokenizer,
                            model_id=f"self:{system.backbone.model_id}", revision=system.backbone.revision,
                            render=system.render)
    if oracle:
        return Cascade(None, backbone, oracle=True, name=name or f"self-oracle[{system.name}]")
    if asr is None:
        from harness.asr import load_asr

        asr = load_asr(asr_name, device)
    return Cascade(asr, backbone, name=name or f"self-cascade[{system.name}]")
