"""Ultravox adapter, offline: no remote code, the hub-unreachable error, and the capture/position code.

Real releases live on the hub; the committed tiny checkpoint (built with the upstream code) goes through the same
``load`` in ``tests/test_parity_ultravox.py``. The last group of tests runs ``UltravoxSpeechLLM``'s own code
against a small *stand-in* that calls its language model the way upstream's remote code does
(``language_model.forward``, which skips module hooks).
"""
import dataclasses
import math

import numpy as np
import pytest
import torch

from harness.audio import Audio
from harness.specs import load_specs
from harness.availability import why_unavailable
from harness.systems.ultravox import UltravoxSpeechLLM, load
from harness.tasks import load_task


@pytest.fixture
def spec():
    return dataclasses.replace(load_specs()["ultravox-v0_5-1b"], trust_remote_code=False)


# -- loading ---------------------------------------------------------------------------------------------------
def test_needs_no_remote_code(spec):
    """Our own implementation: no opt-in asked, the only reasons not to run are GPU/hub ones."""
    assert why_unavailable(spec, gpu_gb=80.0, hub=True) is None
    assert why_unavailable(spec, gpu_gb=None).startswith("no CUDA GPU")


def test_offline_load_fails_with_a_clear_message(spec):
    from huggingface_hub import constants

    if not constants.HF_HUB_OFFLINE:   # the root conftest sets HF_HUB_OFFLINE=1; never download from a test
        pytest.skip("HF_HUB_OFFLINE is not set: this test would try a real download")
    with pytest.raises(RuntimeError) as err:
        load(spec, device="cpu")
    msg = str(err.value)
    assert "unreachable" in msg and "HF_HUB_OFFLINE" in msg and spec.repo in msg and spec.revision in msg
    assert err.value.__cause__ is None and err.value.__suppress_context__   # one error, not a chained trace


# -- a stand-in with Ultravox's call structure --------------------------------------------------------------
FRAME, FEATS, STACK = 160, 8, 16     # samples per feature frame, features per frame, frames per audio token


class StandInProcessor:
    """Mimics ``UltravoxProcessor.__call__``'s contract: one text with ``<|audio|>``, the placeholder replaced
    by ``audio_token_len`` EOS tokens, audio tensors + ``audio_token_start_idx``/``audio_token_len``."""

    audio_placeholder = "<|audio|>"

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.audio_token_replacement = tokenizer.eos_token

    def __call__(self, text, audio, sampling_rate, return_tensors="pt"):
        assert isinstance(text, str) and sampling_rate == 16000
        frames = len(audio) // FRAME
        values = torch.tensor(np.asarray(audio[:frames * FRAME], dtype=np.float32)).reshape(frames, FRAME)
        values = values[:, :FEATS].T[None]                                    # [chunks=1, FEATS, frames]
        n = math.ceil(frames / STACK)
        before, after = (self.tokenizer(part, add_special_tokens=False)["input_ids"]
                         for part in text.split(self.audio_placeholder))
        ids = before + [self.tokenizer.convert_tokens_to_ids(self.audio_token_replacement)] * n + after
        return {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
                "audio_values": values, "audio_lens": torch.tensor([frames]), "audio_token_len": torch.tensor([n]),
                "audio_token_start_idx": torch.tensor([len(before)]), "audio_batch_size": torch.tensor([1])}


class StandInUltravox(torch.nn.Module):
    """``UltravoxModel.forward``'s structure: embed ids, project audio, overwrite ``[start:start+len]``, then
    ``self.language_model.forward(inputs_embeds=...)`` (upstream) or ``self.language_model(...)``."""

    def __init__(self, language_model, call_style):
        super().__init__()
        self.language_model, self.call_style = language_model, call_style
        hidden = language_model.config.hidden_size
        self.projector = torch.nn.Linear(FEATS * STACK, hidden)

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def project(self, audio_values):
        x = audio_values.transpose(1, 2)                                      # [chunks, frames, FEATS]
        pad = (-x.shape[1]) % STACK
        x = torch.nn.functional.pad(x, (0, 0, 0, pad))
        return self.projector(x.reshape(x.shape[0], -1, FEATS * STACK))

    def forward(self, input_ids, audio_values=None, inputs_embeds=None, attention_mask=None,
                audio_token_start_idx=None, audio_lens=None, audio_token_len=None, audio_batch_size=None, **kwargs):
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        if audio_values is not None:
            audio = self.project(audio_values)
            for i_a, (start, n) in enumerate(zip(audio_token_start_idx, audio_token_len)):
                inputs_embeds[0][start:start + n] = audio[i_a][:n]
        call = self.language_model.forward if self.call_style == "forward" else self.language_model
        return call(inputs_embeds=inputs_embeds, attention_mask=attention_mask, **kwargs)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from harness.lm import converted_checkpoint

    return AutoTokenizer.from_pretrained(converted_checkpoint())


