"""Which word is heard at which audio position (harness.positions): the time base per family, the word labels of
the LEACE text concept, and the tokens the reference front end and the trainer's alignment place there."""
import pytest
import torch

from harness.asr import Word
from harness.positions import position_tokens, seconds_per_position, word_labels
from harness.tasks import load_task
from tests import tiny_models
from tests.test_lens import synthetic_clip, tiny_system

EXPECTED_SECONDS = {"qwen2_audio": 0.04, "voxtral": 0.08, "granite_speech": 0.1, "phi4_multimodal": 0.08,
                    "qwen2_5_omni": 0.04}


@pytest.fixture(scope="module")
def backbone():
    from harness.lm import load_backbone

    return load_backbone()


def test_word_labels_follow_the_timestamps():
    words = [Word("Hello,", 0.0, 0.35, 1.0), Word("world!", 0.40, 0.80, 1.0), Word("...", 0.8, 0.9, 1.0)]
    got = word_labels(words, 12, 0.08)
    assert got == ["hello"] * 5 + ["world"] * 5 + [None, None]


def test_a_heard_word_that_wins_no_position_takes_the_one_its_start_falls_in():
    """Whisper's word alignment gives some words zero length (measured: "investors" 2.84–2.84 s after "the"
    2.28–2.84 s); overlap alone would drop them, and a reference front end would then never write the word."""
    words = [Word("the", 2.28, 2.84, 1.0), Word("investors", 2.84, 2.84, 1.0), Word("this", 2.84, 3.28, 1.0)]
    got = word_labels(words, 45, 0.08)
    assert got[35] == "investors" and got.count("investors") == 1
    assert got[28:35] == ["the"] * 7 and got[36:41] == ["this"] * 5
    short = [Word("a", 0.0, 0.08, 1.0), Word("b", 0.02, 0.02, 1.0)]     # never takes a word's only position
    assert word_labels(short, 3, 0.08) == ["a", "b", None]


def test_seconds_per_position_is_known_per_family_and_refuses_unknown_ones():
    task = load_task("sentiment")
    item = task.items[0]
    for family in tiny_models.FAMILIES:
        system = tiny_system(family)
        seconds = seconds_per_position(system)
        assert seconds == pytest.approx(EXPECTED_SECONDS[family])
        for dur in (2.0, 4.0):   # the positions cover the clip (Voxtral: its fixed 30 s window)
            n = len(system.audio_positions(system.inputs_for(task, item, synthetic_clip(item, dur))))
            covered = 30.0 if family == "voxtral" else dur
            assert covered <= n * seconds + 1e-6 <= covered + 0.3, (family, dur, n)

    class Unknown:
        name, family_name = "mystery", "mystery"
        model = torch.nn.Linear(1, 1)
        model.config = None
    with pytest.raises(ValueError, match="mystery.*unknown for family 'mystery'"):
        seconds_per_position(Unknown())


def test_alignment_targets_spread_each_words_tokens_over_its_positions(backbone):
    """position_tokens: a word's backbone tokens in order over the positions it overlaps most; gaps → None."""
    words = [Word("Fireflies", 0.0, 0.32, 0.9), Word("glow.", 0.40, 0.56, 0.9), Word("—", 0.6, 0.7, 0.5)]
    tokens, labels = position_tokens(backbone, words, 10, 0.08)
    fire, glow = backbone.reply_ids(" Fireflies"), backbone.reply_ids(" glow.")
    assert labels[:4] == ["Fireflies"] * 4 and labels[4] is None and labels[5:7] == ["glow."] * 2
    assert labels[7:] == [None] * 3 and tokens[7:] == [None] * 3          # punctuation-only word: no target
    run = [t for k, t in enumerate(tokens[:4]) if k == 0 or t != tokens[k - 1]]
    assert run == fire[:4] if len(fire) <= 4 else set(run) <= set(fire)   # every token, in order
    assert tokens[5] == glow[0] and tokens[6] == glow[min(len(glow) - 1, len(glow) // 2)]


def test_onset_alignment_places_each_token_once_and_fills_the_rest(backbone):
    """position_tokens(layout="onset"): a word's tokens once, in order, from its first position; the rest None."""
    words = [Word("Fireflies", 0.0, 0.48, 0.9), Word("glow", 0.56, 0.72, 0.9)]
    tokens, labels = position_tokens(backbone, words, 12, 0.08, layout="onset")
    fire, glow = backbone.reply_ids(" Fireflies"), backbone.reply_ids(" glow")
    assert len(fire) < 6 and len(glow) <= 2
    assert tokens[:len(fire)] == fire and tokens[len(fire):6] == [None] * (6 - len(fire))
    assert labels[:6] == ["Fireflies"] * 6 and labels[7:9] == ["glow"] * 2
    assert [t for t in tokens[6:] if t is not None] == glow
    short, _ = position_tokens(backbone, [Word("Fireflies", 0.0, 0.08, 0.9)], 3, 0.08, layout="onset")
    assert short == [fire[0], None, None]          # more tokens than positions: an even subset, first kept
    with pytest.raises(ValueError, match="layout 'diagonal'"):
        position_tokens(backbone, words, 12, 0.08, layout="diagonal")
