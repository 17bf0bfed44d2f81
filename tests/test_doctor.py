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


@pytest.mark.parametrize("family", ["qwen2_audio", "voxtral", "granite_speech", "phi4_multimodal", "qwen2_5_omni"])
def test_audio_position_check_on_every_native_class(family):
    """The doctor's position check on the tiny native classes: the rows the model's own merge changed are
    exactly the expanded placeholder, as many as the processor/adapter asked for."""
    import numpy as np

    from harness import prompts
    from harness.audio import Audio
    from harness.systems.hf_native import HFNativeSpeechLLM
    from harness.tasks import load_task
    from tests import tiny_models

    model, processor = tiny_models.build(family)
    system = HFNativeSpeechLLM(model, processor, family, model_id=f"tiny/{family}", revision="random")
    task = load_task("sentiment")
    item = task.items[0]
    t = np.arange(24000) / 16000
    clip = Audio((0.2 * np.sin(2 * np.pi * 250 * t)).astype(np.float32), item_id=item.id)
    ok, detail = doctor.check_positions(system, system.prepare(prompts.messages(task, item, system.audio_slot), clip))
    assert ok, detail


def test_a_native_class_through_the_whole_doctor():
    """``run`` with a given system (a tiny Qwen2-Audio standing in for the registry entry's weights): revisions,
    positions and the agreement check, the model's own ``generate()`` included."""
    from harness.systems.hf_native import HFNativeSpeechLLM
    from tests import tiny_models

    model, processor = tiny_models.build("qwen2_audio")
    system = HFNativeSpeechLLM(model, processor, "qwen2_audio", model_id="tiny/qwen2_audio", revision="random")
    report = doctor.run("qwen2-audio-7b-instruct", device="cpu", items=2, tasks=["sentiment"], hub=False,
                        system=system, out=lambda s: None)
    assert report.positions_ok is True and set(report.agreement) == {"sentiment"}
    assert all("no hub access" in v for v in report.pins.values())
    assert report.exit_status == (1 if report.agreement["sentiment"] < doctor.DEFAULT_MIN_AGREEMENT else 0)
