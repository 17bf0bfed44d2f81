"""Release watcher on recorded hub answers (fixtures/hub/): new commits and new family members are found, an
unreachable hub is one clear line and exit status 3. Nothing here talks to a hub."""
import json
import shutil
import subprocess
import sys

import pytest

from harness import paths, watch
from harness.__main__ import main
from harness.specs import DEFAULT_ROOT, load_specs

HUB = paths.HUB_RECORDINGS
NEW_RELEASE = HUB / "new-release.json"
UNREACHABLE = HUB / "unreachable.json"
PINNED_8B = "779bcda5ad4b7ed18fd0a37f065a564ca18efa31"


@pytest.fixture(scope="module")
def plan():
    return watch.make_plan(watch.RecordedHub.load(NEW_RELEASE))


def by_id(plan):
    return {m["id"]: m for m in plan["models"]}


def test_a_new_commit_of_a_pinned_repo_is_planned_at_that_commit(plan):
    m = by_id(plan)["ultravox-v0_5-8b"]
    recorded = json.loads(NEW_RELEASE.read_text())["list_repo_commits"]["fixie-ai/ultravox-v0_5-llama-3_1-8b@main"]
    assert m["status"] == "new_commits" and m["test"]
    assert m["pinned"] == PINNED_8B and m["revision"] == recorded[0]["commit_id"] != PINNED_8B
    assert [c["commit_id"] for c in m["new_commits"]] == [recorded[0]["commit_id"]]
    assert {"model": "ultravox-v0_5-8b", "revision": recorded[0]["commit_id"],
            "repo": "fixie-ai/ultravox-v0_5-llama-3_1-8b", "family": "ultravox"} in plan["matrix"]["include"]


def test_up_to_date_models_are_not_planned(plan):
    models = by_id(plan)
    for mid in ("ultravox-v0_5-1b", "qwen2-audio-7b-instruct", "voxtral-mini-3b", "qwen2_5-omni-7b"):
        assert models[mid]["status"] == "up_to_date" and not models[mid]["test"], mid
    assert models["gemini-2_0-flash"]["status"] == "not_on_hub"
    planned = {m["model"] for m in plan["matrix"]["include"]}
    assert planned == {"ultravox-v0_5-8b", "ultravox-v0_6-8b", "granite-speech-3_3-2b", "phi-4-multimodal-instruct"}


def test_unpinned_refs_are_planned_at_their_head(plan):
    phi = by_id(plan)["phi-4-multimodal-instruct"]
    assert phi["status"] == "unpinned" and phi["ref"] == "refs/pr/70" and len(phi["revision"]) == 40
    assert by_id(plan)["ultravox-v0_6-8b"]["ref"] == "main"


def test_a_new_family_member_is_flagged_and_copies_are_not(plan):
    assert [(f["repo"], f["family"]) for f in plan["new_family_members"]] == [
        ("fixie-ai/ultravox-v0_7-llama-3_1-8b", "ultravox")]
    # not flagged: v0_4 and v0_5-70b (older than the newest tracked ultravox), the -gguf copy, Qwen's GPTQ/AWQ
    # copies, Qwen2-Audio-7B (base, published beside the tracked Instruct)


def test_include_all_plans_every_model():
    plan = watch.make_plan(watch.RecordedHub.load(NEW_RELEASE), include_all=True)
    assert {m["model"] for m in plan["matrix"]["include"]} == set(load_specs())


def test_a_pin_missing_from_the_history_and_a_repo_error_are_reported_not_fatal():
    data = json.loads(NEW_RELEASE.read_text())
    data["list_repo_commits"]["fixie-ai/ultravox-v0_5-llama-3_1-8b@main"] = [
        {"commit_id": "f" * 40, "title": "force-pushed history", "created_at": "2026-11-19T00:00:00+00:00"}]
    del data["list_repo_commits"]["Qwen/Qwen2.5-Omni-3B@main"]
    plan = watch.make_plan(watch.RecordedHub(data))
    models = by_id(plan)
    assert models["ultravox-v0_5-8b"]["status"] == "pinned_not_found" and models["ultravox-v0_5-8b"]["test"]
    assert models["qwen2_5-omni-3b"]["status"] == "error" and "Qwen/Qwen2.5-Omni-3B@main" in models[
        "qwen2_5-omni-3b"]["error"]
    assert any(line.startswith("qwen2_5-omni-3b: hub error") for line in watch.summary_lines(plan))


def test_recorded_fixture_answers_like_hfapi():
    """The fake exposes HfApi's method names and keyword arguments; answers have GitCommitInfo/ModelInfo fields."""
    import inspect

    from huggingface_hub import HfApi

    hub = watch.RecordedHub.load(NEW_RELEASE)
    for name in ("list_repo_commits", "list_models"):
        real = inspect.signature(getattr(HfApi, name)).parameters
        assert {p for p in inspect.signature(getattr(hub, name)).parameters if p != "_"} - {"self"} <= set(real)
    commit = hub.list_repo_commits("Qwen/Qwen2-Audio-7B-Instruct", revision="main")[0]
    assert {"commit_id", "title", "created_at"} <= set(vars(commit))


def test_recording_hub_round_trips_to_the_same_plan(tmp_path, plan):
    recorder = watch.RecordingHub(watch.RecordedHub.load(NEW_RELEASE))
    again = watch.make_plan(recorder)
    recorder.save(tmp_path / "rec.json")
    replayed = watch.make_plan(watch.RecordedHub.load(tmp_path / "rec.json"))
    for p in (again, replayed):
        assert p["models"] == plan["models"] and p["new_family_members"] == plan["new_family_members"]


