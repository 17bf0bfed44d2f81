"""Every native speech-LLM class, as a tiny random model built offline, goes through the real adapter code."""
import numpy as np
import pytest
import torch

from harness.audio import Audio
from harness.runner import Runner
from harness.systems.hf_native import FAMILIES, HFNativeSpeechLLM
from harness.tasks import load_task
from tests import tiny_models


class SyntheticRunner(Runner):
    """The real runner, with cheap deterministic audio instead of TTS (keeps these tests light)."""

    def clean_audio(self, item):
        rng = np.random.default_rng(len(item.text))
        t = np.arange(16000 * 2) / 16000
        x = 0.2 * np.sin(2 * np.pi * (200 + 10 * len(item.text)) * t) + 0.05 * rng.standard_normal(t.size)
        return Audio(x.astype(np.float32), item_id=item.id)


@pytest.fixture(scope="module", params=tiny_models.FAMILIES)
def system(request):
    model, processor = tiny_models.build(request.param)
    return HFNativeSpeechLLM(model, processor, request.param, model_id=f"tiny/{request.param}", revision="random")


@pytest.fixture(scope="module")
def task():
    return load_task("sentiment")


def test_family_table_covers_the_tiny_classes():
    assert set(tiny_models.FAMILIES) == set(FAMILIES)


def test_voxtral_audio_count_from_the_config_equals_the_encoders_output():
    model, processor = tiny_models.build("voxtral")
    system = HFNativeSpeechLLM(model, processor, "voxtral", model_id="tiny/voxtral", revision="random")
    clip = SyntheticRunner().clean_audio(load_task("topic").items[0])
    feats = FAMILIES["voxtral"].features(system._feature_extractor, clip)
    with torch.no_grad():
        produced = model.get_audio_features(feats["input_features"]).pooler_output.shape[0]
    assert FAMILIES["voxtral"].n_audio(model, feats) == produced > 0


def test_answers_via_runner_are_deterministic(system, task):
    items = task.items[:3]
    first = SyntheticRunner(disk_cache=False, progress=False).answers(system, task, items)
    second = SyntheticRunner(disk_cache=False, progress=False).answers(system, task, items)
    assert [a.to_json() for a in first] == [a.to_json() for a in second]
    assert all(set(a.scores) == set(it.options) and a.choice in it.options for a, it in zip(first, items))