@pytest.fixture(scope="module", params=["forward", "call"])
def system(request, tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                      max_position_embeddings=4096))
    model = StandInUltravox(lm, request.param)
    return UltravoxSpeechLLM(model, StandInProcessor(tokenizer), model_id="stand-in/ultravox", revision="random")


@pytest.fixture(scope="module")
def task():
    return load_task("sentiment")


def _audio(item):
    t = np.arange(16000 * 2) / 16000
    return Audio((0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), item_id=item.id)


def test_capture_and_positions_on_a_stand_in(system, task):
    """CODE-PATH TEST of UltravoxSpeechLLM's capture + audio-position code only, on a stand-in model.

    Not a test of Ultravox: the stand-in only copies the call structure of the remote ``UltravoxModel.forward``
    (merge into ``inputs_embeds``, then ``language_model.forward``/``language_model(...)``). It checks that the
    captured prefix is what the language model receives, that ``audio_positions`` are the overwritten rows
    (not the EOS token's occurrences), and that scoring from the prefix reproduces the model's own logits.
    """
    item = task.items[0]
    inputs = system.inputs_for(task, item, _audio(item))
    ids = inputs["input_ids"][0]
    embeds = system.prefix_embeds(inputs)
    positions = system.audio_positions(inputs)
    n, start = int(inputs["audio_token_len"][0]), int(inputs["audio_token_start_idx"][0])
    assert embeds.shape == (len(ids), system.model.language_model.config.hidden_size)
    assert positions.tolist() == list(range(start, start + n))
    assert int((ids == system.audio_token_id).sum()) > n          # EOS also ends turns: ids can't locate audio
    with torch.no_grad():
        audio = system.model.project(inputs["audio_values"])[0, :n]
        text = system.model.get_input_embeddings()(ids)
        own = system.model(**inputs).logits[0, -1]
        ours = system.backbone.model(inputs_embeds=embeds[None],
                                     attention_mask=torch.ones(1, len(embeds), dtype=torch.long)).logits[0, -1]
    torch.testing.assert_close(embeds[positions], audio)
    keep = torch.ones(len(ids), dtype=torch.bool)
    keep[positions] = False
    torch.testing.assert_close(embeds[keep], text[keep])
    torch.testing.assert_close(ours, own)
    # probes go through the language model: pre-norm stream, lens on the last entry = the model's own logits
    hs = system.hidden_states_at_audio(task, item, _audio(item))
    assert hs.shape == (len(system.decoder_layers) + 1, n, embeds.shape[1])
    stream = system.residual_stream(inputs)
    torch.testing.assert_close(system.lens_logits(stream[-1, -1]), own.float())
    assert system.unembedding is system.model.language_model.lm_head
    answer = system.answer(task, item, _audio(item))
    assert set(answer.scores) == set(item.options) and answer.choice in item.options


def test_a_language_model_pre_hook_would_miss_the_upstream_call(system, task):
    """CODE-PATH TEST (stand-in): why the capture hook sits at the decoder, not on ``language_model``."""
    fired = []
    handle = system.model.language_model.register_forward_pre_hook(lambda m, a: fired.append(1))
    try:
        item = task.items[0]
        system.prefix_embeds(system.inputs_for(task, item, _audio(item)))
    finally:
        handle.remove()
    # upstream calls `language_model.forward(...)`, which skips module hooks; `language_model(...)` runs them
    assert bool(fired) == (system.model.call_style == "call")


def test_audio_positions_cover_every_chunk(system):
    inputs = {"input_ids": torch.zeros(1, 30, dtype=torch.long), "audio_token_start_idx": torch.tensor([5, 20]),
              "audio_token_len": torch.tensor([3, 2]), "audio_batch_size": torch.tensor([2])}
    assert system.audio_positions(inputs).tolist() == [5, 6, 7, 20, 21]
    with pytest.raises(ValueError, match="audio_batch_size"):
        system.audio_positions({**inputs, "audio_batch_size": torch.tensor([1])})
    with pytest.raises(ValueError, match="past the prompt"):
        system.audio_positions({**inputs, "input_ids": torch.zeros(1, 21, dtype=torch.long)})


