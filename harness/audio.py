"""Audio value type (mono float32 at 16 kHz) and additive noise at an exact SNR.

Every way in (`Audio(...)`, `Audio.from_array`, `Audio.from_wav`) validates, so a system never sees
empty, non-finite, multichannel, clipped or silent audio; a failure is an `AudioError` naming the item.
Conversions are explicit and documented: integer PCM is scaled by 1/2**(bits-1) (int16: 1/32768,
uint8 is offset by 128), another sample rate is resampled with a polyphase anti-aliasing filter
(`scipy.signal.resample_poly`) unless `allow_resample=False`, channels are averaged only by
`Audio.downmix` / `from_wav(..., downmix=True)`. A one-channel 2-D array ((1, N) or (N, 1)) is mono.
WAV files are read by libsndfile (`soundfile`): a file it cannot decode, or whose data chunk is shorter than
its header declares (a truncated download), is an `AudioError` naming the file.

Noise (`add_noise`) is scaled so that 10*log10(P_signal/P_noise) == snr_db, with P the mean square over
the whole clip. If signal+noise would leave [-1, 1] both are rescaled *jointly* (SNR is scale-invariant,
clipping is not); the factor is kept in `Audio.gain` so `measured_snr_db` stays exact. The noise for an
item is drawn from an RNG seeded by a stable hash of (item_id, kind, snr_db, seed), never by run order.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from os import PathLike
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile

SAMPLE_RATE = 16_000
NOISE_KINDS = ("white", "pink", "babble", "file")
BABBLE_TALKERS = 6          # utterances mixed into babble (the issue asks for at least 6)
CLIP_LEVEL = 0.999          # |x| at or above this counts as full scale
CLIP_FRACTION = 0.001       # this share of full-scale samples (or any |x| > 1) means "clipped"
HEADROOM = 0.99             # peak after add_noise's joint rescale
MAX_ABS_SNR_DB = 150.0      # float32 samples span ~150 dB: beyond it the mix is all signal or all noise


class AudioError(ValueError):
    """Bad audio; the message names the item and what is wrong."""

    def __init__(self, item_id: str, problem: str):
        super().__init__(f"item {item_id!r}: {problem}")
        self.item_id, self.problem = item_id, problem


@dataclass(frozen=True, eq=False)
class Audio:
    """A validated mono float32 clip at 16 kHz; `samples` is read-only.

    `gain` is the factor applied to the clean signal inside this clip (1.0 except after add_noise had
    to rescale signal+noise jointly). Equality is identity (arrays have no single truth value);
    compare `samples` with numpy.
    """

    samples: np.ndarray
    item_id: str = "?"
    gain: float = field(default=1.0, repr=False)

    def __post_init__(self):
        x, who = self.samples, self.item_id
        if not isinstance(x, np.ndarray) or x.dtype != np.float32:
            raise AudioError(who, f"samples must be a float32 numpy array, got "
                                  f"{getattr(x, 'dtype', type(x).__name__)}; use Audio.from_array")
        if x.ndim != 1:
            raise AudioError(who, f"audio is stereo/multichannel (shape {x.shape}); downmix "
                                  "explicitly with Audio.downmix")
        if x.size == 0:
            raise AudioError(who, "audio is empty (0 samples)")
        bad = int(np.count_nonzero(~np.isfinite(x)))
        if bad:
            raise AudioError(who, f"audio contains {bad} NaN/inf samples")
        peak = float(np.max(np.abs(x)))
        at_full = int(np.count_nonzero(np.abs(x) >= CLIP_LEVEL))
        if peak > 1.0 or at_full >= max(1.0, CLIP_FRACTION * x.size):
            raise AudioError(who, f"audio is clipped ({at_full} of {x.size} samples at full scale, "
                                  f"peak {peak:.4f})")
        if not np.any(x):
            raise AudioError(who, "audio is silent (RMS == 0), so an SNR is undefined")
        if x.flags.writeable or x.base is not None:     # own a read-only copy: a value type
            x = x.copy()
            x.flags.writeable = False
            object.__setattr__(self, "samples", x)

    @property
    def duration(self) -> float:
        return self.samples.size / SAMPLE_RATE

    @property
    def rms(self) -> float:
        return float(np.sqrt(np.mean(self.samples.astype(np.float64) ** 2)))

    @classmethod
    def from_array(cls, samples, sample_rate: int, item_id: str = "?", *,
                   allow_resample: bool = True) -> Audio:
        """Validate and convert (PCM scale, float32, resample to 16 kHz) an array of samples."""
        x = np.asarray(samples)
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
                or sample_rate <= 0:
            raise AudioError(item_id, f"sample rate must be a positive integer, got {sample_rate!r}")
        if x.ndim == 2 and 1 in x.shape and x.size > 1:      # one channel, either layout: mono, nothing to mix
            x = x.reshape(-1)
        if x.ndim != 1:
            raise AudioError(item_id, f"audio is stereo/multichannel (shape {x.shape}); downmix "
                                      "explicitly with Audio.downmix")
        if x.size == 0:
            raise AudioError(item_id, "audio is empty (0 samples)")
        x = cls._to_float(x, item_id)
        if sample_rate != SAMPLE_RATE:
            # Validate the source first: resampling would smear NaNs and hide clipping.
            cls(x.astype(np.float32), item_id)
            if not allow_resample:
                raise AudioError(item_id, f"sample rate is {sample_rate} Hz, expected "
                                          f"{SAMPLE_RATE} Hz (resampling disabled)")
            from scipy.signal import resample_poly     # imported here: ~1 s, and most runs never resample

            ratio = Fraction(SAMPLE_RATE, int(sample_rate))
            # Filter ringing can overshoot full scale by a hair; the source passed the clip check.
            x = np.clip(resample_poly(x, ratio.numerator, ratio.denominator), -1.0, 1.0)
        return cls(x.astype(np.float32), item_id)

    @classmethod
    def downmix(cls, samples, sample_rate: int, item_id: str = "?", *, channel_axis: int = -1,
                allow_resample: bool = True) -> Audio:
        """Average channels (default layout: frames x channels, as wav readers return), then validate."""
        x = np.asarray(samples)
        if x.ndim != 2 or x.shape[channel_axis] == 0:
            raise AudioError(item_id, f"downmix expects a 2-D array with channels, got shape {x.shape}")
        channels, frames = x.shape[channel_axis], x.shape[1 - channel_axis % 2]
        if channels > frames:       # e.g. (2, N) read as N channels of 2 frames: it would become a 2-sample clip
            raise AudioError(item_id, f"downmix: shape {x.shape} has {channels} channels on axis {channel_axis} but "
                                      f"only {frames} frames; for channels x frames pass channel_axis="
                                      f"{1 - channel_axis % 2}")
        x = cls._to_float(x, item_id).mean(axis=channel_axis)
        return cls.from_array(x, sample_rate, item_id, allow_resample=allow_resample)

    @staticmethod
    def _to_float(x: np.ndarray, item_id: str) -> np.ndarray:
        """float64 in full-scale units: int PCM / 2**(bits-1), uint8 centred on 128, floats as is."""
        if x.dtype == np.uint8:
            return (x.astype(np.float64) - 128.0) / 128.0
        if np.issubdtype(x.dtype, np.signedinteger):
            return x.astype(np.float64) / float(2 ** (8 * x.dtype.itemsize - 1))
        if np.issubdtype(x.dtype, np.floating):
            return x.astype(np.float64)
        raise AudioError(item_id, f"unsupported sample dtype {x.dtype}")

    @classmethod
    def from_wav(cls, path: str | PathLike, item_id: str | None = None, *, downmix: bool = False,
                 allow_resample: bool = True) -> Audio:
        """Read a WAV file (PCM or float); item_id defaults to the file's stem."""
        item_id = Path(path).stem if item_id is None else item_id
        rate, data = _read_wav(path, item_id)
        if data.shape[1] == 1:
            return cls.from_array(data[:, 0], rate, item_id, allow_resample=allow_resample)
        if not downmix:
            raise AudioError(item_id, f"audio is stereo/multichannel ({data.shape[1]} channels in {str(path)!r}); "
                                      "downmix explicitly with from_wav(..., downmix=True)")
        return cls.downmix(data, rate, item_id, allow_resample=allow_resample)

    def to_wav(self, path: str | PathLike) -> None:
        """Write 32-bit float WAV at 16 kHz (lossless round trip through from_wav)."""
        soundfile.write(str(path), np.asarray(self.samples, dtype=np.float32), SAMPLE_RATE, format="WAV",
                        subtype="FLOAT")