def test_cli_watch_writes_the_plan_and_github_outputs(tmp_path, capsys):
    out, gh = tmp_path / "plan.json", tmp_path / "github_output"
    assert main(["watch", "--hub-fixture", str(NEW_RELEASE), "--out", str(out), "--github-output", str(gh)]) == 0
    printed = capsys.readouterr().out
    assert "ultravox-v0_5-8b: 1 new commit(s) on main: 779bcda5ad →" in printed
    assert "NEW FAMILY MEMBER: fixie-ai/ultravox-v0_7-llama-3_1-8b" in printed
    outputs = dict(line.split("=", 1) for line in gh.read_text().splitlines())
    assert json.loads(outputs["matrix"]) == json.loads(out.read_text())["matrix"]
    assert outputs["count"] == "4" and outputs["new_members"] == "1"


# ----------------------------------------------------------------------------- unreachable hub
def test_unreachable_hub_raises_one_line():
    with pytest.raises(watch.HubUnreachable, match=r"^hub unreachable \(ConnectionError: \[Errno -2\] Name or"):
        watch.make_plan(watch.RecordedHub.load(UNREACHABLE))


def test_offline_mode_is_refused_before_any_request(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(watch.HubUnreachable, match="HF_HUB_OFFLINE=1 is set"):
        watch.live_api()


@pytest.mark.parametrize("args", [["--hub-fixture", str(UNREACHABLE)], []])
def test_cli_unreachable_is_a_clear_message_and_exit_3(args, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["watch", "--out", str(tmp_path / "plan.json"), *args]) == watch.EXIT_UNREACHABLE
    err = capsys.readouterr().err
    assert err.startswith("hub unreachable") and err.strip().endswith("no plan written")
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "plan.json").exists()


def test_unreachable_hub_in_a_real_process_has_no_stack_trace():
    env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-m", "harness", "watch"], capture_output=True, text=True, env=env,
                         timeout=300)
    assert run.returncode == 3
    assert run.stderr.strip() == ("hub unreachable: HF_HUB_OFFLINE=1 is set; unset it to ask the hub for new "
                                  "releases; no plan written")


def test_network_errors_are_told_apart_from_repo_errors():
    from huggingface_hub.errors import OfflineModeIsEnabled, RepositoryNotFoundError

    assert watch._unreachable(OfflineModeIsEnabled("offline"))
    assert watch._unreachable(ConnectionError("dns")) and watch._unreachable(TimeoutError())
    assert not watch._unreachable(RepositoryNotFoundError.__new__(RepositoryNotFoundError))
    assert not watch._unreachable(LookupError("no recorded answer"))
    transport = type("ConnectError", (type("TransportError", (Exception,), {"__module__": "httpx"}),),
                     {"__module__": "httpx"})
    assert watch._unreachable(transport("Name or service not known"))


def test_unreachable_in_the_middle_aborts_the_plan():
    class Flaky(watch.RecordedHub):
        def list_models(self, **kw):
            raise ConnectionError("connection reset")

    with pytest.raises(watch.HubUnreachable, match="connection reset"):
        watch.make_plan(Flaky.load(NEW_RELEASE))


# ----------------------------------------------------------------------------- pinning
@pytest.fixture
def registry(tmp_path):
    root = tmp_path / "models"
    shutil.copytree(DEFAULT_ROOT, root)
    return root


def test_pin_rewrites_the_top_level_revision_only(registry):
    watch.pin("ultravox-v0_6-8b", "a" * 40, registry)
    spec = load_specs(registry)["ultravox-v0_6-8b"]
    assert spec.revision == "a" * 40
    assert spec.backbone.revision == load_specs()["ultravox-v0_6-8b"].backbone.revision


def test_pin_errors_name_the_problem(registry, capsys):
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        watch.pin("nope", "a" * 40, registry)
    assert main(["watch", "--pin", "ultravox-v0_6-8b"]) == 2
    assert "--pin takes MODEL=REVISION" in capsys.readouterr().err


def test_cli_pin(registry, monkeypatch, capsys):
    monkeypatch.setattr(watch.pin, "__defaults__", (registry,))   # pin a copy, never the real registry
    assert main(["watch", "--pin", "ultravox-v0_5-8b=" + "b" * 40]) == 0
    assert load_specs(registry)["ultravox-v0_5-8b"].revision == "b" * 40
    assert load_specs()["ultravox-v0_5-8b"].revision == PINNED_8B          # the real registry is untouched
    assert capsys.readouterr().out.startswith("pinned ultravox-v0_5-8b to bbbb")


@pytest.mark.parametrize("revision, message", [
    ("abc\\g<0>", "is not a commit sha or ref name"),
    ('abc"\nloader = "api', "is not a commit sha or ref name"),
    ("main", "would make the entry invalid.*not a pin"),
])
def test_a_bad_pin_is_refused_before_the_registry_is_written(registry, revision, message):
    path = registry / "ultravox-v0_5-8b.toml"
    before = path.read_bytes()
    with pytest.raises(ValueError, match=message):
        watch.pin("ultravox-v0_5-8b", revision, registry)
    assert path.read_bytes() == before
    assert load_specs(registry)["ultravox-v0_5-8b"].revision == load_specs()["ultravox-v0_5-8b"].revision


def test_cli_bad_pin_is_exit_2_and_leaves_valid_toml(registry, monkeypatch, capsys):
    monkeypatch.setattr(watch.pin, "__defaults__", (registry,))
    assert main(["watch", "--pin", "ultravox-v0_5-8b=abc\\g<0>"]) == 2
    assert "is not a commit sha or ref name" in capsys.readouterr().err
    load_specs(registry)
