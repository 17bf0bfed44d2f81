"""Model families: every fact the suite knows about a family, on one entry of ``FAMILIES``.

Why one table: a family's facts used to be spread over seven files (the adapter's table, the LEACE time base,
the registry's backbone check, the release watcher's searches, a pytest marker, the tiny test configs), and a
new family missed one of them silently. Each reader now takes what it needs from here:

- ``harness.specs`` — a registry entry's ``family`` must be one of these; its ``[backbone]`` repo must match
  ``backbones``;
- the root ``conftest.py`` — one pytest marker per family (``-m ultravox``), described by ``description``;
- ``harness.watch`` — ``hub_search`` (author, search) pairs: a hit not in the registry is a new family member;
- ``harness.positions`` — ``seconds_per_position``: seconds of audio behind one audio embedding;
- ``harness.systems.hf_native`` — ``native``: how the generic adapter drives the family's transformers class;
- ``tests/tiny_models.py`` — ``tiny``: a tiny random model of that class, built offline.

This module imports no model code at import time (the registry and pytest's start-up read it); the feature
functions and tiny builders import torch/transformers when called.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class Native:
    """How ``harness.systems.hf_native.HFNativeSpeechLLM`` drives one native transformers class."""

    hf_class: str
    slot: Callable[[Any], str]                         # tokenizer → placeholder text in the message
    features: Callable[[Any, Any], dict]               # (feature extractor, Audio) → model kwargs
    n_audio: Callable[[Any, dict], int]                # (model, features) → audio embeddings in the prompt
    processor_call: bool = False                       # processor(text=, audio=) expands + extracts
    merge: str = "decoder"                             # "decoder": text decoder's inputs_embeds; else a module path
    submodel: str | None = None                        # e.g. Qwen2.5-Omni answers with its thinker
    before_text_call: Callable[[Any], None] | None = None
    after_load: Callable[[Any], None] | None = None    # run once on a checkpoint loaded from the hub
    notes: str = ""


@dataclass(frozen=True)
class Tiny:
    """A tiny, randomly initialised model of the family's exact class (milliseconds on a CPU), built offline."""

    tokens: Mapping[str, str]                          # tokenizer attribute → the family's special token text
    build: Callable[[Any, int, int], tuple]            # (tokenizer, vocab size, audio token id) → (model, processor)


@dataclass(frozen=True)
class Family:
    name: str                                          # the registry's ``family`` and the pytest marker
    description: str                                   # the marker's help text
    backbones: tuple[str, ...] = ()                    # the [backbone] repo must contain one (case-insensitive)
    hub_search: tuple[tuple[str, str], ...] = ()       # (author, search) pairs for the release watcher
    seconds_per_position: Callable[[Any], float] | None = None   # model config → seconds per audio embedding
    native: Native | None = None
    tiny: Tiny | None = None


# -- feature functions (used when the family's processor is not available) ----------------------------------
def _whisper(fe, audio, mask_key: str | None) -> dict:
    from harness.audio import SAMPLE_RATE

    out = fe(audio.samples, sampling_rate=SAMPLE_RATE, return_tensors="pt", return_attention_mask=True)
    feats = {"input_features": out["input_features"]}
    if mask_key:
        feats[mask_key] = out["attention_mask"]
    return feats


def _granite_mel(fe, audio) -> dict:
    """GraniteSpeechFeatureExtractor's features without torchaudio: 80 log-mels (n_fft 512, win 400, hop 160,
    htk, power 2), max-8 floor, /4+1, odd frame dropped, pairs stacked → 160. Used only without torchaudio."""
    import numpy as np
    import torch
    from transformers.audio_utils import mel_filter_bank

    from harness.audio import SAMPLE_RATE

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


def _phi4(fe, audio) -> dict:
    from harness.audio import SAMPLE_RATE

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


def _reset_rope_deltas(model) -> None:
    """Qwen2.5-Omni caches mRoPE deltas between calls; audio-only prompts have delta 0 → sequential positions."""
    model.rope_deltas = None


def _disable_talker(model) -> None:
    """Qwen2.5-Omni answers in text with its thinker; the speech talker is never run, so it is not kept."""
    if hasattr(model, "disable_talker"):
        model.disable_talker()


