"""``python -m harness doctor``: offline on the committed tiny Ultravox (random weights: its generations are not
options, so the agreement check must fail and name the items) and on a trained reference model (agrees)."""
import types

import pytest

from harness import doctor
from harness.specs import load_specs
from harness.systems.ultravox_fixture import tiny_spec


@pytest.fixture(scope="module")
def tiny_report():
    return doctor.run("ultravox-tiny", device="cpu", items=2, tasks=["sentiment"], hub=False, out=lambda s: None)


def test_tiny_checkpoint_loads_and_its_audio_positions_check(tiny_report):
    assert tiny_report.positions_ok is True
    line = next(x for x in tiny_report.lines if "audio positions (" in x)
    n = int(line.split("ok: ")[1].split(" audio")[0])
    assert f"the merge changed {n} rows; the processor asked for {n}" in line
    assert all("local" in v for v in tiny_report.pins.values())
    assert any("weights from the checkpoint: {'audio_tower': 37, 'multi_modal_projector': 4" in x
               for x in tiny_report.lines)


def test_a_random_model_fails_agreement_naming_the_items(tiny_report):
    assert tiny_report.agreement == {"sentiment": 0.0}
    assert tiny_report.failures == ["agreement"] and tiny_report.exit_status == 1
    named = [x for x in tiny_report.lines if x.strip().startswith("sentiment/")]
    assert len(named) == 2 and all("scored" in x and "generated" in x for x in named)
    assert tiny_report.lines[-1] == "doctor: FAILED: agreement"


def test_a_trained_reference_model_passes():
    report = doctor.run("ref-cascade", device="cpu", items=2, tasks=["sentiment"], hub=False, out=lambda s: None)
    assert report.positions_ok is True
    assert report.agreement == {"sentiment": 1.0} and report.exit_status == 0, report.lines


def test_offline_load_failure_says_what_to_do(tmp_path):
    report = doctor.run("ultravox-v0_5-1b", device="cpu", hub=False, out=lambda s: None)
    assert report.exit_status == 2 and report.load_failed
    failed = next(x for x in report.lines if "FAILED:" in x)
    assert "HF_HUB_OFFLINE" in failed and "huggingface-cli download" in failed and "Traceback" not in failed


def test_revisions_resolve_to_shas_and_say_what_to_pin():
    spec = load_specs()["ultravox-v0_6-8b"]                      # revision "main": not pinned
    sha = "0123456789abcdef0123456789abcdef01234567"
    asked = []

    def model_info(repo, revision):                             # the hub's answer, recorded shape
        asked.append((repo, revision))
        return types.SimpleNamespace(sha=spec.backbone.revision if repo == spec.backbone.repo else sha)

    pins = doctor.resolve_revisions(spec, hub=True, model_info=model_info)
    assert asked == [(spec.repo, "main"), (spec.backbone.repo, spec.backbone.revision)]
    lines = doctor.pin_lines(spec, pins)
    assert f'PIN: revision = "{sha}" in fixtures/models/ultravox-v0_6-8b.toml' in lines[0]
    assert lines[1].endswith("(pinned)")
    offline = doctor.resolve_revisions(spec, hub=False)
    assert all("no hub access" in v for v in offline.values())
    assert all("local" in v for v in doctor.resolve_revisions(tiny_spec(), hub=True).values())


SENTIMENT, PLACES = ["positive", "negative"], ["roof", "on the roof", "barn"]


@pytest.mark.parametrize("text, options, expected", [
    ("Positive.", SENTIMENT, "positive"), ("negative", SENTIMENT, "negative"),
    ("It is negative, I think", SENTIMENT, "negative"), ("positive or negative", SENTIMENT, None),
    ("no idea", SENTIMENT, None), ("On the roof!", PLACES, "on the roof"), ("the roof", PLACES, "roof")])
def test_generated_text_maps_to_an_option(text, options, expected):
    assert doctor.option_said(text, options) == expected


def test_cli_unknown_model_exits_2(capsys):
    from harness.__main__ import main

    assert main(["doctor", "no-such-model"]) == 2
    assert "unknown model" in capsys.readouterr().out
