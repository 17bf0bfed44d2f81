"""piper TTS: real audio, cached, deterministic, prosody control, clear errors."""
import numpy as np
import pytest

from harness import tts
from harness.audio import SAMPLE_RATE

TEXT = "The library opens at nine in the morning."


def test_synthesis_is_16k_mono_speech(tmp_cache):
    audio = tts.synthesize(TEXT, item_id="t1")
    assert audio.samples.ndim == 1 and audio.samples.dtype == np.float32
    assert 1.0 < len(audio.samples) / SAMPLE_RATE < 6.0
    assert audio.rms > 0.01


def test_second_call_is_a_cache_hit(tmp_cache, monkeypatch):
    first = tts.synthesize(TEXT, item_id="t1")
    assert len(list((tmp_cache / "tts").glob("*.npy"))) == 1
    monkeypatch.setattr(tts, "_render", lambda *a, **k: pytest.fail("re-synthesised despite the cache"))
    second = tts.synthesize(TEXT, item_id="t1")
    assert np.array_equal(first.samples, second.samples)


def test_default_synthesis_is_deterministic_without_cache(tmp_cache):
    a = tts.synthesize(TEXT, use_cache=False)
    b = tts.synthesize(TEXT, use_cache=False)
    assert np.array_equal(a.samples, b.samples)


def test_length_scale_controls_speaking_rate(tmp_cache):
    slow = tts.synthesize(TEXT, {"length_scale": 1.45})
    fast = tts.synthesize(TEXT, {"length_scale": 0.7})
    assert slow.duration > 1.6 * fast.duration


def test_parameters_are_part_of_the_key():
    base = tts.cache_key(TEXT, tts.SpeechParams())
    assert tts.cache_key(TEXT, tts.SpeechParams(length_scale=1.2)) != base
    assert tts.cache_key(TEXT + " ", tts.SpeechParams()) != base
    assert tts.cache_key(TEXT, tts.SpeechParams()) == base


def test_corrupt_cache_entry_is_resynthesised(tmp_cache):
    good = tts.synthesize(TEXT)
    (path,) = (tmp_cache / "tts").glob("*.npy")
    path.write_bytes(b"not a numpy file")
    again = tts.synthesize(TEXT)
    assert np.array_equal(good.samples, again.samples)
    assert np.array_equal(np.load(path), good.samples)


@pytest.mark.parametrize("params, message", [
    ({"pitch": 2.0}, "unknown speech parameter"),
    ({"length_scale": 9.0}, "outside"),
])
def test_bad_parameters_name_the_item(params, message):
    with pytest.raises(ValueError, match=f"item 'x-1'.*{message}"):
        tts.synthesize(TEXT, params, item_id="x-1")


def test_empty_text_names_the_item():
    with pytest.raises(ValueError, match="item 'x-2'.*empty"):
        tts.synthesize("  ", item_id="x-2")
