"""The self-cascade: the speech-LLM's own language model reading the transcript — same module, same weights, same
chat template, text where the audio was. Checked on the tiny Ultravox checkpoint and on a tiny native class with
a PEFT LoRA adapter (switched on for speech, off for text, as the models' own text-only path does)."""
import numpy as np
import pytest
import torch

from harness import prompts
from harness.audio import Audio
from harness.specs import SpecError, load_specs, parse_spec
from harness.systems.matched import self_cascade
from harness.systems.ultravox import load
from harness.systems.ultravox_fixture import tiny_spec
from harness.tasks import load_task


@pytest.fixture(scope="module")
def system():
    return load(tiny_spec(), device="cpu")


@pytest.fixture(scope="module")
def oracle(system):
    """The self-cascade with a perfect recogniser (the transcript is the item's text): isolates the LLM side."""
    return self_cascade(system, oracle=True)


@pytest.fixture(scope="module")
def task():
    return load_task("sentiment")


def _clip(item):
    t = np.arange(16000) / 16000
    return Audio((0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), item_id=item.id)


def test_it_is_the_same_module_and_weights(system, oracle):
    assert oracle.backbone.model.inner is system.model.language_model
    assert oracle.backbone.tokenizer is system.processor.tokenizer
    assert oracle.fingerprint != system.fingerprint and "self:" in oracle.fingerprint


def test_the_prompt_is_the_speech_prompt_with_the_transcript_in_the_slot(system, oracle, task):
    item = task.items[0]
    text_ids = oracle.backbone.prompt_ids(prompts.messages(task, item, item.text))
    speech_text = system.render(prompts.messages(task, item, system.audio_slot))
    assert speech_text.count(system.audio_slot) == 1
    want = system.processor.tokenizer(speech_text.replace(system.audio_slot, item.text),
                                      add_special_tokens=False)["input_ids"]
    assert text_ids == want


def test_scores_are_the_language_models_own(system, oracle, task):
    """Each option's score is the sum of the language model's own log-probabilities of its tokens after the
    text prompt (one plain forward pass of prompt + option, no cache)."""
    item = task.items[1]
    answer = oracle.answer(task, item, None)
    prompt = oracle.backbone.prompt_ids(prompts.messages(task, item, item.text))
    lm = system.model.language_model
    for option in item.options:
        ids = system.processor.tokenizer(option, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(lm(input_ids=torch.tensor([prompt + ids])).logits[0].float(), -1)
        want = float(sum(logp[len(prompt) - 1 + k, t] for k, t in enumerate(ids)))
        assert answer.scores[option] == pytest.approx(want, abs=1e-4)


def test_the_speech_path_is_unchanged_by_the_self_cascade(system, task):
    item = task.items[2]
    before = system.answer(task, item, _clip(item))
    self_cascade(system, oracle=True)
    after = system.answer(task, item, _clip(item))
    assert before.scores == pytest.approx(after.scores)


def test_lora_is_on_for_speech_and_off_for_text():
    """A native class with a PEFT adapter on its language model: the speech path scores with it, the
    self-cascade's text path without it (what Granite-Speech's own text-only ``generate`` does)."""
    from peft import LoraConfig, inject_adapter_in_model
    from peft.tuners.tuners_utils import BaseTunerLayer

    from harness.systems.hf_native import HFNativeSpeechLLM
    from tests import tiny_models

    model, processor = tiny_models.build("qwen2_audio")
    system = HFNativeSpeechLLM(model, processor, "qwen2_audio", model_id="tiny/qwen2_audio", revision="random")
    torch.manual_seed(1)
    inject_adapter_in_model(LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                       init_lora_weights=False), model.get_decoder())
    lora = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    assert lora

    def adapters(enabled):
        for m in lora:
            m.enable_adapters(enabled)
    casc = self_cascade(system, oracle=True)
    task = load_task("sentiment")
    item = task.items[0]
    clip = _clip(item)

    text = casc.answer(task, item, None).scores
    speech = system.answer(task, item, clip).scores
    # the same calls made with the adapters forced, bypassing the switches
    ids = casc.backbone.prompt_ids(prompts.messages(task, item, item.text))
    view = casc.backbone.model
    with torch.no_grad():
        adapters(False)
        off = view.inner(inputs_embeds=casc.backbone.embed(ids)[None]).logits[0, -1]
        adapters(True)
        on = view.inner(inputs_embeds=casc.backbone.embed(ids)[None]).logits[0, -1]
    assert (off - on).abs().max() > 1e-4                        # the adapter does change the model
    first = [casc.backbone.reply_ids(o)[0] for o in item.options]
    logp_off = torch.log_softmax(off.float(), -1)
    assert all(text[o] <= float(logp_off[t]) + 1e-5 for o, t in zip(item.options, first))
    one_token = [o for o in item.options if len(casc.backbone.reply_ids(o)) == 1]
    for o in one_token:                                          # exact where the option is one token
        assert text[o] == pytest.approx(float(logp_off[casc.backbone.reply_ids(o)[0]]), abs=1e-4)
    # the speech path ran with the adapter on again (the text call switched it off)
    again = system.answer(task, item, clip).scores
    assert again == pytest.approx(speech)
    adapters(False)
    assert system.answer(task, item, clip).scores == pytest.approx(speech)   # the switch, not the leftover state


def test_the_registry_kind_is_validated():
    specs = load_specs()
    assert specs["ultravox-v0_6-8b"].matched_cascade == "self"
    assert specs["qwen2-audio-7b-instruct"].matched_cascade == "separate"
    base = {"id": "x", "family": "ultravox", "loader": "ultravox", "repo": "r", "revision": "abc",
            "backbone": {"repo": "meta-llama/Llama-3.1-8B-Instruct", "revision": "def"}}
    assert parse_spec({**base, "matched_cascade": "self"}).matched_cascade == "self"
    with pytest.raises(SpecError, match="matched_cascade 'both' is not one of"):
        parse_spec({**base, "matched_cascade": "both"})
    with pytest.raises(SpecError, match="needs a loaded language model"):
        parse_spec({**base, "loader": "disguised_cascade", "matched_cascade": "self"})
    with pytest.raises(SpecError, match="API model has no matched cascade"):
        parse_spec({"id": "x", "family": "gemini", "loader": "api", "repo": "g", "api_key_env": "K",
                    "matched_cascade": "separate"})
