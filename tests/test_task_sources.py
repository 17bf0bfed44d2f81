"""Task sources: mini twins, the paper's hub datasets (on local copies in their real format) and task folders of
your own with recordings — one naming scheme for `pytest --tasks` and `python -m harness answer --task`."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from harness import paths
from harness.audio import AudioError, Condition, measured_snr_db
from harness.tasks import (HUB_TASKS, TaskSchemaError, UnknownTaskError, claim_tasks, describe, load_hub_task,
                           load_recording, load_task, mini_task_names, parse_sources)

OWN = paths.USER_TASKS / "recorded_sentiment"
HUB_COPIES = paths.HUB_DATASETS


# --- naming a task ------------------------------------------------------------------------------------------
def test_default_sources_are_the_mini_twins_and_lists_are_parsed():
    assert parse_sources(None) == parse_sources([]) == mini_task_names()
    assert parse_sources(["ag_news,meld", "topic", "meld"]) == ["ag_news", "meld", "topic"]
    assert parse_sources("fixtures/x/ ,topic") == ["fixtures/x", "topic"]


def test_describe_reads_each_kind_of_source_from_its_own_metadata():
    assert describe("topic").origin == "mini" and describe("topic").text_sufficient
    assert describe("speaking_rate").text_sufficient is False
    meld = describe("meld")
    assert (meld.origin, meld.kind, meld.text_sufficient) == ("hub", "classification", False)
    own = describe(str(OWN))
    assert (own.origin, own.name, own.text_sufficient) == ("folder", "recorded-sentiment", True)
    assert describe(str(OWN / "task.toml")).name == "recorded-sentiment"


def test_claim_tasks_come_from_metadata_not_a_list(tmp_path):
    ts, ti = claim_tasks([describe(s) for s in mini_task_names()])
    assert ts == ["commonsense", "sentiment", "topic"] and ti == ["speaking_rate"]   # trivia: open QA, no κ
    for name in ("topic", "speaking_rate"):   # a new mini twin is picked up by its own text_sufficient flag
        shutil.copy(paths.TASKS / f"{name}.toml", tmp_path / f"{name}.toml")
    (tmp_path / "shapes.toml").write_text('kind = "classification"\ntext_sufficient = true\npaper_task = "x"\n'
                                          'instruction = "Which shape?"\nlabels = ["circle", "square"]\n')
    infos = [describe(s, root=tmp_path) for s in mini_task_names(tmp_path)]
    assert claim_tasks(infos) == (["shapes", "topic"], ["speaking_rate"])


def test_unknown_source_names_every_kind_of_source():
    with pytest.raises(UnknownTaskError) as e:
        load_task("sentimental")
    assert all(word in str(e.value) for word in ("speaking_rate", "ag_news", "mustard", "task folder"))
    with pytest.raises(FileNotFoundError, match="no such folder"):
        describe("./no/such/folder")


# --- a task folder of your own -------------------------------------------------------------------------------
def test_own_folder_loads_with_recordings_and_train_split():
    task = load_task(str(OWN))
    assert task.name == "recorded-sentiment" and task.source == f"folder:{OWN}"
    assert len(task.items) == 48 and len(task.train) == 8
    assert {it.label for it in task.items} == {"positive", "negative"}
    assert task.items[0].id == "recorded-sentiment-e01" and task.train[0].id == "recorded-sentiment-train-t01"
    assert all(it.audio and Path(it.audio).is_file() for it in task.items + task.train)
    assert {Path(it.audio).suffix for it in task.items} == {".flac", ".mp3", ".wav"}


def _folder(tmp_path, items, *, toml=None, train=None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "task.toml").write_text(toml or 'kind = "classification"\ntext_sufficient = true\n'
                                               'instruction = "Good or bad?"\nlabels = ["bad", "good"]\n')
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    if train is not None:
        (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    return tmp_path


def test_own_folder_ids_default_to_line_numbers_and_text_items_use_tts(tmp_path):
    task = load_task(str(_folder(tmp_path / "my task", [{"text": "Lovely.", "label": "good"},
                                                         {"text": "Awful.", "label": "bad", "id": "x7"}])))
    assert [it.id for it in task.items] == ["my-task-0001", "my-task-x7"]
    assert task.items[0].audio is None and "audio_sha256" not in task.items[0].as_dict()


@pytest.mark.parametrize("row, problem", [
    ({"text": "Ok.", "label": "good", "audio": "clips/none.wav"}, "audio 'clips/none.wav': no such file"),
    ({"text": "Ok.", "label": "good", "audio": "notes.txt"}, "audio 'notes.txt': unsupported file type"),
    ({"text": "Ok.", "label": "good", "audio": 3}, "'audio' must be a file path"),
    ({"text": "Ok.", "label": "maybe"}, "label 'maybe' not in task labels"),
    ({"text": "Ok.", "label": "good", "id": "Bad Id!"}, "must look like"),
    ({"text": "Ok.", "label": "good", "speaker": "me"}, "unknown key(s) ['speaker']"),
])
def test_bad_item_is_reported_with_file_and_line(tmp_path, row, problem):
    (tmp_path / "notes.txt").write_text("not audio")
    folder = _folder(tmp_path, [{"text": "Fine.", "label": "good"}, row])
    with pytest.raises(TaskSchemaError) as e:
        load_task(str(folder))
    assert f"{folder / 'items.jsonl'}:2: " in str(e.value) and problem in str(e.value)


def test_bad_folder_files_are_named(tmp_path):
    with pytest.raises(TaskSchemaError, match=r"task\.toml: missing"):
        load_task(str(tmp_path))
    _folder(tmp_path, [{"text": "Fine.", "label": "good"}], toml='kind = "classification"\nlabels = ["a", "b"]\n')
    with pytest.raises(TaskSchemaError, match=r"task\.toml: 'text_sufficient' is required"):
        load_task(str(tmp_path))
    (tmp_path / "task.toml").write_text('kind = "classification"\ntext_sufficient = true\ninstruction = "?"\n'
                                        'labels = ["bad", "good"]\n')
    (tmp_path / "items.jsonl").unlink()
    with pytest.raises(TaskSchemaError, match=r"items\.jsonl: missing"):
        load_task(str(tmp_path))
    _folder(tmp_path, [{"text": "Fine.", "label": "good"}], train=[{"text": "Fine.", "label": "good"}])
    with pytest.raises(TaskSchemaError, match=r"train\.jsonl:1: evaluation text also in training|"
                                              r"items\.jsonl:1: evaluation text also in training"):
        load_task(str(tmp_path))


# --- recordings ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("clip", ["e01.mp3", "e02.wav", "e03.flac"])
def test_recordings_decode_to_16k_mono_with_their_duration(clip):
    path = OWN / "clips" / clip
    info = soundfile.info(str(path))
    audio = load_recording(path, "x")
    assert info.samplerate in (8_000, 16_000, 22_050)
    assert abs(audio.duration - info.duration) < 0.06 and audio.samples.dtype == np.float32


def test_stereo_is_averaged_and_a_broken_file_names_item_and_file(tmp_path):
    t = np.arange(8_000) / 8_000
    left, right = 0.4 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 440 * t)
    soundfile.write(tmp_path / "st.wav", np.stack([left, right], axis=1), 8_000)
    mono = load_recording(tmp_path / "st.wav", "st")
    assert abs(mono.rms - 0.3 / np.sqrt(2)) < 0.01
    (tmp_path / "bad.flac").write_bytes(b"not a flac file")
    with pytest.raises(AudioError, match=r"item 'b1'.*cannot decode .*bad\.flac"):
        load_recording(tmp_path / "bad.flac", "b1")


def test_runner_uses_the_recording_and_keys_its_cache_by_the_content(tmp_path, tmp_cache):
    from harness.runner import Runner

    copy = tmp_path / "own"
    shutil.copytree(OWN, copy)
    task = load_task(str(copy))
    item = task.items[1]
    runner = Runner(progress=False)
    np.testing.assert_array_equal(runner.clean_audio(item).samples, load_recording(item.audio, item.id).samples)
    noisy = runner.audio(task, item, Condition.parse("white@10#0"))   # noise goes on top of the recording
    assert abs(measured_snr_db(runner.clean_audio(item), noisy) - 10) < 0.01

    class Probe:
        name, fingerprint, needs_audio = "probe", "probe", True
    before = runner.key(Probe(), task, item, Condition())
    moved = load_task(str(shutil.copytree(copy, tmp_path / "moved")))
    assert runner.key(Probe(), moved, moved.items[1], Condition()) == before     # the path is not the key
    shutil.copy(OWN / "clips" / "e05.wav", copy / "clips" / "e02.wav")          # same name, other speech
    changed = load_task(str(copy))
    assert runner.key(Probe(), changed, changed.items[1], Condition()) != before


# --- the paper's datasets, read by `datasets` from local copies in the hub layout -------------------------------
@pytest.mark.parametrize("name", list(HUB_TASKS))
def test_hub_loader_reads_its_local_copy(name, tmp_cache):
    pytest.importorskip("datasets", reason="the hub loaders need the 'datasets' library: pip install -e '.[hub]'")
    task = load_hub_task(name, local=HUB_COPIES / name)
    assert task.source == f"local:{HUB_COPIES / name}" and task.text_sufficient is HUB_TASKS[name].text_sufficient
    assert task.items and all(it.id.startswith(f"{name}-") for it in task.items)
    assert all(it.label in it.options for it in task.items) if task.kind != "open_qa" else True
    if HUB_TASKS[name].audio_column:         # MELD, MUStARD: every item is its own recording
        assert all(load_recording(it.audio, it.id).duration > 1.0 for it in task.items)
    else:
        assert all(it.audio is None and it.text for it in task.items)


def test_hub_copies_map_labels_and_fields(tmp_cache):
    pytest.importorskip("datasets", reason="the hub loaders need the 'datasets' library: pip install -e '.[hub]'")
    ag = load_hub_task("ag_news", local=HUB_COPIES / "ag_news")
    assert [it.label for it in ag.items[:4]] == ["world", "sports", "business", "sci-tech"]
    csqa = load_hub_task("csqa", local=HUB_COPIES / "csqa")
    assert csqa.items[0].label == "refrigerator" and len(csqa.items[0].options) == 5
    trivia = load_hub_task("triviaqa", local=HUB_COPIES / "triviaqa")
    assert trivia.is_correct(trivia.items[0], "It is Planet Mars.")
    meld = load_hub_task("meld", local=HUB_COPIES / "meld")
    assert [it.label for it in meld.items] == ["joy", "sadness", "anger", "neutral"]
    mustard = load_hub_task("mustard", local=HUB_COPIES / "mustard")
    assert [it.label for it in mustard.items] == ["sarcastic", "not sarcastic"] * 2
    assert all(it.text == "" for it in mustard.items)   # Dynamic-SUPERB's copy has no transcript column
