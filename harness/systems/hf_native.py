"""One adapter for every speech-LLM with a native transformers class; per-family differences in ``FAMILIES``.

Inputs: the prompt is rendered with the model's own chat template (processor's if it has one, else its
tokenizer's) with the family's audio placeholder where the cascade puts the transcript, ``add_generation_prompt``
on, exactly like ``lm.Backbone.prompt_ids``. With a real processor (``Family.processor_call``) the processor
expands the placeholder and extracts features; otherwise (processor not constructible: needs torchvision,
torchaudio or mistral-common) the family's feature function runs and the single audio token is expanded to
the number of audio embeddings the model itself produces.

Merging: the prompt embeddings are captured *from the model's own forward* — at the input of its text decoder
(or, for Phi-4-MM, the output of its ``embed_tokens_extend``) — and the forward is stopped there. Nothing about
how audio is merged is re-implemented here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from harness.audio import SAMPLE_RATE, Audio
from harness.systems.speech_llm import SpeechLLM


# -- feature functions (used when the processor is not available) -------------------------------------------
def _whisper(fe, audio: Audio, mask_key: str | None) -> dict:
    out = fe(audio.samples, sampling_rate=SAMPLE_RATE, return_tensors="pt", return_attention_mask=True)
    feats = {"input_features": out["input_features"]}
    if mask_key:
        feats[mask_key] = out["attention_mask"]
    return feats


def _granite_mel(fe, audio: Audio) -> dict:
    """GraniteSpeechFeatureExtractor's features without torchaudio: 80 log-mels (n_fft 512, win 400, hop 160,
    htk, power 2), max-8 floor, /4+1, odd frame dropped, pairs stacked → 160. Used only without torchaudio."""
    from transformers.audio_utils import mel_filter_bank

    x = torch.from_numpy(np.array(audio.samples, dtype=np.float32))
    spec = torch.stft(x, n_fft=512, hop_length=160, win_length=400, window=torch.hann_window(400),
                      center=True, pad_mode="reflect", return_complex=True).abs() ** 2      # [257, frames]
    fb = torch.from_numpy(mel_filter_bank(num_frequency_bins=257, num_mel_filters=80, min_frequency=0.0,
                                          max_frequency=SAMPLE_RATE / 2, sampling_rate=SAMPLE_RATE,
                                          norm=None, mel_scale="htk")).float()              # [257, 80]
    logmel = (spec.T @ fb).clamp(min=1e-10).log10()
    logmel = torch.maximum(logmel, logmel.max() - 8.0) / 4 + 1
    if logmel.shape[0] % 2:
        logmel = logmel[:-1]
    return {"input_features": logmel.reshape(1, -1, 160)}


def _phi4(fe, audio: Audio) -> dict:
    out = fe(audio.samples, sampling_rate=SAMPLE_RATE, return_tensors="pt")
    return {"audio_input_features": out["audio_input_features"], "audio_embed_sizes": out["audio_embed_sizes"],
            "audio_attention_mask": out.get("audio_attention_mask")}


def _conv_len(n: int) -> int:  # Qwen audio encoders: conv stride 2 then pool 2
    return ((n - 1) // 2 + 1 - 2) // 2 + 1


def _voxtral_n_audio(model, feats: dict) -> int:
    """Voxtral's audio embeddings: the encoder's frames (conv stride 2), ``intermediate_size / hidden_size`` of
    them stacked per embedding. Counted from the config: running the encoder only to count its output doubled
    the cost of every answer on a CPU (tests/test_adapters.py checks it against the encoder)."""
    cfg = model.config.audio_config
    batch, frames = feats["input_features"].shape[0], feats["input_features"].shape[-1]
    return batch * ((frames - 1) // 2 + 1) * cfg.hidden_size // cfg.intermediate_size


# -- the per-family table --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Family:
    hf_class: str
    slot: Callable[[Any], str]                         # tokenizer → placeholder text in the message
    features: Callable[[Any, Audio], dict]              # (feature extractor, audio) → model kwargs
    n_audio: Callable[[Any, dict], int]                 # (model, features) → audio embeddings in the prompt
    processor_call: bool = False                        # processor(text=, audio=) expands + extracts
    merge: str = "decoder"                              # "decoder": text decoder's inputs_embeds; else a module path
    submodel: str | None = None                         # e.g. Qwen2.5-Omni answers with its thinker
    before_text_call: Callable[[Any], None] | None = None
    notes: str = ""


def _reset_rope_deltas(model) -> None:
    """Qwen2.5-Omni caches mRoPE deltas between calls; audio-only prompts have delta 0 → sequential positions."""
    model.rope_deltas = None


FAMILIES: dict[str, Family] = {
    "qwen2_audio": Family(
        "Qwen2AudioForConditionalGeneration",
        slot=lambda tok: "<|audio_bos|>" + tok.audio_token + "<|audio_eos|>",
        features=lambda fe, a: _whisper(fe, a, "feature_attention_mask"),
        n_audio=lambda m, f: _conv_len(int(f["feature_attention_mask"].sum())),
        processor_call=True),
    "voxtral": Family(
        "VoxtralForConditionalGeneration",
        slot=lambda tok: (getattr(tok, "begin_audio_token", None) or "[BEGIN_AUDIO]") + tok.audio_token,
        features=lambda fe, a: _whisper(fe, a, None),
        n_audio=_voxtral_n_audio,
        notes="VoxtralProcessor needs mistral-common's tokenizer; inputs built here (placeholder expanded)."),
    "granite_speech": Family(
        "GraniteSpeechForConditionalGeneration",
        slot=lambda tok: tok.audio_token,
        features=lambda fe, a: _granite_mel(fe, a),
        n_audio=lambda m, f: int(m.get_audio_features(f["input_features"]).pooler_output.shape[1]),
        notes="LoRA adapter active with audio; generation bypasses the class's adapter toggle (see TextView)."),
    "phi4_multimodal": Family(
        "Phi4MultimodalForCausalLM",
        slot=lambda tok: tok.audio_token,
        features=_phi4,
        n_audio=lambda m, f: int(f["audio_embed_sizes"].sum()),
        merge="model.embed_tokens_extend",
        notes="Phi4MultimodalProcessor needs torchvision; the real checkpoint also needs its speech LoRA."),
    "qwen2_5_omni": Family(
        "Qwen2_5OmniForConditionalGeneration",
        slot=lambda tok: "<|audio_bos|>" + tok.audio_token + "<|audio_eos|>",
        features=lambda fe, a: _whisper(fe, a, "feature_attention_mask"),
        n_audio=lambda m, f: _conv_len(int(f["feature_attention_mask"].sum())),
        submodel="thinker", before_text_call=_reset_rope_deltas,
        notes="answers with the thinker (text output); the talker is never run."),
}

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
        raise ValueError(f"{spec.id}: hf_class {spec.hf_class!r} has no entry in hf_native.FAMILIES "
                         f"(known: {sorted(FAMILY_BY_CLASS)})")
    cls = getattr(transformers, spec.hf_class)
    model = cls.from_pretrained(spec.repo, revision=spec.revision, dtype=getattr(torch, dtype or spec.dtype),
                                device_map=device if device != "cuda" else "auto")
    if family == "qwen2_5_omni" and hasattr(model, "disable_talker"):
        model.disable_talker()
    processor = AutoProcessor.from_pretrained(spec.repo, revision=spec.revision)
    return HFNativeSpeechLLM(model, processor, family, model_id=spec.repo, revision=spec.revision, name=spec.id)
