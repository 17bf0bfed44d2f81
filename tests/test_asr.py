"""faster-whisper front end on real TTS audio: deterministic text with word timestamps."""
import pytest

from harness import tts
from harness.asr import load_asr, normalise_for_wer, word_error_rate
from harness.audio import add_noise

SENTENCE = "The museum will open a new wing for ancient maps next spring."


@pytest.fixture(scope="module")
def asr():
    return load_asr()


def test_transcribes_clear_speech(asr):
    out = asr.transcribe(tts.synthesize(SENTENCE, item_id="asr-1"))
    assert word_error_rate([SENTENCE], [out.text]) <= 0.2
    assert out.words and all(w.start <= w.end for w in out.words)
    starts = [w.start for w in out.words]
    assert starts == sorted(starts)
    assert out.words[-1].end <= tts.synthesize(SENTENCE).duration + 0.5


def test_transcription_is_deterministic_even_in_noise(asr):
    noisy = add_noise(tts.synthesize(SENTENCE, item_id="asr-2"), "white", 0.0, seed=1)
    assert asr.transcribe(noisy) == asr.transcribe(noisy)


def test_wer_normalisation_and_reference_values():
    assert normalise_for_wer("Hello, World! It's sci-fi.") == "hello world it is sci fi"
    assert normalise_for_wer("cut three thousand jobs") == normalise_for_wer("cut 3,000 jobs")
    assert word_error_rate(["a b c d"], ["a b x d"]) == pytest.approx(0.25)
    assert word_error_rate(["Hello there."], ["hello there"]) == 0.0


def test_unknown_model_directory_is_a_clear_error():
    from harness.asr import ASR

    with pytest.raises(Exception, match="no-such-model"):
        ASR("no-such-model-dir/..", device="cpu")


def test_cached_transcript_is_reused_and_a_corrupt_entry_is_recomputed(asr, tmp_cache, monkeypatch):
    audio = tts.synthesize(SENTENCE, item_id="asr-3")
    first = asr.transcribe(audio, cached=True)
    assert first == asr.transcribe(audio)
    [entry] = (tmp_cache / "transcripts").rglob("*.json")

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the transcript is on disk")

    with monkeypatch.context() as m:
        m.setattr(asr.model, "transcribe", no_decoding)
        assert asr.transcribe(audio, cached=True) == first
    entry.write_text("{not json")
    assert asr.transcribe(audio, cached=True) == first
    assert asr.transcribe(add_noise(audio, "white", 10.0, seed=0), cached=True) != first   # keyed by the samples
