"""`python -m harness answer`: the table and the JSON lines a user reads."""
import json

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


def test_bad_condition_is_a_clear_error():
    with pytest.raises(ValueError, match="loud@3"):
        main(["answer", "--task", "topic", "--condition", "loud@3"])


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(Exception, match="sentiment"):
        main(["answer", "--task", "sentimental"])


@pytest.mark.parametrize("condition, message", [("white@1e308", "outside ±150 dB"), ("file@0", "needs a noise file")])
def test_a_condition_the_runner_cannot_make_fails_before_anything_loads(condition, message, monkeypatch):
    import harness.lm

    monkeypatch.setattr(harness.lm, "load_backbone", lambda *a, **k: pytest.fail("the backbone was loaded"))
    with pytest.raises(ValueError, match=message):
        main(["answer", "--task", "topic", "--condition", condition])


@pytest.mark.parametrize("n", ["0", "-3"])
def test_items_below_one_is_a_usage_error(n, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["answer", "--task", "topic", "--items", n])
    assert exit_.value.code == 2
    assert f"argument --items: expected a positive integer, got {n}" in capsys.readouterr().err