@pytest.mark.parametrize("task_name", ["sentiment", "commonsense"])
def test_item_batches_answer_as_one_item_at_a_time(system, task_name):
    """The GPU path (Runner(batch_size>1) → answer_batch): prompts of different lengths, right-padded into one
    forward pass, score as each item does alone; an item listed twice is inferred once."""
    t = load_task(task_name)
    items = t.items[:4] + t.items[:1]
    alone = SyntheticRunner(disk_cache=False, progress=False).answers(system, t, items)
    runner = SyntheticRunner(disk_cache=False, progress=False, batch_size=3)
    batched = runner.answers(system, t, items)
    assert runner.inferences[system.name] == 4
    assert [a.choice for a in batched] == [a.choice for a in alone]
    for a, b in zip(alone, batched):
        assert a.item_id == b.item_id and a.scores.keys() == b.scores.keys()
        np.testing.assert_allclose([b.scores[k] for k in a.scores], list(a.scores.values()), rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("family", tiny_models.FAMILIES)
def test_cuda_answers_equal_cpu_answers_one_at_a_time_and_in_batches(family):
    """What a GPU box runs: the model on CUDA answers as on the CPU (fp32), item batches as single items, and
    bf16 reruns identically. Ran on an NVIDIA H200 (torch 2.11, transformers 5.17) on 2026-11-26: all passed."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    t = load_task("commonsense")
    items = t.items[:6]
    model, processor = tiny_models.build(family)
    cpu = HFNativeSpeechLLM(model, processor, family, model_id=f"tiny/{family}", revision="random")
    on_cpu = SyntheticRunner(disk_cache=False, progress=False).answers(cpu, t, items)
    gpu = HFNativeSpeechLLM(model.to("cuda"), processor, family, model_id=f"tiny/{family}", revision="random")
    for runner in (SyntheticRunner(disk_cache=False, progress=False),
                   SyntheticRunner(disk_cache=False, progress=False, batch_size=4)):
        on_gpu = runner.answers(gpu, t, items)
        assert [a.choice for a in on_gpu] == [a.choice for a in on_cpu]
        for a, b in zip(on_cpu, on_gpu):
            np.testing.assert_allclose([b.scores[k] for k in a.scores], list(a.scores.values()), atol=1e-3)
    bf16 = HFNativeSpeechLLM(model.to(torch.bfloat16), processor, family, model_id=f"tiny/{family}", revision="r")
    first, second = (SyntheticRunner(disk_cache=False, progress=False).answers(bf16, t, items) for _ in range(2))
    assert [a.to_json() for a in first] == [a.to_json() for a in second]


def test_a_batch_size_below_one_is_refused():
    with pytest.raises(ValueError, match="batch_size=0"):
        Runner(batch_size=0)


def test_prefix_embeds_reproduce_the_models_own_forward(system, task):
    item = task.items[0]
    inputs = system.inputs_for(task, item, SyntheticRunner().clean_audio(item))
    embeds = system.prefix_embeds(inputs)
    with torch.no_grad():
        own = system.model(**system._to_model(inputs)).logits[0, -1]
        ours = system.backbone.model(inputs_embeds=embeds[None],
                                     attention_mask=torch.ones(1, len(embeds), dtype=torch.long)).logits[0, -1]
    torch.testing.assert_close(ours, own)


def test_hidden_states_at_audio_positions(system, task):
    item = task.items[0]
    audio = SyntheticRunner().clean_audio(item)
    inputs = system.inputs_for(task, item, audio)
    positions = system.audio_positions(inputs)
    assert len(positions) > 0 and int((inputs["input_ids"][0] == system.audio_token_id).sum()) == len(positions)
    hs = system.hidden_states_at_audio(task, item, audio)
    hidden = system.model.get_input_embeddings().weight.shape[1]
    assert hs.shape == (len(system.decoder_layers) + 1, len(positions), hidden)
    # pre-norm: the last entry normed and unembedded equals the model's own logits at the last position
    stream = system.residual_stream(inputs)
    with torch.no_grad():
        own = system.model(**system._to_model(inputs)).logits[0, -1]
    torch.testing.assert_close(system.lens_logits(stream[-1, -1]), own.float())


def test_residual_stream_stops_early_when_asked(system, task):
    item = task.items[0]
    inputs = system.inputs_for(task, item, SyntheticRunner().clean_audio(item))
    full = system.residual_stream(inputs)
    top = len(system.decoder_layers)
    ran = []
    handle = system.decoder_layers[1].register_forward_hook(lambda *args: ran.append(1))
    try:
        for upto in (0, 1, top):
            ran.clear()
            torch.testing.assert_close(system.residual_stream(inputs, upto=upto), full[: upto + 1])
            assert bool(ran) == (upto > 1)          # layer 1 runs only when an entry above its input is wanted
    finally:
        handle.remove()
    torch.testing.assert_close(system.residual_stream(inputs), full)      # nothing left behind by the stops
    with pytest.raises(ValueError, match="upto"):
        system.residual_stream(inputs, upto=top + 1)


def test_hook_on_a_middle_layer_changes_the_scores(system, task):
    item = task.items[0]
    audio = SyntheticRunner().clean_audio(item)
    before = system.answer(task, item, audio).scores
    layer = system.decoder_layers[len(system.decoder_layers) // 2]

    def shift(module, args, output):
        if isinstance(output, tuple):
            return (output[0] + 1.0,) + tuple(output[1:])
        return output + 1.0

    handle = layer.register_forward_hook(shift, prepend=True)
    try:
        after = system.answer(task, item, audio).scores
    finally:
        handle.remove()
    assert after != before
    assert system.answer(task, item, audio).scores == before
