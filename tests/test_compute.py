"""The model-compute ledger (harness.compute): stages recorded, nested blocks counted once in the total, cache hits
free, and the pytest summary's "model compute by stage" section with the overhead ratio."""
import importlib.util
import threading
import time
from collections import Counter
from types import SimpleNamespace

import pytest

from harness import compute, paths, tts
from harness.compute import Ledger

NAP = 0.02       # seconds slept inside a block; perf_counter never measures less


def test_stages_are_recorded_with_seconds_and_counts():
    ledger = Ledger()
    for _ in range(2):
        with ledger.timed("tts") as timing:
            time.sleep(NAP)
        assert timing.stage == "tts" and timing.seconds >= NAP
    snap = ledger.snapshot()
    assert snap.counts == {"tts": 2} and snap.outermost == 2
    assert 2 * NAP <= snap.seconds["tts"] < 2 * NAP + 1.0
    assert snap.total == pytest.approx(snap.seconds["tts"])


def test_nested_blocks_count_once_in_the_total_and_each_under_its_stage():
    ledger = Ledger()
    with ledger.timed("answers") as outer:
        time.sleep(NAP)
        with ledger.timed("asr") as inner:
            time.sleep(NAP)
            with ledger.timed("tts"):
                time.sleep(NAP)
    with ledger.timed("lens"):
        time.sleep(NAP)
    snap = ledger.snapshot()
    assert snap.counts == {"answers": 1, "asr": 1, "tts": 1, "lens": 1} and snap.outermost == 2
    assert snap.seconds["answers"] == outer.seconds >= 3 * NAP       # the outer block holds the nested ones
    assert snap.seconds["asr"] == inner.seconds >= 2 * NAP
    assert NAP <= snap.seconds["tts"] <= inner.seconds
    # the total is the outermost blocks only: answers + lens, not answers + asr + tts + lens
    assert snap.total == pytest.approx(snap.seconds["answers"] + snap.seconds["lens"])
    assert sum(snap.seconds.values()) - snap.total >= 3 * NAP        # what summing every stage would double count
    assert 4 * NAP <= snap.total < 4 * NAP + 1.0


def test_a_block_inside_its_own_stage_adds_nothing_to_it():
    ledger = Ledger()
    with ledger.timed("asr") as outer:
        with ledger.timed("asr"):
            time.sleep(NAP)
    snap = ledger.snapshot()
    assert snap.counts == {"asr": 1} and snap.seconds["asr"] == outer.seconds == snap.total


def test_a_block_that_raises_is_still_timed_and_closes_its_nesting():
    ledger = Ledger()
    with pytest.raises(RuntimeError):
        with ledger.timed("lens"):
            time.sleep(NAP)
            raise RuntimeError("boom")
    with ledger.timed("tts"):           # outermost again: the failed block left the nesting
        pass
    snap = ledger.snapshot()
    assert snap.counts == {"lens": 1, "tts": 1} and snap.outermost == 2 and snap.seconds["lens"] >= NAP


def test_nesting_is_per_thread():
    ledger = Ledger()
    with ledger.timed("answers"):
        worker = threading.Thread(target=_nap, args=(ledger,))
        worker.start()
        worker.join()
    snap = ledger.snapshot()
    assert snap.outermost == 2                       # the other thread's block is outermost in its own thread
    assert snap.total == pytest.approx(snap.seconds["answers"] + snap.seconds["asr"])


def _nap(ledger):
    with ledger.timed("asr"):
        time.sleep(NAP)


def test_reset_empties_the_ledger():
    ledger = Ledger()
    with ledger.timed("lens"):
        pass
    ledger.reset()
    snap = ledger.snapshot()
    assert snap.seconds == {} and snap.counts == {} and snap.total == 0.0 and snap.outermost == 0


def test_the_module_functions_are_the_process_ledger():
    assert compute.timed.__self__ is compute.snapshot.__self__ is compute.reset.__self__ is compute.LEDGER


def _delta(before, after) -> tuple[Counter, Counter, float]:
    return (Counter(after.counts) - Counter(before.counts), Counter(after.seconds) - Counter(before.seconds),
            after.total - before.total)


