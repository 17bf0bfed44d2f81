"""Assemble a reference speech-LLM from packaged parts, held in transformers' own ``VoxtralForConditionalGeneration``.

Why Voxtral: it is exactly the Ultravox recipe's shape — a Whisper encoder (``VoxtralEncoder`` has
``WhisperEncoder``'s parameter names and shapes), a frame-stacking projector, and a Llama text model — and
SmolLM2 *is* a Llama. So the reference model is served by the same adapter as a real Voxtral checkpoint
(``harness.systems.hf_native``, family ``"voxtral"``), with no model-specific code.

The parts:
- ``model.audio_tower``: the packaged faster-whisper tiny.en encoder, converted (``whisper_ct2``). Frozen.
- ``model.language_model`` + ``lm_head``: the offline backbone (``harness.lm.load_backbone()``: SmolLM2-135M
  with the task LoRA merged), copied weight for weight. Frozen. ``lm_head`` is an untied copy of the
  embedding matrix (the backbone ties them; Voxtral's class does not declare the tie, and an untied copy
  saves with ``save_pretrained``); its values equal the backbone's.
- ``model.multi_modal_projector``: ``linear_1`` (4·384 = 1536 → 576, no bias) → GELU → ``linear_2``
  (576 → 576).
  Voxtral stacks 4 consecutive encoder frames: ``get_audio_features`` reshapes [1, positions, 384] to
  [positions / 4, audio_config.intermediate_size] — so ``intermediate_size`` must be 4 × d_model, which Whisper's
  FFN width (1536) already is. The only trainable part (``requires_grad`` is left on only here).
  Untrained: seeded random init, ``linear_2`` rescaled so that the output's RMS on a fixed calibration clip
  equals the RMS of the backbone's token embeddings (audio embeddings then enter at the scale text does).

Input length: ``VoxtralEncoder`` (like ``WhisperEncoder``) accepts **exactly** 2 × max_source_positions mel
frames. Whisper pads every clip to a 30 s window (3000 frames → 1500 positions → 375 audio embeddings);
here the window is ``chunk_seconds`` (default ``CHUNK_SECONDS`` = 10 s: 1000 frames → 500 positions, keeping
the first 500 rows of Whisper's sinusoidal position table → **125 audio embeddings**, 12.5 per second). Why
10 s: every prompt position costs a pass through the 30-layer backbone, and with 375 audio embeddings an
item costs ~2.4× more on CPU (measured ~12 s vs ~5 s per sentiment item on 2 busy cores) — and a projector
trainer pays that on every step. Task clips are ≤ ~6.3 s (measured, mini twins), and on speech frames the
10 s window's encoder output matches the 30 s window's with mean cosine 0.996 (min 0.976). The feature
extractor refuses audio longer than the window (``WindowedFeatureExtractor``) rather than cutting it.
``chunk_seconds`` must be even (positions must stack by 4); 30 reproduces Whisper's own convention.

Audio tokens: no new token is added (that would resize the backbone's embeddings). Two of SmolLM2's unused
special tokens stand in: ``<jupyter_output>`` (id 14) is the audio placeholder (``audio_token_id``), and
``<jupyter_start>`` (id 11) is offered as ``tokenizer.begin_audio_token``. (The adapter's voxtral slot
currently writes the literal text ``[BEGIN_AUDIO]`` before the placeholder, which SmolLM2 tokenises into 9
ordinary tokens; harmless, but see the note in the closing report.)
"""
from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from harness.systems.reference import whisper_ct2

AUDIO_TOKEN = "<jupyter_output>"        # id 14 in SmolLM2's vocabulary; never produced by the chat template
BEGIN_AUDIO_TOKEN = "<jupyter_start>"   # id 11
STACK = 4                               # encoder frames per audio embedding (Voxtral's reshape)
CALIBRATION_SEED = 1234
CHUNK_SECONDS = 10                      # the audio window (see "Input length" above)
MODEL_ID = "cascade-eq/ref-voxtral-tiny-smollm2"


class WindowedFeatureExtractor:
    """Whisper log-mels padded to the window; audio *longer* than the window raises instead of being cut
    (WhisperFeatureExtractor truncates silently, and the adapter would then answer from part of the clip)."""

    def __init__(self, chunk_seconds: int = CHUNK_SECONDS):
        self.chunk_seconds = chunk_seconds
        self.inner = whisper_ct2.feature_extractor(chunk_seconds)

    def __call__(self, samples, *args, **kwargs):
        if len(samples) > self.inner.n_samples:
            raise ValueError(f"audio of {len(samples) / 16_000:.1f} s is longer than this reference model's "
                             f"{self.chunk_seconds} s window; assemble it with a larger chunk_seconds (≤ 30)")
        return self.inner(samples, *args, **kwargs)

    def __getattr__(self, name):
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def save_pretrained(self, path):
        return self.inner.save_pretrained(path)


