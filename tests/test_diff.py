"""Baseline diffs: a flipped agreement verdict gives a BROKE headline and a non-zero status; baselines are
found per model and revision."""
import dataclasses
import subprocess
import sys

import pytest

from harness.__main__ import main
from harness.report.diff import baseline_for, baseline_path, compare, find_baseline, moved, save_baselines
from harness.report.record import RunRecord, build_record
from harness.report.render import write_reports
from tests.test_record import agreement_verdict, sample_record

NEW_SHA = "5d1c0f0e7a" + "0" * 30


@pytest.fixture(scope="module")
def baseline():
    return sample_record(flip_sentiment=0.03)


@pytest.fixture(scope="module")
def broken():
    """The next release: a share of ultravox's sentiment answers flipped (what the claims' flip mutant does)."""
    record = sample_record(flip_sentiment=0.35)
    for m in record.provenance["models"]:
        if m["id"] == "ultravox-v0_5-8b":
            m["revision"] = NEW_SHA
    return record


def _replace(record, key, **changes):
    return RunRecord(record.provenance, [dataclasses.replace(v, **changes) if v.key == key else v
                                         for v in record.verdicts], record.curves, record.created)


def test_the_flip_breaks_ultravox_sentiment(baseline, broken):
    old = {v.key: v for v in baseline.verdicts}["ultravox-v0_5-8b/sentiment/agreement"]
    new = {v.key: v for v in broken.verdicts}["ultravox-v0_5-8b/sentiment/agreement"]
    assert old.passed and old.observed == "equivalent" and not new.passed and new.observed == "divergent"


def test_a_flipped_agreement_verdict_is_a_broke_headline_and_status_1(baseline, broken):
    diff = compare(broken, baseline)
    new = {v.key: v for v in broken.verdicts}["ultravox-v0_5-8b/sentiment/agreement"]
    old = {v.key: v for v in baseline.verdicts}["ultravox-v0_5-8b/sentiment/agreement"]
    expected = (f"BROKE EQUIVALENCE: ultravox-v0_5-8b sentiment κ {old.value:.2f} → {new.value:.2f} "
                f"(revision 779bcda5ad → 5d1c0f0e7a)")
    assert diff.headlines()[0] == expected
    assert diff.exit_status == 1 and [c.key for c in diff.broke] == ["ultravox-v0_5-8b/sentiment/agreement"]
    assert diff.still_failing == ["qwen2-audio-7b-instruct/sentiment/agreement"]
    assert expected in diff.markdown() and diff.markdown().startswith("**Something broke**")


def test_the_way_back_reaches_equivalence_and_exits_zero(baseline, broken):
    diff = compare(baseline, broken)
    assert diff.headlines()[0].startswith("REACHED EQUIVALENCE: ultravox-v0_5-8b sentiment κ ")
    assert diff.exit_status == 0


def test_an_identical_run_changes_nothing(baseline):
    diff = compare(baseline, baseline)
    assert diff.changes == [] and diff.exit_status == 0 and diff.compared == len(baseline.verdicts)
    assert "no change" in diff.summary()


def test_a_statistic_that_moved_beyond_its_ci_is_listed_but_not_a_break(baseline):
    key = "ultravox-v0_5-8b/topic/emergence"
    run = _replace(baseline, key, value=0.22, ci=(0.18, 0.26))
    diff = compare(run, baseline)
    assert diff.headlines() == ["MOVED beyond CI: ultravox-v0_5-8b topic emergence: "
                                "lens_precision 0.34 [0.30, 0.38] → 0.22 [0.18, 0.26]"]
    assert diff.exit_status == 0
    assert compare(_replace(baseline, key, value=0.33, ci=(0.29, 0.37)), baseline).changes == []


def test_moved_needs_disjoint_cis_or_a_value_outside_the_only_ci(baseline):
    v = {x.key: x for x in baseline.verdicts}["ultravox-v0_5-8b/topic/emergence"]
    assert not moved(v, dataclasses.replace(v, value=0.31, ci=(0.27, 0.35)))
    assert moved(v, dataclasses.replace(v, value=0.2, ci=None))
    assert not moved(dataclasses.replace(v, ci=None), dataclasses.replace(v, value=0.1, ci=None))


