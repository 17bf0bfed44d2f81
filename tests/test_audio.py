"""Unit tests for harness.audio: validation, resampling, noise at exact SNR, determinism, Condition."""
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.io import wavfile
from scipy.signal import welch

from harness.audio import (
    HEADROOM, NOISE_KINDS, SAMPLE_RATE, Audio, AudioError, Condition, add_noise, make_noise,
    measured_snr_db,
)


def tones(seed: int, n: int, item_id: str = "item", peak: float | None = None) -> Audio:
    """A sum of 1-5 sinusoids with random frequencies, amplitudes and phases."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SAMPLE_RATE
    k = int(rng.integers(1, 6))
    x = sum(a * np.sin(2 * np.pi * f * t + p) for a, f, p in
            zip(rng.uniform(0.1, 1, k), rng.uniform(50, 7000, k), rng.uniform(0, 2 * np.pi, k)))
    x = x / np.max(np.abs(x)) * (rng.uniform(0.02, 0.9) if peak is None else peak)
    return Audio.from_array(x, SAMPLE_RATE, item_id)


def utterance(i: int) -> Audio:
    """A speech-like source: syllable-rate modulated harmonic complex, its own f0 and length."""
    rng = np.random.default_rng(1000 + i)
    n = int(rng.integers(SAMPLE_RATE // 4, 2 * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    f0 = 90 + 25 * i
    x = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 8))
    x *= 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(3, 6) * t))
    return Audio.from_array(0.5 * x / np.max(np.abs(x)), SAMPLE_RATE, f"utt-{i:02d}")


SOURCES = [utterance(i) for i in range(8)]
NOISE_REC = Audio.from_array(0.3 * np.random.default_rng(7).standard_normal(SAMPLE_RATE // 3)
                             .clip(-3, 3) / 3, SAMPLE_RATE, "noise-rec")
EXTRA = dict(babble_sources=SOURCES, noise_file=NOISE_REC)


# ---------------------------------------------------------------- noise at an exact SNR

@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(NOISE_KINDS), snr=st.floats(-5, 30), seed=st.integers(0, 2**63),
       sig=st.integers(0, 10**9), n=st.integers(400, 3 * SAMPLE_RATE))
def test_snr_is_exact(kind, snr, seed, sig, n):
    clean = tones(sig, n)
    noisy = add_noise(clean, kind, snr, seed, **EXTRA)
    assert noisy.samples.dtype == np.float32 and noisy.samples.shape == clean.samples.shape
    assert np.max(np.abs(noisy.samples)) <= HEADROOM + 1e-6
    assert abs(measured_snr_db(clean, noisy) - snr) < 0.1
    assert abs(measured_snr_db(clean, noisy) - snr) < 1e-3      # exact up to float32 rounding


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_noise_is_the_generated_noise_and_rescale_is_joint(kind):
    clean = tones(3, SAMPLE_RATE, peak=0.9)
    noisy = add_noise(clean, kind, -5, 1, **EXTRA)
    assert noisy.gain < 1                                          # loud + noisy: had to rescale
    residual = noisy.samples / noisy.gain - clean.samples.astype(np.float64)
    reference = make_noise(clean, kind, -5, 1, **EXTRA)
    assert np.corrcoef(residual, reference)[0, 1] > 0.9999
    manual = 10 * np.log10(np.mean(clean.samples.astype(float) ** 2) / np.mean(residual ** 2))
    assert abs(manual + 5) < 1e-3


def test_quiet_signal_is_not_rescaled():
    clean = tones(4, SAMPLE_RATE, peak=0.05)
    noisy = add_noise(clean, "white", 20, 0)
    assert noisy.gain == 1.0
    assert abs(measured_snr_db(clean, noisy) - 20) < 1e-3


def test_clean_and_infinite_snr_return_the_input():
    clean = tones(5, 8000)
    assert add_noise(clean, "white", math.inf, 0) is clean
    assert add_noise(clean, "clean", 0, 0) is clean
    assert Condition().apply(clean) is clean


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_same_seed_same_samples_other_seed_other_samples(kind):
    clean = tones(6, 12000, "x")
    a = add_noise(clean, kind, 5, 11, **EXTRA)
    b = add_noise(tones(6, 12000, "x"), kind, 5, 11, **EXTRA)
    assert np.array_equal(a.samples, b.samples)
    for other in (add_noise(clean, kind, 5, 12, **EXTRA),
                  add_noise(tones(6, 12000, "y"), kind, 5, 11, **EXTRA),
                  add_noise(clean, kind, 6, 11, **EXTRA)):
        assert not np.array_equal(a.samples / a.gain, other.samples / other.gain)


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_noise_does_not_depend_on_call_order(kind):
    items = [tones(i, 9000, f"item-{i}") for i in range(4)]
    first = add_noise(items[2], kind, 0, 3, **EXTRA)
    for it in items:
        add_noise(it, kind, 0, 3, **EXTRA)
    np.random.seed(123)                                  # global RNG state must not matter either
    again = add_noise(items[2], kind, 0, 3, babble_sources=SOURCES[::-1], noise_file=NOISE_REC)
    assert np.array_equal(first.samples, again.samples)


def test_babble_needs_six_other_utterances():
    item = SOURCES[0]
    with pytest.raises(AudioError, match=r"utt-00.*at least 6 other utterances, got 5"):
        add_noise(item, "babble", 0, 0, babble_sources=SOURCES[:6])     # itself is excluded
    dupes = SOURCES[1:6] + [Audio(SOURCES[1].samples, "copy-of-1")]
    with pytest.raises(AudioError, match="got 5 usable"):                # duplicates count once
        add_noise(item, "babble", 0, 0, babble_sources=dupes)
    with pytest.raises(AudioError, match="got 0 usable"):
        add_noise(tones(1, 4000, "lonely"), "babble", 0, 0)
    noisy = add_noise(item, "babble", 0, 0, babble_sources=SOURCES[:7])
    assert abs(measured_snr_db(item, noisy)) < 1e-3


def test_file_noise_from_wav_is_looped(tmp_path):
    path = tmp_path / "hum.wav"
    NOISE_REC.to_wav(path)
    clean = tones(8, 3 * SAMPLE_RATE, "long")                          # 9x the recording's length
    noisy = add_noise(clean, "file", 10, 2, noise_file=path)
    assert abs(measured_snr_db(clean, noisy) - 10) < 1e-3
    assert np.array_equal(noisy.samples, add_noise(clean, "file", 10, 2, noise_file=NOISE_REC).samples)
    with pytest.raises(AudioError, match="long.*needs noise_file"):
        add_noise(clean, "file", 10, 2)


def test_bad_noise_arguments():
    clean = tones(9, 4000, "arg")
    with pytest.raises(AudioError, match="arg.*unknown noise kind 'brown'"):
        add_noise(clean, "brown", 0, 0)
    with pytest.raises(AudioError, match="arg.*SNR"):
        add_noise(clean, "white", float("nan"), 0)
    with pytest.raises(AudioError, match="arg.*SNR"):
        add_noise(clean, "white", -math.inf, 0)


def _slope(x: np.ndarray) -> float:
    f, p = welch(x, fs=SAMPLE_RATE, nperseg=4096)
    band = (f >= 30) & (f <= 6000)
    return float(np.polyfit(np.log10(f[band]), np.log10(p[band]), 1)[0])


def test_pink_noise_has_one_over_f_spectrum():
    clean = tones(10, 2**17, "spectrum")
    assert abs(_slope(make_noise(clean, "pink", 0, 0)) + 1) < 0.25
    assert abs(_slope(make_noise(clean, "white", 0, 0))) < 0.25


# ---------------------------------------------------------------- validation

BAD = [
    ("empty", lambda: Audio.from_array(np.zeros(0), SAMPLE_RATE, "bad-1"), "empty"),
    ("nan", lambda: Audio.from_array(np.r_[np.full(99, 0.1), [np.nan] * 3], SAMPLE_RATE, "bad-1"),
     "3 NaN/inf"),
    ("inf", lambda: Audio.from_array(np.r_[np.full(99, 0.1), np.inf], SAMPLE_RATE, "bad-1"),
     "1 NaN/inf"),
    ("stereo", lambda: Audio.from_array(np.full((100, 2), 0.1), SAMPLE_RATE, "bad-1"),
     r"stereo/multichannel \(shape \(100, 2\)\).*Audio.downmix"),
    ("rate", lambda: Audio.from_array(np.full(100, 0.1), 44100, "bad-1", allow_resample=False),
     "44100 Hz, expected 16000 Hz"),
    ("rate0", lambda: Audio.from_array(np.full(100, 0.1), 0, "bad-1"), "positive integer"),
    ("rate-float", lambda: Audio.from_array(np.full(100, 0.1), 16000.5, "bad-1"),
     "positive integer"),
    ("over-1", lambda: Audio.from_array(np.r_[np.full(9999, 0.1), 1.5], SAMPLE_RATE, "bad-1"),
     "clipped"),
    ("flat-top", lambda: Audio.from_array(np.clip(3 * np.sin(np.arange(5000) / 9), -1, 1),
                                          SAMPLE_RATE, "bad-1"), "clipped"),
    ("int16-clip", lambda: Audio.from_array(np.r_[np.full(990, 1000), np.full(10, 32767)]
                                            .astype(np.int16), SAMPLE_RATE, "bad-1"), "clipped"),
    ("clip-before-resample", lambda: Audio.from_array(np.r_[np.full(99, 0.1), 2.0], 8000, "bad-1"),
     "clipped"),
    ("silent", lambda: Audio.from_array(np.zeros(100), SAMPLE_RATE, "bad-1"), "silent.*SNR"),
    ("dtype", lambda: Audio.from_array(np.ones(100, complex), SAMPLE_RATE, "bad-1"), "dtype"),
    ("direct-float64", lambda: Audio(np.full(100, 0.1), "bad-1"), "float32"),
    ("direct-list", lambda: Audio([0.1, 0.2], "bad-1"), "float32"),
    ("downmix-1d", lambda: Audio.downmix(np.full(100, 0.1), SAMPLE_RATE, "bad-1"), "2-D"),
]


@pytest.mark.parametrize("make,problem", [(m, p) for _, m, p in BAD], ids=[b[0] for b in BAD])
def test_bad_audio_raises_naming_item_and_problem(make, problem):
    with pytest.raises(AudioError, match=r"item 'bad-1': .*" + problem) as err:
        make()
    assert err.value.item_id == "bad-1" and isinstance(err.value, ValueError)


def test_unreadable_and_stereo_wav(tmp_path):
    junk = tmp_path / "junk-7.wav"
    junk.write_bytes(b"not a wav file")
    with pytest.raises(AudioError, match="item 'junk-7': cannot read WAV"):
        Audio.from_wav(junk)
    stereo = tmp_path / "st.wav"
    left = (8000 * np.sin(np.arange(4000) / 5)).astype(np.int16)
    wavfile.write(stereo, SAMPLE_RATE, np.stack([left, left // 2], axis=1))
    with pytest.raises(AudioError, match="item 'st-item': .*stereo"):
        Audio.from_wav(stereo, "st-item")
    mixed = Audio.from_wav(stereo, "st-item", downmix=True)
    assert np.allclose(mixed.samples, (left + left // 2) / 2 / 32768, atol=1e-6)


def test_pcm_scaling_and_downmix():
    a = Audio.from_array(np.array([16384, -16384, 0, 8192], np.int16), SAMPLE_RATE)
    assert a.samples.tolist() == [0.5, -0.5, 0.0, 0.25]
    b = Audio.from_array(np.array([192, 64, 128], np.uint8), SAMPLE_RATE)
    assert b.samples.tolist() == [0.5, -0.5, 0.0]
    c = Audio.downmix(np.array([[0.2, 0.4], [-0.2, 0.0]]), SAMPLE_RATE, "dm")
    assert np.allclose(c.samples, [0.3, -0.1])
    d = Audio.downmix(np.array([[0.2, -0.2], [0.4, 0.0]]), SAMPLE_RATE, "dm", channel_axis=0)
    assert np.allclose(d.samples, [0.3, -0.1])


def test_audio_is_an_immutable_value():
    x = np.full(1600, 0.1, np.float32)
    a = Audio(x, "v")
    x[:] = 0.5
    assert a.samples[0] == np.float32(0.1) and not a.samples.flags.writeable
    with pytest.raises(ValueError):
        a.samples[0] = 0.2
    assert a.duration == 0.1 and abs(a.rms - 0.1) < 1e-7


def test_wav_round_trip(tmp_path):
    a = tones(12, 5000, "rt")
    a.to_wav(tmp_path / "rt.wav")
    b = Audio.from_wav(tmp_path / "rt.wav")
    assert b.item_id == "rt" and np.array_equal(a.samples, b.samples)


# ---------------------------------------------------------------- resampling

def test_resample_22050_keeps_tone_frequency_and_duration():
    sr = 22050
    x = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(sr) / sr)
    a = Audio.from_array(x, sr, "tone")
    assert a.samples.size == SAMPLE_RATE
    spectrum = np.abs(np.fft.rfft(a.samples * np.hanning(a.samples.size)))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / a.samples.size - 1000) <= 1.0


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_resample_length(sr):
    n = 12345
    a = Audio.from_array(0.3 * np.sin(np.arange(n) / 7), sr, "len")
    assert a.samples.size == math.ceil(n * SAMPLE_RATE / sr)


def test_resample_filters_aliasing():
    sr = 48000                                # 12 kHz is above the new Nyquist: must be removed
    x = 0.5 * np.sin(2 * np.pi * 12000 * np.arange(sr) / sr)
    assert Audio.from_array(np.r_[x, 0.1], sr, "alias").rms < 0.01


# ---------------------------------------------------------------- Condition

@pytest.mark.parametrize("text,expected", [
    ("clean", Condition()),
    ("white@0", Condition("white", 0.0, 0)),
    ("babble@10", Condition("babble", 10.0)),
    ("pink@5#3", Condition("pink", 5.0, 3)),
    (" File@-2.5 ", Condition("file", -2.5)),
])
def test_condition_parse(text, expected):
    assert Condition.parse(text) == expected
    assert Condition.parse(expected) is expected


def test_condition_str_and_key():
    assert str(Condition()) == "clean" and Condition().key == "clean"
    assert str(Condition("pink", 5, 3)) == "pink@5#3"
    assert Condition("white", -5).key == "white_-5dB_s0"
    assert str(Condition("babble", 7.25)) == "babble@7.25"


@given(kind=st.sampled_from(NOISE_KINDS), snr=st.floats(-50, 80, allow_nan=False),
       seed=st.integers(0, 10**6))
def test_condition_round_trips(kind, snr, seed):
    c = Condition(kind, snr, seed)
    assert Condition.parse(str(c)) == c
    assert Condition.parse(str(c)).key == c.key


@pytest.mark.parametrize("text", ["", "noise", "white", "white@", "white@abc", "brown@5",
                                  "white@5#", "white@5#-1", "white@nan", "white@inf",
                                  "clean@5", "white@5#3#4"])
def test_condition_parse_errors(text):
    with pytest.raises(ValueError, match="accepted forms|finite SNR") as err:
        Condition.parse(text)
    assert repr(text) in str(err.value) or "finite" in str(err.value)


def test_condition_constructor_errors():
    with pytest.raises(ValueError, match="finite SNR"):
        Condition("white", math.inf)
    with pytest.raises(ValueError, match=r"SNR 1e\+308 dB is outside ±150 dB"):
        Condition.parse("white@1e308")
    with pytest.raises(ValueError, match="snr_db=inf"):
        Condition("clean", 5)
    with pytest.raises(ValueError, match="seed"):
        Condition("white", 0, -1)


def test_condition_apply_matches_add_noise():
    clean = tones(13, 6000, "ap")
    noisy = Condition.parse("babble@3#2").apply(clean, babble_sources=SOURCES)
    assert np.array_equal(noisy.samples, add_noise(clean, "babble", 3, 2, babble_sources=SOURCES).samples)


# ---------------------------------------------------------------- WAV decoding problems name the file

def _speech_like_wav(path, seconds=7.1):
    x = (8000 * np.sin(np.arange(int(SAMPLE_RATE * seconds)) / 7)).astype(np.int16)
    wavfile.write(path, SAMPLE_RATE, x)
    return path.read_bytes()


@pytest.mark.parametrize("cut", [4, 12, 20, 36, 44])
def test_a_cut_header_is_an_audio_error_naming_the_file(tmp_path, cut):
    full = _speech_like_wav(tmp_path / "full.wav")
    bad = tmp_path / f"cut{cut}.wav"
    bad.write_bytes(full[:cut])
    with pytest.raises(AudioError, match=rf"item 'cut{cut}': .*{re.escape(str(bad))}"):
        Audio.from_wav(bad)


def test_riff_followed_by_garbage_is_an_audio_error_naming_the_file(tmp_path):
    bad = tmp_path / "garbage.wav"
    bad.write_bytes(b"RIFF" + bytes(range(200)))
    with pytest.raises(AudioError, match=rf"item 'garbage': cannot read WAV '{re.escape(str(bad))}'"):
        Audio.from_wav(bad)


def test_a_truncated_data_chunk_is_refused_not_loaded_short(tmp_path):
    full = _speech_like_wav(tmp_path / "full.wav")
    assert Audio.from_wav(tmp_path / "full.wav").duration == pytest.approx(7.1, abs=1e-3)
    bad = tmp_path / "short.wav"
    bad.write_bytes(full[:5000])
    with pytest.raises(AudioError, match=r"item 'short': .*short.wav' is truncated: its header declares 227200 "
                                         r"bytes of audio data, the file holds 4956"):
        Audio.from_wav(bad)


def test_a_one_channel_2d_array_is_mono_in_either_layout():
    x = (0.3 * np.sin(np.arange(800) / 5)).astype(np.float32)
    for shaped in (x[None, :], x[:, None]):
        assert np.array_equal(Audio.from_array(shaped, SAMPLE_RATE, "m").samples, x)


def test_downmix_refuses_channels_by_frames_read_as_frames_by_channels():
    x = np.stack([np.full(800, 0.2), np.full(800, 0.4)])           # (2, N): channels x frames
    with pytest.raises(AudioError, match=r"item 'cf': downmix: shape \(2, 800\) has 800 channels.*channel_axis=0"):
        Audio.downmix(x, SAMPLE_RATE, "cf")
    assert np.allclose(Audio.downmix(x, SAMPLE_RATE, "cf", channel_axis=0).samples, 0.3)