class ReferenceProcessor:
    """Feature extractor + tokenizer pair, the shape ``HFNativeSpeechLLM`` expects when no real processor exists
    (``VoxtralProcessor`` needs mistral-common's tokenizer)."""

    def __init__(self, feature_extractor, tokenizer):
        self.feature_extractor, self.tokenizer = feature_extractor, tokenizer
        self.chat_template = tokenizer.chat_template


def tokenizer(path: Path | None = None):
    """The backbone's tokenizer with ``audio_token``/``begin_audio_token`` attributes (no new ids)."""
    from transformers import AutoTokenizer

    from harness.lm import converted_checkpoint

    tok = AutoTokenizer.from_pretrained(path or converted_checkpoint(), extra_special_tokens={
        "audio_token": AUDIO_TOKEN, "begin_audio_token": BEGIN_AUDIO_TOKEN})
    tok.audio_token_id = tok.convert_tokens_to_ids(AUDIO_TOKEN)
    tok.begin_audio_token_id = tok.convert_tokens_to_ids(BEGIN_AUDIO_TOKEN)
    return tok


def check_chunk(chunk_seconds: int, max_source_positions: int = 1500) -> int:
    """Encoder positions for a ``chunk_seconds`` window (50 per second); must be a multiple of ``STACK``."""
    positions = int(chunk_seconds) * 50
    if int(chunk_seconds) != chunk_seconds or not 0 < positions <= max_source_positions or positions % STACK:
        raise ValueError(f"chunk_seconds={chunk_seconds}: need an even number of seconds in (0, 30] "
                         f"(encoder positions = 50·s must be a multiple of {STACK} and ≤ {max_source_positions})")
    return positions


def processor(chunk_seconds: int = CHUNK_SECONDS) -> ReferenceProcessor:
    return ReferenceProcessor(WindowedFeatureExtractor(chunk_seconds), tokenizer())


def config(encoder_cfg: dict, text_config, audio_token_id: int, chunk_seconds: int = CHUNK_SECONDS):
    """``VoxtralConfig`` for (converted Whisper encoder sizes, the backbone's ``LlamaConfig``, window length)."""
    from transformers import VoxtralConfig, VoxtralEncoderConfig

    if encoder_cfg["encoder_ffn_dim"] != STACK * encoder_cfg["d_model"]:
        raise ValueError("Voxtral's projector input is audio_config.intermediate_size = encoder FFN width; "
                         f"it must be {STACK} × d_model for frame stacking, got {encoder_cfg}")
    positions = check_chunk(chunk_seconds, encoder_cfg["max_source_positions"])
    audio = VoxtralEncoderConfig(
        hidden_size=encoder_cfg["d_model"], intermediate_size=encoder_cfg["encoder_ffn_dim"],
        num_hidden_layers=encoder_cfg["encoder_layers"], num_attention_heads=encoder_cfg["encoder_attention_heads"],
        num_mel_bins=encoder_cfg["num_mel_bins"], max_source_positions=positions,
        activation_function="gelu", scale_embedding=False)
    return VoxtralConfig(audio_config=audio, text_config=copy.deepcopy(text_config), audio_token_id=audio_token_id,
                         projector_hidden_act="gelu")


def calibration_features(chunk_seconds: int = CHUNK_SECONDS) -> torch.Tensor:
    """Log-mels of a fixed, seeded noise clip filling the window (no silence) for the projector's scale."""
    rng = np.random.default_rng(CALIBRATION_SEED)
    x = (0.05 * rng.standard_normal(16_000 * chunk_seconds)).astype(np.float32)
    return WindowedFeatureExtractor(chunk_seconds)(x, sampling_rate=16_000, return_tensors="pt")["input_features"]


@torch.no_grad()
def init_projector(model, seed: int = 0) -> None:
    """Seeded random projector (own generator: the global RNG is untouched), output RMS = embedding RMS."""
    proj = model.model.multi_modal_projector
    gen = torch.Generator().manual_seed(seed)
    for lin in (proj.linear_1, proj.linear_2):
        fan_in = lin.weight.shape[1]
        lin.weight.copy_(torch.randn(lin.weight.shape, generator=gen) / fan_in ** 0.5)
    target = model.get_input_embeddings().weight.float().pow(2).mean().sqrt()
    chunk = model.config.audio_config.max_source_positions // 50
    got = model.get_audio_features(calibration_features(chunk)).pooler_output.float().pow(2).mean().sqrt()
    proj.linear_2.weight.mul_(target / got)


def projector_weights(model) -> dict[str, torch.Tensor]:
    """The projector's state dict (detached copies): what a trainer saves under ``fixtures/reference/``."""
    return {k: v.detach().cpu().clone() for k, v in model.model.multi_modal_projector.state_dict().items()}