# -- checkpoint loading: every tensor placed, nothing dropped, the backbone named ----------------------------------
def _tiny_parts():
    import json

    from transformers import LlamaForCausalLM

    from harness.systems.ultravox_fixture import TINY_DIR
    from harness.systems.ultravox_model import UltravoxArch
    from harness.systems.ultravox_weights import read_state_dict

    arch = UltravoxArch.from_dict(json.loads((TINY_DIR / "speech" / "config.json").read_text()))
    fresh = lambda: LlamaForCausalLM.from_pretrained(TINY_DIR / "backbone").eval()  # noqa: E731
    return arch, fresh, read_state_dict(TINY_DIR / "speech")


def test_unmerged_lora_deltas_are_merged_as_peft_merges_them():
    """A release saved with PEFT's LoRA pairs on its language model: our merge (W += alpha/r · B A) gives the
    same language model as peft's own ``merge_and_unload``."""
    from peft import LoraConfig, get_peft_model

    from harness.systems.ultravox_weights import Provenance, assemble

    arch, fresh, state = _tiny_parts()
    torch.manual_seed(3)
    peft_lm = get_peft_model(fresh(), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                 init_lora_weights=False))
    saved = {f"language_model.{k}": v.clone() for k, v in peft_lm.state_dict().items() if "lora_" in k}
    assert saved and all(".lora_A.default." in k or ".lora_B.default." in k for k in saved)
    prov = Provenance("tiny", "tiny")
    model = assemble(dataclasses.replace(arch, text_lora={"r": 4, "lora_alpha": 8}), fresh(), {**state, **saved},
                     provenance=prov)
    merged = peft_lm.merge_and_unload().eval()
    ids = torch.tensor([[5, 17, 42, 99, 3]])
    with torch.no_grad():
        torch.testing.assert_close(model.language_model(input_ids=ids).logits, merged(input_ids=ids).logits)
        assert (model.language_model(input_ids=ids).logits - fresh()(input_ids=ids).logits).abs().max() > 1e-3
    assert prov.lora_deltas == 2 * merged.config.num_hidden_layers


def test_lora_weights_without_a_rank_are_an_error():
    from harness.systems.ultravox_weights import CheckpointError, Provenance, assemble

    arch, fresh, state = _tiny_parts()
    pair = {"language_model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.zeros(4, 32),
            "language_model.model.layers.0.self_attn.q_proj.lora_B.weight": torch.zeros(32, 4)}
    with pytest.raises(CheckpointError, match="rank r=0"):
        assemble(arch, fresh(), {**state, **pair}, provenance=Provenance("t", "t"))


def test_checkpoint_tensors_with_no_place_or_missing_are_errors():
    from harness.systems.ultravox_weights import CheckpointError, Provenance, assemble

    arch, fresh, state = _tiny_parts()
    with pytest.raises(CheckpointError, match="no place in the model.*audio_tower.extra"):
        assemble(arch, fresh(), {**state, "audio_tower.extra.weight": torch.zeros(1)}, provenance=Provenance("t", "t"))
    no_projector = {k: v for k, v in state.items() if "linear_2" not in k}
    with pytest.raises(CheckpointError, match="lacks projector weights.*linear_2"):
        assemble(arch, fresh(), no_projector, provenance=Provenance("t", "t"))
    no_tower = {k: v for k, v in state.items() if not k.startswith("audio_tower.")}
    with pytest.raises(CheckpointError, match="lacks audio-tower weights"):
        assemble(arch, fresh(), no_tower, provenance=Provenance("t", "t"))


def test_a_release_on_another_llm_is_refused(tmp_path):
    """``text_model_id`` must name the registry's backbone: otherwise the cascade would not be matched."""
    import json
    import shutil

    from harness.systems.ultravox_fixture import TINY_DIR
    from harness.systems.ultravox_weights import BackboneMismatch, load_pretrained

    shutil.copytree(TINY_DIR / "speech", tmp_path / "speech")
    cfg = json.loads((tmp_path / "speech" / "config.json").read_text())
    cfg["text_model_id"] = "meta-llama/Llama-3.2-3B-Instruct"
    (tmp_path / "speech" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BackboneMismatch, match="Llama-3.2-3B-Instruct"):
        load_pretrained(str(tmp_path / "speech"), None, str(TINY_DIR / "backbone"), None, dtype=torch.float32)
