"""One adapter for every speech-LLM with a native transformers class; per-family differences in ``FAMILIES``
(each family's ``native`` entry in :mod:`harness.families`).

Inputs: the prompt is rendered with the model's own chat template (processor's if it has one, else its
tokenizer's) with the family's audio placeholder where the cascade puts the transcript, ``add_generation_prompt``
on, exactly like ``lm.Backbone.prompt_ids``. With a real processor (``Native.processor_call``) the processor
expands the placeholder and extracts features; otherwise (processor not constructible: needs torchvision,
torchaudio or mistral-common) the family's feature function runs and the single audio token is expanded to
the number of audio embeddings the model itself produces.

Merging: the prompt embeddings are captured *from the model's own forward* — at the input of its text decoder
(or, for Phi-4-MM, the output of its ``embed_tokens_extend``) — and the forward is stopped there. Nothing about
how audio is merged is re-implemented here.
"""
from __future__ import annotations

from typing import Any

import torch

from harness.audio import SAMPLE_RATE, Audio
from harness.families import Native, native_families
from harness.systems.speech_llm import SpeechLLM


# -- the per-family table: harness.families owns it (every fact of a family on one entry) ------------------
FAMILIES: dict[str, Native] = native_families()
FAMILY_BY_CLASS = {f.hf_class: name for name, f in FAMILIES.items()}


def _module(root, path: str):
    for part in path.split("."):
        root = getattr(root, part)
    return root


class HFNativeSpeechLLM(SpeechLLM):
    """Any ``FAMILIES`` model + its processor (or a feature-extractor/tokenizer pair)."""

    def __init__(self, model, processor, family: str, *, model_id: str, revision: str, name: str | None = None):
        self.family_name, self.family = family, FAMILIES[family]
        if self.family.submodel and hasattr(model, self.family.submodel):
            model = getattr(model, self.family.submodel)
        self.processor = processor
        tok = processor.tokenizer
        audio_id = getattr(model.config, "audio_token_id", None)
        if audio_id is None:
            audio_id = model.config.audio_config.audio_token_id
        super().__init__(model, tok, model_id=model_id, revision=revision, name=name or model_id,
                         audio_slot=self.family.slot(tok), audio_token_id=audio_id,
                         before_text_call=self.family.before_text_call)

    @property
    def _feature_extractor(self):
        p = self.processor
        return getattr(p, "feature_extractor", None) or getattr(p, "audio_processor", None)

    def render(self, messages: list[dict]) -> str:
        p = self.processor
        owner = p if hasattr(p, "apply_chat_template") and getattr(p, "chat_template", None) else p.tokenizer
        return owner.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def prepare(self, messages: list[dict], audio: Audio) -> dict[str, Any]:
        text = self.render(messages)
        if self.family.processor_call and callable(self.processor):
            out = self.processor(text=[text], audio=[audio.samples], sampling_rate=SAMPLE_RATE,
                                 return_tensors="pt")
            inputs = {k: v for k, v in out.items() if v is not None}
        else:
            inputs = {k: v for k, v in self.family.features(self._feature_extractor, audio).items() if v is not None}
            ids = self.processor.tokenizer(text, add_special_tokens=False)["input_ids"]
            if ids.count(self.audio_token_id) != 1:
                raise ValueError(f"{self.name}: the rendered prompt holds {ids.count(self.audio_token_id)} audio "
                                 f"tokens, expected 1 (placeholder {self.audio_slot!r})")
            with torch.no_grad():
                n = self.family.n_audio(self.model, self._to_model(inputs))
            k = ids.index(self.audio_token_id)
            ids = ids[:k] + [self.audio_token_id] * n + ids[k + 1:]
            inputs["input_ids"] = torch.tensor([ids])
            inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        return inputs

    def prefix_embeds(self, inputs: dict[str, Any]) -> torch.Tensor:
        if self.family.merge == "decoder":
            return self._capture(inputs, self.text_model)
        return self._capture(inputs, _module(self.model, self.family.merge), output=True)


# -- loading a real checkpoint (GPU box) -----------------------------------------------------------------
def load(spec, *, device: str = "cuda", dtype: str | None = None) -> HFNativeSpeechLLM:
    """Load ``spec`` (a ModelSpec with loader "hf_native") through its class and processor, bf16 + device_map."""
    import transformers
    from transformers import AutoProcessor

    family = FAMILY_BY_CLASS.get(spec.hf_class)
    if family is None:
        raise ValueError(f"{spec.id}: hf_class {spec.hf_class!r} is not the native class of any family in "
                         f"harness/families.py (known: {sorted(FAMILY_BY_CLASS)})")
    cls = getattr(transformers, spec.hf_class)
    model = cls.from_pretrained(spec.repo, revision=spec.revision, dtype=getattr(torch, dtype or spec.dtype),
                                device_map=device if device != "cuda" else "auto")
    if FAMILIES[family].after_load:
        FAMILIES[family].after_load(model)
    processor = AutoProcessor.from_pretrained(spec.repo, revision=spec.revision)
    return HFNativeSpeechLLM(model, processor, family, model_id=spec.repo, revision=spec.revision, name=spec.id)