def test_a_cached_synthesis_adds_no_compute(tmp_cache):
    text = "The ferry leaves the harbour at noon."
    before = compute.snapshot()
    tts.synthesize(text, item_id="c1")
    middle = compute.snapshot()
    counts, seconds, total = _delta(before, middle)
    assert counts == {"tts": 1} and seconds["tts"] > 0 and total == pytest.approx(seconds["tts"])
    tts.synthesize(text, item_id="c1")                          # a cache hit
    assert compute.snapshot() == middle


def test_a_cascade_answer_counts_its_asr_once_and_a_cached_answer_adds_nothing(tmp_cache):
    from harness.asr import load_asr
    from harness.lm import load_backbone
    from harness.runner import Runner
    from harness.systems.cascade import Cascade
    from harness.tasks import load_task

    task, cascade = load_task("sentiment"), Cascade(load_asr(), load_backbone())
    items = task.subset(1)
    runner = Runner(progress=False)
    runner.clean_audio(items[0])                                # synthesised (and cached) before measuring
    before = compute.snapshot()
    runner.answers(cascade, task, items)
    middle = compute.snapshot()
    counts, seconds, total = _delta(before, middle)
    assert counts == {"answers": 1, "asr": 1}                   # the audio came from the TTS cache
    assert 0 < seconds["asr"] < seconds["answers"]              # the transcription is inside the answer…
    assert total == pytest.approx(seconds["answers"])           # …and in the total once, as part of it
    assert runner.inference_seconds[cascade.name] == pytest.approx(seconds["answers"])
    again = Runner(progress=False)                               # a new run: the answer is on disk
    assert again.answers(cascade, task, items) == runner.answers(cascade, task, items)
    assert compute.snapshot() == middle and not again.inferences


# -- the terminal summary ----------------------------------------------------------------------------------
def _root_conftest():
    spec = importlib.util.spec_from_file_location("root_conftest_under_test", paths.ROOT / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Reporter:
    def __init__(self):
        self.lines = []

    def section(self, title, sep="=", **kw):
        self.lines.append(f"== {title} ==")

    def write_line(self, line, **kw):
        self.lines.append(line)


def _summary(monkeypatch, ledger, *, wall, inferences=None, seconds=None):
    monkeypatch.setattr(compute, "snapshot", ledger.snapshot)
    runner = SimpleNamespace(inferences=Counter(inferences or {}), inference_seconds=Counter(seconds or {}))
    config = SimpleNamespace(_started=time.perf_counter() - wall, _evidence=SimpleNamespace(runner=runner))
    reporter = _Reporter()
    _root_conftest().pytest_terminal_summary(reporter, config)
    return reporter.lines


def test_summary_lists_stages_the_total_and_the_overhead_ratio(monkeypatch):
    ledger = Ledger()
    ledger.seconds.update({"answers": 2.0, "asr": 0.5, "tts": 1.0})
    ledger.counts.update({"answers": 4, "asr": 4, "tts": 4})
    ledger.total, ledger.outermost = 3.0, 8                   # answers + tts: asr ran inside the answers
    lines = _summary(monkeypatch, ledger, wall=12.0, inferences={"cascade": 4}, seconds={"cascade": 2.0})
    start = lines.index("== model compute by stage (this session only: pytester subprocess runs report their own) ==")
    assert lines[0] == "== answers inferred (the rest came from the cache) =="       # the answers section first
    assert lines[1].startswith("cascade") and lines[2].startswith("all") and start == 3
    stages = lines[start + 1: start + 4]
    assert [line.split()[0] for line in stages] == ["answers", "tts", "asr"]             # most seconds first
    assert stages[0].split()[1:] == ["4", "calls", "2.0", "s"]
    total = lines[start + 4]
    assert total.startswith("compute (outermost blocks") and "3.0 s of 12.0 s session wall" in total
    assert total.endswith("overhead ratio wall / compute 4.00")


def test_summary_without_model_compute_has_no_compute_section(monkeypatch):
    assert _summary(monkeypatch, Ledger(), wall=1.0) == []
