"""The cascade end to end on real audio: TTS → Whisper tiny.en → the offline backbone."""
import pytest

from harness.asr import load_asr, word_error_rate
from harness.lm import load_backbone
from harness.runner import Runner
from harness.systems.cascade import Cascade
from harness.tasks import load_task


@pytest.fixture(scope="module")
def cascade():
    return Cascade(load_asr(), load_backbone())


def test_cascade_answers_spoken_items_with_a_transcript(cascade, tmp_cache):
    task = load_task("topic")
    items = task.subset(4)
    answers = Runner(progress=False).answers(cascade, task, items)
    for item, answer in zip(items, answers):
        assert answer.item_id == item.id
        assert answer.choice in item.options and set(answer.scores) == set(item.options)
        assert word_error_rate([item.text], [answer.transcript]) <= 0.5  # it heard the item, not silence
        assert answer.choice == max(answer.scores, key=answer.scores.get)


def test_oracle_uses_the_gold_text():
    oracle = Cascade(None, load_backbone(), oracle=True)
    task = load_task("sentiment")
    answer = oracle.answer(task, task.items[0], None)
    assert answer.transcript == task.items[0].text


def test_cascade_without_asr_or_audio_is_refused(cascade):
    with pytest.raises(ValueError, match="needs an ASR"):
        Cascade(None, load_backbone())
    task = load_task("sentiment")
    with pytest.raises(ValueError, match="sentiment-0001"):
        cascade.answer(task, task.items[0], None)