def test_other_claims_now_failing_new_and_gone(baseline):
    run = _replace(baseline, "ultravox-v0_5-8b/topic/collapse", passed=False, observed="does not collapse",
                   value=0.71, ci=(0.64, 0.78))
    run.verdicts = [v for v in run.verdicts if v.key != "ultravox-v0_5-8b/sentiment/noise/babble"]
    run.verdicts.append(dataclasses.replace(agreement_verdict("ultravox-v0_5-8b", "topic", 0.4, seed=9),
                                            condition="white@0"))
    diff = compare(run, baseline)
    heads = diff.headlines()
    assert heads[0] == ("NOW FAILING: ultravox-v0_5-8b topic collapse: collapses → does not collapse, "
                        "accuracy_erased 0.25 → 0.71")
    assert heads[1].startswith("NEW FAILING: ultravox-v0_5-8b/topic/white@0: NOT equivalent")
    assert heads[-1] == "GONE (not in this run): ultravox-v0_5-8b/sentiment/noise/babble"
    assert diff.exit_status == 1 and len(diff.broke) == 2


def test_baselines_are_kept_per_model_and_revision(baseline, broken, tmp_path):
    paths = save_baselines(baseline, tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in paths) == [
        "qwen2-audio-7b-instruct/0a095220c30b7b31434169c3086508ef3ea5bf0a.json",
        "ultravox-v0_5-8b/779bcda5ad4b7ed18fd0a37f065a564ca18efa31.json"]
    exact = find_baseline("ultravox-v0_5-8b", "779bcda5ad4b7ed18fd0a37f065a564ca18efa31", tmp_path)
    assert {v.model for v in exact.verdicts} == {"ultravox-v0_5-8b"} and set(exact.curves) == {"ultravox-v0_5-8b"}
    # the new revision has no baseline yet: the previous revision's is used
    assert find_baseline("ultravox-v0_5-8b", NEW_SHA, tmp_path).verdicts == exact.verdicts
    assert find_baseline("unknown-model", "x", tmp_path) is None
    both = baseline_for(broken, tmp_path)
    assert sorted(v.key for v in both.verdicts) == sorted(v.key for v in baseline.verdicts)
    assert baseline_path("phi-4", "refs/pr/70", tmp_path) == tmp_path / "phi-4" / "refs_pr_70.json"


def test_write_reports_against_a_baseline_directory(baseline, broken, tmp_path):
    save_baselines(baseline, tmp_path / "baselines")
    md, html, status = write_reports(broken, tmp_path / "out", baseline=tmp_path / "baselines")
    assert status == 1
    assert "BROKE EQUIVALENCE: ultravox-v0_5-8b sentiment" in md.read_text()
    assert "BROKE EQUIVALENCE: ultravox-v0_5-8b sentiment" in html.read_text()
    _, _, status = write_reports(broken, tmp_path / "out2", baseline=tmp_path / "empty")
    assert status == 1 and "No baseline found under" in (tmp_path / "out2" / "report.md").read_text()


def test_cli_report_with_baseline_prints_broke_and_exits_1(baseline, broken, tmp_path, capsys):
    old, new = baseline.write(tmp_path / "old.json"), broken.write(tmp_path / "new.json")
    assert main(["report", str(new), "--baseline", str(old), "--out", str(tmp_path / "out")]) == 1
    assert "BROKE EQUIVALENCE: ultravox-v0_5-8b sentiment κ" in capsys.readouterr().out
    assert main(["report", str(old), "--baseline", str(old), "--out", str(tmp_path / "same")]) == 0


def test_exit_status_reaches_the_shell(baseline, broken, tmp_path):
    old, new = baseline.write(tmp_path / "old.json"), broken.write(tmp_path / "new.json")
    run = subprocess.run([sys.executable, "-m", "harness", "report", str(new), "--baseline", str(old),
                          "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr
    assert "BROKE EQUIVALENCE" in run.stdout and "Traceback" not in run.stderr


def test_a_system_outside_the_registry_is_baselined_as_local(tmp_path):
    record = build_record([agreement_verdict("my-local-system", "topic", 0.02)])
    assert [p.relative_to(tmp_path).as_posix() for p in save_baselines(record, tmp_path)] == [
        "my-local-system/local.json"]


def test_a_reference_model_is_baselined_under_its_pinned_revision(tmp_path):
    from harness.specs import get_spec

    record = build_record([agreement_verdict("ref-cascade", "topic", 0.02)])
    assert [p.relative_to(tmp_path).as_posix() for p in save_baselines(record, tmp_path)] == [
        f"ref-cascade/{get_spec('ref-cascade').revision}.json"]


def test_a_missing_baseline_file_is_a_clear_error_but_a_missing_directory_is_no_baseline(baseline, tmp_path, capsys):
    new = baseline.write(tmp_path / "new.json")
    assert main(["report", str(new), "--baseline", str(tmp_path / "old.json"), "--out", str(tmp_path / "o")]) == 2
    assert "old.json: no such record file" in capsys.readouterr().err
    assert main(["report", str(new), "--baseline", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 1
    assert "No baseline found under" in capsys.readouterr().out