def state_digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def assemble(projector_state: dict | None = None, seed: int = 0, *, chunk_seconds: int = CHUNK_SECONDS,
             backbone=None):
    """(VoxtralForConditionalGeneration float32 eval, ReferenceProcessor, provenance dict).

    ``projector_state``: a ``multi_modal_projector`` state dict (``linear_1.weight``, ``linear_2.weight``) to
    load, e.g. trained weights from ``fixtures/reference/``; None → seeded random init (``seed``).
    Encoder, language model and lm_head are frozen (``requires_grad=False``); the projector is not.
    """
    from transformers import VoxtralForConditionalGeneration
    from transformers.initialization import no_init_weights

    from harness.lm import load_backbone

    backbone = backbone or load_backbone()
    enc_cfg, enc_sd, whisper_digest = whisper_ct2.cached_encoder_state()
    tok = tokenizer()
    cfg = config(enc_cfg, backbone.model.config, tok.audio_token_id, chunk_seconds)
    with no_init_weights():     # every weight is loaded or set below; a random init first costs seconds per load
        model = VoxtralForConditionalGeneration(cfg)
    positions = cfg.audio_config.max_source_positions   # a shorter window keeps the first rows of the sinusoids
    enc_sd = {**enc_sd, "embed_positions.weight": enc_sd["embed_positions.weight"][:positions]}
    model.model.audio_tower.load_state_dict(enc_sd, strict=True)
    llm_sd = backbone.model.state_dict()
    model.model.language_model.load_state_dict(
        {k[len("model."):]: v for k, v in llm_sd.items() if k.startswith("model.")}, strict=True)
    model.lm_head.weight.data.copy_(llm_sd.get("lm_head.weight", llm_sd["model.embed_tokens.weight"]))
    model = model.float().eval()
    if projector_state is None:
        init_projector(model, seed)
    else:
        model.model.multi_modal_projector.load_state_dict(projector_state, strict=True)
    for name, p in model.named_parameters():
        p.requires_grad_(".multi_modal_projector." in f".{name}")
    weights = projector_weights(model)
    proj_digest = state_digest(weights)
    info = {
        "model_id": MODEL_ID,
        "revision": f"whisper:{whisper_digest[:12]}/{chunk_seconds}s+{backbone.revision}+proj:{proj_digest[:12]}",
        "whisper_model_bin_sha256": whisper_digest, "backbone_id": backbone.model_id,
        "backbone_revision": backbone.revision, "projector_sha256": proj_digest,
        "projector_seed": seed if projector_state is None else None,
        "projector_params": sum(v.numel() for v in weights.values()),
        "audio_token": AUDIO_TOKEN, "audio_token_id": tok.audio_token_id,
        "chunk_seconds": chunk_seconds, "audio_embeddings_per_clip": positions // STACK,
    }
    return model, ReferenceProcessor(WindowedFeatureExtractor(chunk_seconds), tok), info


def system(projector_state: dict | None = None, seed: int = 0, *, chunk_seconds: int = CHUNK_SECONDS,
           name: str = "ref-untrained", backbone=None):
    """The assembled model behind the standard adapter (``HFNativeSpeechLLM``, family ``voxtral``)."""
    from harness.systems.hf_native import HFNativeSpeechLLM

    model, proc, info = assemble(projector_state, seed, chunk_seconds=chunk_seconds, backbone=backbone)
    return HFNativeSpeechLLM(model, proc, "voxtral", model_id=info["model_id"], revision=info["revision"], name=name)


# -- a full checkpoint in the user cache (fast reload) -------------------------------------------------
def save_assembled(path: Path, model, processor, info: dict) -> Path:
    """``save_pretrained`` of model + tokenizer + feature extractor, and ``reference.json`` (provenance)."""
    path = Path(path)
    model.save_pretrained(path)
    processor.tokenizer.save_pretrained(path)
    processor.feature_extractor.save_pretrained(path)
    (path / "reference.json").write_text(json.dumps(info, indent=2) + "\n")
    return path


def load_assembled(path: Path):
    """(model, ReferenceProcessor, provenance) from :func:`save_assembled`'s folder; the projector is trainable."""
    from transformers import VoxtralForConditionalGeneration

    path = Path(path)
    model = VoxtralForConditionalGeneration.from_pretrained(path, dtype=torch.float32).eval()
    for name, p in model.named_parameters():
        p.requires_grad_(".multi_modal_projector." in f".{name}")
    chunk = model.config.audio_config.max_source_positions // 50
    proc = ReferenceProcessor(WindowedFeatureExtractor(chunk), tokenizer(path))
    return model, proc, json.loads((path / "reference.json").read_text())