_DATA_LOG = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.M)
_UNKNOWN_LENGTH = (0, 0xFFFFFFFF)     # what streaming writers put in the data chunk's size field


def _read_wav(path, item_id: str) -> tuple[int, np.ndarray]:
    """(rate, float64 frames x channels) through libsndfile; every decoding problem is an AudioError naming the file.

    libsndfile reads what is there when a data chunk is shorter than its header says and notes it in its log
    ("data : 224000 (should be 2956)"); that log is the only place it reports truncation, so it is read here."""
    where = f"WAV {str(path)!r}"
    try:
        with soundfile.SoundFile(str(path)) as f:
            rate, log = f.samplerate, f.extra_info
            data = f.read(dtype="float64", always_2d=True)
    except Exception as e:          # noqa: BLE001 - libsndfile, OS and format errors alike: name the file
        raise AudioError(item_id, f"cannot read {where}: {e}") from e
    cut = _DATA_LOG.search(log)
    if cut and int(cut[1]) not in _UNKNOWN_LENGTH and int(cut[2]) < int(cut[1]):
        raise AudioError(item_id, f"{where} is truncated: its header declares {int(cut[1])} bytes of audio data, "
                                  f"the file holds {int(cut[2])}")
    if data.size == 0:
        raise AudioError(item_id, f"{where} holds no audio frames")
    return rate, data


