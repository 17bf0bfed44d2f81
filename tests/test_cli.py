"""`python -m harness answer`: the table and the JSON lines a user reads."""
import json
from pathlib import Path

import pytest

from harness.__main__ import main


def test_answer_json_has_one_object_per_item_and_a_summary(tmp_cache, capsys):
    assert main(["answer", "--system", "oracle", "--task", "sentiment", "--items", "4", "--format", "json",
                 "--quiet"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    items, summary = lines[:-1], lines[-1]
    assert len(items) == 4 and summary["summary"] and summary["n"] == 4
    assert summary["accuracy"] == sum(i["correct"] for i in items) / 4
    assert summary["asr_wer"] == 0.0  # oracle: the transcript is the text
    assert {i["gold"] for i in items} == {"positive", "negative"}


def test_answer_table_with_noise(tmp_cache, capsys):
    assert main(["answer", "--task", "topic", "--items", "2", "--condition", "white@10", "--quiet"]) == 0
    from harness.tasks import load_task

    out = capsys.readouterr().out
    assert "accuracy" in out and "[white@10]" in out
    assert all(item.id in out for item in load_task("topic").subset(2))


def test_bad_condition_is_a_usage_error_naming_it(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["answer", "--task", "topic", "--condition", "loud@3"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "argument --condition" in err and "'loud@3'" in err


def test_unknown_task_lists_the_known_ones(capsys):
    assert main(["answer", "--task", "sentimental"]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'sentimental'" in err and "sentiment" in err and "ag_news" in err and "task folder" in err


def test_unknown_system_lists_the_registry(capsys):
    assert main(["answer", "--system", "ref-casc", "--task", "topic"]) == 2
    err = capsys.readouterr().err
    assert "unknown system 'ref-casc'" in err and "ref-cascade" in err and "ref-disguised-cascade" in err


def test_model_that_cannot_run_here_says_why(capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["answer", "--system", "qwen2-audio-7b-instruct", "--task", "topic"]) == 2
    assert "qwen2-audio-7b-instruct cannot run here:" in capsys.readouterr().err


def test_bad_task_folder_names_file_and_line(tmp_path, capsys):
    (tmp_path / "task.toml").write_text('kind = "classification"\ntext_sufficient = true\n'
                                        'instruction = "Good or bad?"\nlabels = ["bad", "good"]\n')
    (tmp_path / "items.jsonl").write_text('{"text": "Fine.", "label": "good"}\n{"text": "Meh.", "label": "so-so"}\n')
    assert main(["answer", "--system", "oracle", "--task", str(tmp_path)]) == 2
    assert f"{tmp_path / 'items.jsonl'}:2: label 'so-so' not in task labels" in capsys.readouterr().err


def test_registry_model_answers_a_task(tmp_cache, capsys):
    """Any registry id is a --system: the disguised cascade (a real ASR → backbone system) with its transcripts."""
    assert main(["answer", "--system", "ref-disguised-cascade", "--task", "sentiment", "--items", "2",
                 "--format", "json", "--quiet"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[-1]["n"] == 2 and "beam5" in lines[-1]["system"] and lines[-1]["asr_wer"] is not None
    assert all(line["transcript"] for line in lines[:-1])


def test_own_task_folder_with_recordings(tmp_cache, capsys):
    """The recordings are what the cascade hears (not TTS of the text): its transcripts match them."""
    from harness.asr import word_error_rate

    folder = Path(__file__).resolve().parents[1] / "fixtures/user-tasks/recorded_sentiment"
    assert main(["answer", "--task", str(folder), "--items", "4", "--format", "json", "--quiet"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    items, summary = lines[:-1], lines[-1]
    assert summary["task"] == "recorded-sentiment" and summary["source"] == f"folder:{folder}"
    assert [i["item"] for i in items] == ["recorded-sentiment-e01", "recorded-sentiment-e02",
                                          "recorded-sentiment-e03", "recorded-sentiment-e04"]
    assert word_error_rate([i["text"] for i in items], [i["transcript"] for i in items]) < 0.2


@pytest.mark.parametrize("condition, message", [("white@1e308", "outside ±150 dB"), ("file@0", "needs a noise file")])
def test_a_condition_the_runner_cannot_make_fails_before_anything_loads(condition, message, monkeypatch, capsys):
    import harness.lm

    monkeypatch.setattr(harness.lm, "load_backbone", lambda *a, **k: pytest.fail("the backbone was loaded"))
    with pytest.raises(SystemExit) as exit_:
        main(["answer", "--task", "topic", "--condition", condition])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("n", ["0", "-3"])
def test_items_below_one_is_a_usage_error(n, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["answer", "--task", "topic", "--items", n])
    assert exit_.value.code == 2
    assert f"argument --items: expected a positive integer, got {n}" in capsys.readouterr().err


def test_models_with_a_bad_registry_entry_names_the_file_and_field(tmp_path, capsys):
    """A registry entry that fails validation is an error line naming its file, exit 2 — not a traceback."""
    import shutil

    from harness import paths

    shutil.copy(paths.MODELS / "ultravox-v0_6-8b.toml", tmp_path / "ultravox-v0_6-8b.toml")
    assert main(["models", "--registry", str(tmp_path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["id"] == "ultravox-v0_6-8b"
    (tmp_path / "broken.toml").write_text('id = "broken"\nfamily = 3\n')
    assert main(["models", "--registry", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: broken.toml:") and "Traceback" not in err
    assert main(["models", "--registry", str(tmp_path / "missing")]) == 2
    assert "no model entries" in capsys.readouterr().err
