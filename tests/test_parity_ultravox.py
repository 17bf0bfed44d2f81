"""Our Ultravox (``harness.systems.ultravox_*``) against the UPSTREAM implementation, on a tiny checkpoint.

``fixtures/parity/ultravox-tiny`` was built and recorded by ``scripts/build_ultravox_parity.py`` with
fixie-ai/ultravox's own modelling and processing code (commit in ``expected.json``) under transformers 4.57: its
``UltravoxProcessor`` outputs, the logits of ``UltravoxModel.forward`` over whole prompts, and its greedy
``generate()``. Three inputs: a 1.3 s clip, a 12.4 s clip the processor splits into two chunks (the tiny encoder
takes 10 s), and a 10 ms clip shorter than two hops.
"""
import importlib.util
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from harness import paths
from harness.audio import Audio
from harness.systems.ultravox import UltravoxSpeechLLM, load
from harness.systems.ultravox_fixture import TINY_DIR, tiny_spec

META = json.loads((TINY_DIR / "expected.json").read_text())
CASES = sorted(META["cases"])


def _builder():
    spec = importlib.util.spec_from_file_location("build_ultravox_parity",
                                                  paths.ROOT / "scripts" / "build_ultravox_parity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WAVEFORM = _builder().parity_waveform     # the builder's formula, not a copy of it


@pytest.fixture(scope="module")
def expected():
    return load_file(str(TINY_DIR / "expected.safetensors"))


@pytest.fixture(scope="module")
def system() -> UltravoxSpeechLLM:
    return load(tiny_spec(), device="cpu")


def _inputs(system, name):
    case = META["cases"][name]
    text = system.render([{"role": "user", "content": case["content"]}])
    return text, system.processor(text=text, audio=WAVEFORM(case["seconds"]), sampling_rate=16000)


def test_the_fixture_comes_from_the_stated_upstream_commit():
    assert META["upstream"] == "fixie-ai/ultravox" and len(META["upstream_commit"]) == 40
    assert META["transformers"].startswith("4.57")
    assert not list(TINY_DIR.rglob("*.py")), "no upstream code may be committed"
    assert sum(p.stat().st_size for p in TINY_DIR.rglob("*") if p.is_file()) < 2_000_000


def test_every_checkpoint_weight_is_loaded(system):
    prov = system.provenance
    assert prov.weights == {"audio_tower": 37, "multi_modal_projector": 4, "language_model": 0}
    assert prov.lora_deltas == 0 and prov.unpinned == []
    tower = system.model.audio_tower
    ckpt = load_file(str(TINY_DIR / "speech" / "model.safetensors"))
    torch.testing.assert_close(tower.layers[1].fc2.weight, ckpt["audio_tower.layers.1.fc2.weight"])
    torch.testing.assert_close(system.model.multi_modal_projector.ln_mid.weight,
                               ckpt["multi_modal_projector.ln_mid.weight"])
    backbone = load_file(str(TINY_DIR / "backbone" / "model.safetensors"))   # the LLM: the backbone repo's
    torch.testing.assert_close(system.model.language_model.lm_head.weight, backbone["lm_head.weight"])


@pytest.mark.parametrize("name", CASES)
def test_processor_outputs_equal_upstreams(system, expected, name):
    text, ours = _inputs(system, name)
    assert text == META["cases"][name]["text"]                     # same chat template, same rendering
    keys = {k.split(".", 1)[1] for k in expected if k.startswith(name + ".")} - {"logits"}
    assert set(ours) == keys
    for key in keys:
        want = expected[f"{name}.{key}"]
        if want.is_floating_point():
            torch.testing.assert_close(ours[key], want, rtol=1e-5, atol=1e-5)
        else:
            assert torch.equal(ours[key].long(), want.long()), key


@pytest.mark.parametrize("name", CASES)
def test_logits_equal_upstreams(system, expected, name):
    inputs = {k.split(".", 1)[1]: v for k, v in expected.items() if k.startswith(name + ".") and "logits" not in k}
    with torch.no_grad():
        logits = system.model(**inputs).logits
    want = expected[f"{name}.logits"]
    assert want.abs().max() > 1.0                                   # not a near-zero signal matched trivially
    torch.testing.assert_close(logits, want, rtol=1e-4, atol=1e-4)
    # and the audio mattered: without it the logits after the audio differ from upstream's
    with torch.no_grad():
        silent = system.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    assert (silent - want).abs().max() > 1e-2


V05 = sorted(TINY_DIR.glob("expected-*.json"))


@pytest.mark.parametrize("record", V05, ids=lambda p: p.stem)
def test_logits_equal_the_v05_era_upstreams(system, expected, record):
    """The same checkpoint and inputs through the v0.5-era upstream code (the code the v0.5 hub repos ship),
    recorded by ``build_ultravox_parity.py --also``: the logits after the audio match ours too."""
    meta = json.loads(record.read_text())
    assert meta["upstream_commit"] != META["upstream_commit"]
    want = load_file(str(record.with_suffix(".safetensors")))
    for name in CASES:
        inputs = {k.split(".", 1)[1]: v for k, v in expected.items() if k.startswith(name + ".") and "logits" not in k}
        with torch.no_grad():
            logits = system.model(**inputs).logits[:, -meta["last_positions"]:]
        torch.testing.assert_close(logits, want[f"{name}.logits_last"], rtol=1e-4, atol=1e-4)


def test_there_is_a_v05_era_record():
    assert [json.loads(p.read_text())["upstream_commit"][:7] for p in V05] == ["f4f643b"]


@pytest.mark.parametrize("name", CASES)
def test_greedy_generation_equals_upstreams(system, expected, name):
    inputs = {k.split(".", 1)[1]: v for k, v in expected.items() if k.startswith(name + ".") and "logits" not in k}
    out = system.model.generate(**inputs, max_new_tokens=6, do_sample=False,
                                pad_token_id=system.processor.tokenizer.eos_token_id)
    assert out[0].tolist() == META["cases"][name]["generated"]


@pytest.mark.parametrize("name", CASES)
def test_audio_position_count_and_placement(system, expected, name):
    """The adapter's audio positions are exactly the rows upstream overwrote: per chunk ``ceil(frames / 16)``
    from ``audio_token_start_idx``, all EOS fillers, and the merged prefix holds the projected audio there."""
    _, inputs = _inputs(system, name)
    positions = system.audio_positions(inputs)
    starts, lens = expected[f"{name}.audio_token_start_idx"].tolist(), expected[f"{name}.audio_token_len"].tolist()
    frames = expected[f"{name}.audio_lens"].tolist()
    assert lens == [-(-f // 16) for f in frames]
    assert positions.tolist() == [p for s, n in zip(starts, lens) for p in range(s, s + n)]
    ids = inputs["input_ids"][0]
    assert bool((ids[positions] == system.processor.tokenizer.eos_token_id).all())
    embeds = system.prefix_embeds(inputs)
    audio = system.model.audio_embeds(inputs["audio_values"], inputs["audio_lens"])
    want = torch.cat([audio[c, :n] for c, n in enumerate(lens)])
    torch.testing.assert_close(embeds[positions], want)


def test_the_adapter_scores_as_the_model_itself(system):
    """Scoring from the captured prefix reproduces the model's own last-position logits."""
    _, inputs = _inputs(system, "short")
    embeds = system.prefix_embeds(inputs)
    with torch.no_grad():
        own = system.model(**inputs).logits[0, -1]
        ours = system.backbone.model(inputs_embeds=embeds[None],
                                     attention_mask=torch.ones(1, len(embeds), dtype=torch.long)).logits[0, -1]
    torch.testing.assert_close(ours, own)
    stream = system.residual_stream(inputs)
    torch.testing.assert_close(system.lens_logits(stream[-1, -1]), own.float())


def test_answers_through_the_task_prompt(system):
    from harness.tasks import load_task

    task = load_task("sentiment")
    item = task.items[0]
    clip = Audio(WAVEFORM(2.0), item_id=item.id)
    answer = system.answer(task, item, clip)
    assert set(answer.scores) == set(item.options) and answer.choice in item.options
    assert np.isfinite(list(answer.scores.values())).all()


@pytest.mark.gpu
def test_cuda_logits_equal_upstreams(expected):
    """What ``scripts/gpu_selfcheck.sh`` runs on a GPU box: the same checkpoint loaded with ``device="cuda"``
    (device_map placement of the language model, tower and projector beside it) gives upstream's logits.
    TF32 is switched off so float32 means float32 (cuDNN convolutions default to TF32)."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        system = load(tiny_spec(), device="cuda")
        assert next(system.model.audio_tower.parameters()).device.type == "cuda"
        for name in CASES:
            inputs = {k.split(".", 1)[1]: v.cuda() for k, v in expected.items()
                      if k.startswith(name + ".") and "logits" not in k}
            with torch.no_grad():
                logits = system.model(**inputs).logits.cpu()
            torch.testing.assert_close(logits, expected[f"{name}.logits"], rtol=1e-3, atol=1e-3)
            out = system.model.generate(**inputs, max_new_tokens=6, do_sample=False,
                                        pad_token_id=system.processor.tokenizer.eos_token_id)
            assert out[0].tolist() == META["cases"][name]["generated"]
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