def _rng(item_id: str, kind: str, snr_db: float, seed: int) -> np.random.Generator:
    """RNG keyed by a stable hash of the condition and item, so results never depend on call order."""
    key = f"{item_id}\x1f{kind}\x1f{float(snr_db)!r}\x1f{int(seed)}".encode()
    return np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))


def _loop(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n samples of x, looped if short, starting at a seeded random offset."""
    start = int(rng.integers(x.size))
    return x[(start + np.arange(n)) % x.size].astype(np.float64)


def _unit(x: np.ndarray) -> np.ndarray:
    p = float(np.mean(x * x))
    return x / math.sqrt(p) if p > 0 else x


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """White Gaussian noise shaped to a 1/f power spectrum (amplitude 1/sqrt(f)), DC removed."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    spec[0] = 0.0
    spec[1:] /= np.sqrt(f[1:])
    return np.fft.irfft(spec, n)


def _content_key(a: Audio) -> str:
    return hashlib.sha1(a.samples.tobytes()).hexdigest()


def _babble(audio: Audio, sources: Sequence[Audio] | None, rng: np.random.Generator) -> np.ndarray:
    """Equal-power mix of BABBLE_TALKERS other utterances, each looped/cropped at a random offset."""
    own = _content_key(audio)
    usable: dict[str, Audio] = {}
    for s in sources or ():
        if not isinstance(s, Audio):
            raise AudioError(audio.item_id, f"babble sources must be Audio, got {type(s).__name__}")
        key = _content_key(s)
        if key == own or (s.item_id == audio.item_id and s.item_id != "?"):
            continue                                    # never mix the item into its own babble
        usable.setdefault(key, s)
    if len(usable) < BABBLE_TALKERS:
        raise AudioError(audio.item_id, f"babble needs at least {BABBLE_TALKERS} other utterances, "
                                        f"got {len(usable)} usable of {len(sources or ())}")
    # Sort so the choice depends on the set of sources, not the order they were passed in.
    pool = [usable[k] for k in sorted(usable, key=lambda k: (usable[k].item_id, k))]
    picks = rng.choice(len(pool), size=BABBLE_TALKERS, replace=False)
    n = audio.samples.size
    return sum(_unit(_loop(pool[i].samples, n, rng)) for i in sorted(picks))


def make_noise(audio: Audio, kind: str, snr_db: float, seed: int, *,
               babble_sources: Sequence[Audio] | None = None,
               noise_file: str | PathLike | Audio | None = None) -> np.ndarray:
    """Unscaled float64 noise of the item's length; a function of (item, kind, snr, seed) only."""
    rng, n = _rng(audio.item_id, kind, snr_db, seed), audio.samples.size
    if kind == "white":
        return rng.standard_normal(n)
    if kind == "pink":
        return _pink(n, rng)
    if kind == "babble":
        return _babble(audio, babble_sources, rng)
    if kind == "file":
        if noise_file is None:
            raise AudioError(audio.item_id, "noise kind 'file' needs noise_file (a path or Audio)")
        src = noise_file if isinstance(noise_file, Audio) else \
            Audio.from_wav(noise_file, f"noise:{Path(noise_file).name}")
        return _loop(src.samples, n, rng)
    raise AudioError(audio.item_id, f"unknown noise kind {kind!r}; expected one of "
                                    f"{', '.join(NOISE_KINDS)}")


def add_noise(audio: Audio, kind: str, snr_db: float, seed: int = 0, *,
              babble_sources: Sequence[Audio] | None = None,
              noise_file: str | PathLike | Audio | None = None) -> Audio:
    """Return audio + noise at exactly snr_db (whole-clip mean squares); snr_db=inf or kind 'clean'
    returns the input. If the sum would exceed HEADROOM both parts are rescaled together (`gain`)."""
    if not isinstance(audio, Audio):
        raise TypeError(f"add_noise expects an Audio, got {type(audio).__name__}")
    snr_db = float(snr_db)
    if kind == "clean" or snr_db == math.inf:
        return audio
    if math.isnan(snr_db) or math.isinf(snr_db):
        raise AudioError(audio.item_id, f"SNR must be a finite number of dB or +inf, got {snr_db}")
    noise = make_noise(audio, kind, snr_db, seed, babble_sources=babble_sources,
                       noise_file=noise_file)
    signal = audio.samples.astype(np.float64)
    p_signal, p_noise = float(np.mean(signal ** 2)), float(np.mean(noise ** 2))
    if p_noise == 0.0:
        raise AudioError(audio.item_id, f"{kind} noise is silent for this clip; SNR undefined")
    noise *= math.sqrt(p_signal / (p_noise * 10.0 ** (snr_db / 10.0)))
    mix = signal + noise
    gain = min(1.0, HEADROOM / float(np.max(np.abs(mix))))
    return Audio((gain * mix).astype(np.float32), audio.item_id, gain=audio.gain * gain)


def measured_snr_db(clean: Audio, noisy: Audio) -> float:
    """SNR of noisy against the clean clip it was made from, undoing add_noise's joint rescale."""
    if clean.samples.shape != noisy.samples.shape:
        raise AudioError(noisy.item_id, f"length {noisy.samples.size} differs from the clean "
                                        f"clip's {clean.samples.size}")
    g = noisy.gain / clean.gain
    signal = g * clean.samples.astype(np.float64)
    noise = noisy.samples.astype(np.float64) - signal
    p_noise = float(np.mean(noise ** 2))
    return math.inf if p_noise == 0.0 else 10.0 * math.log10(float(np.mean(signal ** 2)) / p_noise)


_CONDITION_RE = re.compile(r"(?P<kind>[a-z]+)@(?P<snr>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)"
                           r"(?:#(?P<seed>\d+))?")
_FORMS = "'clean', 'KIND@SNR' or 'KIND@SNR#SEED' with KIND in " + "/".join(NOISE_KINDS) + \
         ", SNR in dB (e.g. 'white@0', 'babble@10', 'pink@5#3')"


def _fmt_db(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


@dataclass(frozen=True)
class Condition:
    """A listening condition: clean, or noise of `kind` at `snr_db` with a seed. str() round-trips."""

    kind: str = "clean"
    snr_db: float = math.inf
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "snr_db", float(self.snr_db))
        if self.kind == "clean":
            if self.snr_db != math.inf or self.seed != 0:
                raise ValueError(f"a clean condition has snr_db=inf and seed=0, got {self!r}")
        elif self.kind not in NOISE_KINDS:
            raise ValueError(f"unknown condition kind {self.kind!r}; accepted forms: {_FORMS}")
        elif not math.isfinite(self.snr_db):
            raise ValueError(f"noise condition {self.kind!r} needs a finite SNR, got {self.snr_db}")
        elif abs(self.snr_db) > MAX_ABS_SNR_DB:
            raise ValueError(f"noise condition {self.kind!r}: SNR {self.snr_db:g} dB is outside ±{MAX_ABS_SNR_DB:g} dB "
                             "(float32 audio cannot hold a wider ratio of signal to noise)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) \
                or self.seed < 0:
            raise ValueError(f"condition seed must be a non-negative integer, got {self.seed!r}")

    @classmethod
    def parse(cls, text: str | Condition) -> Condition:
        if isinstance(text, Condition):
            return text
        s = str(text).strip().lower()
        if s == "clean":
            return cls()
        m = _CONDITION_RE.fullmatch(s)
        if m is None or m["kind"] not in NOISE_KINDS:
            raise ValueError(f"cannot parse condition {text!r}; accepted forms: {_FORMS}")
        return cls(m["kind"], float(m["snr"]), int(m["seed"] or 0))

    def __str__(self) -> str:
        if self.kind == "clean":
            return "clean"
        return f"{self.kind}@{_fmt_db(self.snr_db)}" + (f"#{self.seed}" if self.seed else "")

    @property
    def key(self) -> str:
        """Short, filesystem-safe cache-key part, e.g. 'clean' or 'white_-5dB_s0'."""
        return "clean" if self.kind == "clean" else \
            f"{self.kind}_{_fmt_db(self.snr_db)}dB_s{self.seed}"

    def apply(self, audio: Audio, **sources) -> Audio:
        """add_noise under this condition (sources: babble_sources=..., noise_file=...)."""
        return add_noise(audio, self.kind, self.snr_db, self.seed, **sources)
