"""`pytest --tasks …`: which claims a model gets follows the tasks' own metadata; paper datasets skip offline with the
reason (and fail under --strict); a task folder of your own runs end to end. (Subprocess runs, as in
test_collection.py.)"""
from __future__ import annotations

import pytest

from harness import paths

pytest_plugins = ["pytester"]

ROOT = paths.ROOT
EQ = str(ROOT / "equivalence_tests")
BASE = ["--rootdir", str(ROOT), "-p", "no:cacheprovider"]
OWN = str(paths.USER_TASKS / "recorded_sentiment")


def _ids(result) -> set[str]:
    return {line.split("[", 1)[1].rstrip("]") for line in result.outlines if "::" in line and "[" in line}


def test_paper_tasks_are_collected_with_their_names(pytester):
    ids = _ids(pytester.runpytest_subprocess(EQ, *BASE, "--collect-only", "-q", "--tasks", "ag_news,meld"))
    assert {"ultravox-v0_6-8b/ag_news", "qwen2-audio-7b-instruct/meld", "phi-4-multimodal-instruct/ag_news/babble",
            "voxtral-mini-3b/meld"} <= ids
    assert all(i.split("/")[1] in ("ag_news", "meld") for i in ids)
    # meld is text-insufficient (its own metadata): a model without a claims file gets only the agreement claim
    assert not any(i.startswith("voxtral-mini-3b/meld/") for i in ids)


def test_paper_tasks_skip_offline_with_the_reason_and_fail_under_strict(pytester):
    select = ["--tasks", "meld", "-k", "ultravox-v0_6-8b and test_agreement", "-rs"]
    result = pytester.runpytest_subprocess(EQ, *BASE, *select)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*meld (ajyy/MELD_audio): HF_HUB_OFFLINE=1 (hub access disabled)*"])
    strict = pytester.runpytest_subprocess(EQ, *BASE, *select, "--strict")
    strict.assert_outcomes(errors=1)      # the skip happens at setup, so --strict reports it as an error
    strict.stdout.fnmatch_lines(["*--strict: this test was skipped (*meld (ajyy/MELD_audio): HF_HUB_OFFLINE=1*"])


def test_unknown_task_is_a_usage_error_naming_it(pytester):
    result = pytester.runpytest_subprocess(EQ, *BASE, "--collect-only", "--tasks", "topic,sentimental")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--tasks: unknown task 'sentimental'*"])


def test_own_task_folder_gets_the_claims_its_metadata_and_the_claims_file_give(pytester):
    result = pytester.runpytest_subprocess(EQ, *BASE, "--collect-only", "-q", "--tasks", OWN)
    ids = _ids(result)
    assert f"ref-disguised-cascade/{OWN}" in ids                      # [user_tasks.text_sufficient] of its file
    assert f"granite-speech-3_3-2b/{OWN}/babble" in ids               # no file: the defaults for its kind
    assert not any(i.startswith("ref-acoustic/") for i in ids)        # its file says nothing about such tasks


@pytest.mark.slow
def test_own_task_folder_with_recordings_runs_the_agreement_claim(pytester, session_cache):
    result = pytester.runpytest_subprocess(EQ, *BASE, "--tasks", OWN, "-k", "ref-disguised-cascade", "-rA")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*test_agreement?ref-disguised-cascade/{OWN}?*"])
