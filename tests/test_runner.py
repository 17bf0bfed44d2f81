"""Runner: each (system, item, condition) inferred once; disk cache reused; corrupt entries recomputed."""
import contextlib
import json
import os
import subprocess
import warnings

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
    spent = runner.inference_seconds["rec"]
    second = runner.answers(system, task, items)
    assert first == second
    assert runner.inferences["rec"] == 4 and len(system.seen) == 4
    assert spent > 0 and runner.inference_seconds["rec"] == spent     # cached answers cost no inference time


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
    assert Answer.from_json(json.loads(path.read_text())["answer"]) == good[0]   # rewritten whole


def test_babble_audio_uses_training_utterances_and_exact_snr(tmp_cache, task):
    from harness.audio import measured_snr_db

    runner = Runner(progress=False)
    item = task.items[0]
    noisy = runner.audio(task, item, Condition.parse("babble@5"))
    assert measured_snr_db(runner.clean_audio(item), noisy) == pytest.approx(5.0, abs=0.1)


def test_accuracy():
    a = [Answer("x", "a", True), Answer("y", "b", False)]
    assert accuracy(a) == 0.5


# ---------------------------------------------------------------- cache entries are checked, never trusted blindly

def test_an_entry_copied_over_another_items_is_rejected_and_recomputed(tmp_cache, task):
    from harness.cache import CacheWarning

    items = [it for it in task.items if it.label == "positive"][:1] + \
            [it for it in task.items if it.label == "negative"][:1]
    runner = Runner(progress=False)
    good = runner.answers(Recorder(), task, items)
    paths = {it.id: (tmp_cache / "answers") / k[:2] / f"{k}.json"
             for it, k in ((it, runner.key(Recorder(), task, it, Condition())) for it in items)}
    paths[items[1].id].write_bytes(paths[items[0].id].read_bytes())     # item 0's answer under item 1's key
    system = Recorder()
    with pytest.warns(CacheWarning, match=r"rejected \(written under key"):
        again = Runner(progress=False).answers(system, task, items)
    assert system.seen == [items[1].id]
    assert again == good and again[1].item_id == items[1].id


def test_an_entry_whose_answer_was_edited_fails_its_checksum(tmp_cache, task):
    from harness.cache import CacheWarning

    items = task.subset(1)
    good = Runner(progress=False).answers(Recorder(), task, items)
    (path,) = (tmp_cache / "answers").rglob("*.json")
    entry = json.loads(path.read_text())
    wrong = next(o for o in items[0].options if o != entry["answer"]["choice"])
    entry["answer"].update(choice=wrong, correct=not entry["answer"]["correct"])
    path.write_text(json.dumps(entry))
    with pytest.warns(CacheWarning, match="checksum mismatch"):
        assert Runner(progress=False).answers(Recorder(), task, items) == good


def test_no_disk_cache_writes_neither_answers_nor_audio(tmp_cache, task):
    runner, item = Runner(progress=False, disk_cache=False), task.items[0]
    runner.answers(Recorder(), task, [item])
    runner.clean_audio(item)
    assert not list(tmp_cache.rglob("*.json")) and not list(tmp_cache.rglob("*.npy"))


@contextlib.contextmanager
def read_only(folder):
    """``folder`` made really read-only: a read-only bind mount as root (permissions do not stop root), chmod
    otherwise; a skip with the reason where neither is possible."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")] if not p.is_symlink()}
        for p in modes:
            p.chmod(modes[p] & ~0o222)
        try:
            yield
        finally:
            for p, m in modes.items():
                p.chmod(m)
        return
    if subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], capture_output=True).returncode:
        pytest.skip("running as root without the right to bind-mount: cannot make a read-only folder")
    try:
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_read_only_cache_degrades_to_no_cache_with_one_warning(tmp_cache, task):
    from harness.cache import CacheWarning

    items = task.subset(2)
    Runner(progress=False).answers(Recorder(), task, items[:1])
    expected = Runner(progress=False, disk_cache=False).answers(Recorder(), task, items)
    before = sorted(p.name for p in tmp_cache.rglob("*.json"))
    runner = Runner(progress=False)
    with read_only(tmp_cache), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = runner.answers(Recorder(), task, items)      # item 1 is new: inferred, not kept
        runner.clean_audio(task.items[-1])                  # new audio: synthesised, not kept
    assert got == expected and runner.inferences["rec"] == 1
    ours = [w for w in caught if issubclass(w.category, CacheWarning)]
    assert len(ours) == 1 and "cannot be written" in str(ours[0].message), [str(w.message) for w in caught]
    assert sorted(p.name for p in tmp_cache.rglob("*.json")) == before


def test_a_file_condition_is_refused_before_any_inference(tmp_cache, task):
    system = Recorder()
    with pytest.raises(ValueError, match="'file@0'.*noise file"):
        Runner(progress=False).answers(system, task, task.subset(1), "file@0")
    assert system.seen == []
