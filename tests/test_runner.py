"""Runner: each (system, item, condition) inferred once; disk cache reused; corrupt entries recomputed."""
import json

import pytest

from harness.audio import Condition
from harness.lm import load_backbone
from harness.runner import Runner, accuracy
from harness.systems.base import Answer
from harness.systems.cascade import Cascade
from harness.tasks import load_task


class Recorder:
    """A real oracle cascade that also records which items it was asked about."""

    def __init__(self):
        self.inner = Cascade(None, load_backbone(), oracle=True)
        self.name, self.fingerprint, self.needs_audio = "rec", self.inner.fingerprint, False
        self.seen = []

    def answer(self, task, item, audio):
        self.seen.append(item.id)
        return self.inner.answer(task, item, audio)


@pytest.fixture
def task():
    return load_task("sentiment")


def test_each_item_is_inferred_once_per_run(tmp_cache, task):
    runner, system = Runner(progress=False), Recorder()
    items = task.subset(4)
    first = runner.answers(system, task, items)
    second = runner.answers(system, task, items)
    assert first == second
    assert runner.inferences["rec"] == 4 and len(system.seen) == 4


def test_disk_cache_is_shared_between_runs_and_keyed_by_condition(tmp_cache, task):
    items = task.subset(2)
    Runner(progress=False).answers(Recorder(), task, items)
    again, system = Runner(progress=False), Recorder()
    again.answers(system, task, items)
    assert system.seen == []
    again.answers(system, task, items, Condition.parse("white@5"))
    assert len(system.seen) == 2  # another condition is another key


def test_corrupt_entry_is_recomputed(tmp_cache, task):
    items = task.subset(1)
    good = Runner(progress=False).answers(Recorder(), task, items)
    (path,) = (tmp_cache / "answers").rglob("*.json")
    path.write_text("{truncated")
    system = Recorder()
    assert Runner(progress=False).answers(system, task, items) == good
    assert system.seen == [items[0].id]
    assert Answer.from_json(json.loads(path.read_text())) == good[0]


def test_babble_audio_uses_training_utterances_and_exact_snr(tmp_cache, task):
    from harness.audio import measured_snr_db

    runner = Runner(progress=False)
    item = task.items[0]
    noisy = runner.audio(task, item, Condition.parse("babble@5"))
    assert measured_snr_db(runner.clean_audio(item), noisy) == pytest.approx(5.0, abs=0.1)


def test_accuracy():
    a = [Answer("x", "a", True), Answer("y", "b", False)]
    assert accuracy(a) == 0.5