# -- tiny random models (tests/tiny_models.py builds them with the packaged tokenizer) -------------------------
# Sizes are chosen to run in milliseconds; input lengths follow the real configs (30 s Whisper windows, etc.).
H, LAYERS, HEADS, KV = 32, 2, 4, 2          # text decoder
AH, ALAYERS, AHEADS = 16, 1, 2              # audio encoder


class ManualProcessor:
    """Feature extractor + tokenizer pair for families whose processor cannot be built offline."""

    def __init__(self, feature_extractor, tokenizer):
        self.feature_extractor, self.tokenizer = feature_extractor, tokenizer
        self.chat_template = tokenizer.chat_template


def _text(vocab: int, **extra) -> dict:
    return dict(vocab_size=vocab, hidden_size=H, intermediate_size=2 * H, num_hidden_layers=LAYERS,
                num_attention_heads=HEADS, num_key_value_heads=KV, max_position_embeddings=4096, **extra)


def _whisper_fe(n_mels: int):
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=n_mels)


def _tiny_qwen2_audio(tok, vocab, audio_id):
    from transformers import (Qwen2AudioConfig, Qwen2AudioEncoderConfig, Qwen2AudioForConditionalGeneration,
                              Qwen2AudioProcessor, Qwen2Config)

    cfg = Qwen2AudioConfig(
        audio_config=Qwen2AudioEncoderConfig(num_mel_bins=128, encoder_layers=ALAYERS, encoder_attention_heads=AHEADS,
                                             encoder_ffn_dim=2 * AH, d_model=AH, max_source_positions=1500),
        text_config=Qwen2Config(**_text(vocab)), audio_token_index=audio_id)
    proc = Qwen2AudioProcessor(feature_extractor=_whisper_fe(128), tokenizer=tok, chat_template=tok.chat_template)
    return Qwen2AudioForConditionalGeneration(cfg).eval(), proc


def _tiny_voxtral(tok, vocab, audio_id):
    from transformers import LlamaConfig, VoxtralConfig, VoxtralEncoderConfig, VoxtralForConditionalGeneration

    cfg = VoxtralConfig(
        audio_config=VoxtralEncoderConfig(hidden_size=AH, intermediate_size=4 * AH, num_hidden_layers=ALAYERS,
                                          num_attention_heads=AHEADS, num_mel_bins=128),
        text_config=LlamaConfig(**_text(vocab, head_dim=H // HEADS)), audio_token_id=audio_id)
    # VoxtralProcessor needs mistral-common's tokenizer: the adapter builds Voxtral inputs itself.
    return VoxtralForConditionalGeneration(cfg).eval(), ManualProcessor(_whisper_fe(128), tok)


def _tiny_granite(tok, vocab, audio_id):
    from transformers import (Blip2QFormerConfig, GraniteConfig, GraniteSpeechConfig, GraniteSpeechEncoderConfig,
                              GraniteSpeechForConditionalGeneration)

    cfg = GraniteSpeechConfig(
        text_config=GraniteConfig(**_text(vocab)),
        encoder_config=GraniteSpeechEncoderConfig(input_dim=160, num_layers=ALAYERS, hidden_dim=AH, num_heads=AHEADS,
                                                  output_dim=8, context_size=20, max_pos_emb=64, dropout=0.0),
        projector_config=Blip2QFormerConfig(hidden_size=AH, num_hidden_layers=1, num_attention_heads=AHEADS,
                                            intermediate_size=2 * AH, encoder_hidden_size=AH,
                                            cross_attention_frequency=1),
        audio_token_index=audio_id, has_lora_adapter=False)
    # GraniteSpeechFeatureExtractor needs torchaudio (not installable here): manual inputs, see hf_native.
    return GraniteSpeechForConditionalGeneration(cfg).eval(), ManualProcessor(None, tok)


def _tiny_phi4(tok, vocab, audio_id):
    from transformers import (Phi4MultimodalAudioConfig, Phi4MultimodalConfig, Phi4MultimodalFeatureExtractor,
                              Phi4MultimodalForCausalLM, Phi4MultimodalVisionConfig)

    cfg = Phi4MultimodalConfig(
        **_text(vocab), pad_token_id=tok.pad_token_id or 0, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        vision_config=Phi4MultimodalVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                                 num_attention_heads=2, image_size=28, patch_size=14, crop_size=28,
                                                 image_token_id=tok.image_token_id),
        audio_config=Phi4MultimodalAudioConfig(hidden_size=AH, intermediate_size=2 * AH, num_blocks=ALAYERS,
                                               num_attention_heads=AHEADS, ext_pw_out_channel=AH,
                                               depthwise_separable_out_channel=AH, nemo_conv_channels=AH,
                                               audio_token_id=audio_id))
    # Phi4MultimodalProcessor needs torchvision for its image half: feature extractor + manual expansion.
    return Phi4MultimodalForCausalLM(cfg).eval(), ManualProcessor(Phi4MultimodalFeatureExtractor(), tok)


def _tiny_qwen2_5_omni(tok, vocab, audio_id):
    from transformers import (Qwen2_5OmniAudioEncoderConfig, Qwen2_5OmniTextConfig,
                              Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration,
                              Qwen2_5OmniVisionEncoderConfig)

    text = _text(vocab)
    cfg = Qwen2_5OmniThinkerConfig(
        audio_config=Qwen2_5OmniAudioEncoderConfig(num_mel_bins=128, encoder_layers=ALAYERS,
                                                   encoder_attention_heads=AHEADS, encoder_ffn_dim=2 * AH,
                                                   d_model=AH, output_dim=H),
        vision_config=Qwen2_5OmniVisionEncoderConfig(depth=1, hidden_size=16, intermediate_size=32, num_heads=2,
                                                     out_hidden_size=H, fullatt_block_indexes=[0]),
        text_config=Qwen2_5OmniTextConfig(**text, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                                   "mrope_section": [1, 1, 2]}),
        audio_token_index=audio_id, image_token_index=tok.image_token_id, video_token_index=tok.video_token_id,
        audio_start_token_id=tok.audio_bos_token_id, audio_end_token_id=tok.audio_eos_token_id)
    cfg.vision_start_token_id = tok.vision_bos_token_id  # the real config.json carries it as an extra key
    # Qwen2_5OmniProcessor needs torchvision (video processor): feature extractor + manual expansion.
    return Qwen2_5OmniThinkerForConditionalGeneration(cfg).eval(), ManualProcessor(_whisper_fe(128), tok)


_QWEN_AUDIO_TOKENS = {"audio_token": "<|AUDIO|>", "audio_bos_token": "<|audio_bos|>",
                      "audio_eos_token": "<|audio_eos|>"}


def _qwen_slot(tok) -> str:
    """Qwen2-Audio and Qwen2.5-Omni: the audio placeholder between its begin/end markers."""
    return "<|audio_bos|>" + tok.audio_token + "<|audio_eos|>"


def _qwen_features(fe, audio):
    return _whisper(fe, audio, "feature_attention_mask")


def _qwen_n_audio(model, feats) -> int:
    return _conv_len(int(feats["feature_attention_mask"].sum()))


# -- the table ---------------------------------------------------------------------------------------------------
# Seconds per audio position: every front end reads 10 ms log-mel frames. Ultravox: Whisper's 20 ms × stack_factor
# (0.16 s at 8); voxtral: Whisper conv (stride 2 → 20 ms), then intermediate_size / hidden_size frames stacked
# (4 → 0.08 s); qwen2_audio, qwen2_5_omni: stride-2 conv then stride-2 pooling (0.04 s); granite_speech: 20 ms
# features (two mel frames stacked), the Q-former emits window_size // downsample_rate queries per window (0.1 s);
# phi4_multimodal: time_reduction × downsample_rate mel frames (0.08 s).
FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family(
        "ultravox", "Ultravox family (fixie-ai)",
        backbones=("llama", "gemma", "qwen"),
        hub_search=(("fixie-ai", "ultravox"),),
        seconds_per_position=lambda cfg: 0.02 * int(cfg.stack_factor)),
    Family(
        "qwen2_audio", "Qwen2-Audio family",
        backbones=("qwen",),
        hub_search=(("Qwen", "Qwen2-Audio"),),
        seconds_per_position=lambda cfg: 0.04,
        native=Native(
            "Qwen2AudioForConditionalGeneration",
            slot=_qwen_slot, features=_qwen_features, n_audio=_qwen_n_audio,
            processor_call=True),
        tiny=Tiny(_QWEN_AUDIO_TOKENS, _tiny_qwen2_audio)),
    Family(
        "voxtral", "Voxtral family",
        backbones=("mistral", "ministral"),
        hub_search=(("mistralai", "Voxtral"),),
        seconds_per_position=lambda cfg: 0.02 * (cfg.audio_config.intermediate_size // cfg.audio_config.hidden_size),
        native=Native(
            "VoxtralForConditionalGeneration",
            slot=lambda tok: (getattr(tok, "begin_audio_token", None) or "[BEGIN_AUDIO]") + tok.audio_token,
            features=lambda fe, a: _whisper(fe, a, None),
            n_audio=_voxtral_n_audio,
            notes="VoxtralProcessor needs mistral-common's tokenizer; inputs built here (placeholder expanded)."),
        tiny=Tiny({"audio_token": "[AUDIO]", "begin_audio_token": "[BEGIN_AUDIO]"}, _tiny_voxtral)),
    Family(
        "granite_speech", "Granite-Speech family",
        backbones=("granite",),
        hub_search=(("ibm-granite", "granite-speech"),),
        seconds_per_position=lambda cfg: 0.02 * cfg.window_size / (cfg.window_size // cfg.downsample_rate),
        native=Native(
            "GraniteSpeechForConditionalGeneration",
            slot=lambda tok: tok.audio_token,
            features=lambda fe, a: _granite_mel(fe, a),
            n_audio=lambda m, f: int(m.get_audio_features(f["input_features"]).pooler_output.shape[1]),
            notes="LoRA adapter active with audio; generation bypasses the class's adapter toggle (see TextView)."),
        tiny=Tiny({"audio_token": "<|audio|>"}, _tiny_granite)),
    Family(
        "phi4_multimodal", "Phi-4-multimodal family",
        backbones=("phi-4",),
        hub_search=(("microsoft", "multimodal"),),
        seconds_per_position=lambda cfg: 0.01 * cfg.audio_config.time_reduction * cfg.audio_config.downsample_rate,
        native=Native(
            "Phi4MultimodalForCausalLM",
            slot=lambda tok: tok.audio_token,
            features=_phi4,
            n_audio=lambda m, f: int(f["audio_embed_sizes"].sum()),
            merge="model.embed_tokens_extend",
            notes="Phi4MultimodalProcessor needs torchvision; the real checkpoint also needs its speech LoRA."),
        tiny=Tiny({"audio_token": "<|endoftext11|>", "image_token": "<|endoftext10|>"}, _tiny_phi4)),
    Family(
        "qwen2_5_omni", "Qwen2.5-Omni family",
        backbones=("qwen2.5",),
        hub_search=(("Qwen", "Omni"),),
        seconds_per_position=lambda cfg: 0.04,
        native=Native(
            "Qwen2_5OmniForConditionalGeneration",
            slot=_qwen_slot, features=_qwen_features, n_audio=_qwen_n_audio,
            submodel="thinker", before_text_call=_reset_rope_deltas, after_load=_disable_talker,
            notes="answers with the thinker (text output); the talker is never run."),
        tiny=Tiny({**_QWEN_AUDIO_TOKENS, "image_token": "<|IMAGE|>", "video_token": "<|VIDEO|>",
                   "vision_bos_token": "<|vision_bos|>", "vision_eos_token": "<|vision_eos|>"}, _tiny_qwen2_5_omni)),
    Family("gemini", "Gemini (API)"),
    Family("reference", "the project's reference speech-LLMs (CPU, offline)"),
)}


def get(name: str) -> Family:
    """The family ``name``; a KeyError lists the known ones."""
    if name not in FAMILIES:
        raise KeyError(f"unknown family {name!r}; known: {', '.join(FAMILIES)} (add it to harness/families.py)")
    return FAMILIES[name]


def native_families() -> dict[str, Native]:
    """Family name → how the generic native adapter drives it, for the families that have a transformers class."""
    return {name: f.native for name, f in FAMILIES.items() if f.native is not None}
