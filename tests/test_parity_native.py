"""Native families whose real processor the adapter cannot use offline: the inputs the adapter builds equal what
the family's OWN processor builds for the same prompt and waveform.

* Granite-Speech — ``GraniteSpeechFeatureExtractor`` needs torchaudio (no build for the pinned torch): the
  adapter's hand-written log-mel and ``<|audio|>`` expansion against the real processor's outputs, recorded by
  ``scripts/build_native_parity.py`` into ``fixtures/parity/native/``.
* Phi-4-MM and Qwen2.5-Omni — their processors need torchvision only for the image/video half: the real
  processor classes run here with the audio half intact (Phi-4: a plain ``BaseImageProcessor`` in the unused image
  slot; Omni: the constructor's class check waived for the unused image/video slots), and the adapter's manual
  expansion and features must equal theirs.
* Qwen2-Audio runs its real processor in the adapter already; Voxtral's (mistral-common's tokenizer) is not
  covered here: its count is checked against the encoder in ``tests/test_adapters.py``.
"""
import importlib.util
import json
from unittest import mock

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from harness import paths
from harness.audio import Audio
from harness.systems.hf_native import HFNativeSpeechLLM
from tests import tiny_models

ROOT = paths.ROOT
NATIVE = paths.NATIVE_PARITY
PROMPT = "Classify the sentiment.\nText: {slot}\nAnswer with one word: positive, negative."


def _waveform():
    spec = importlib.util.spec_from_file_location("b", ROOT / "scripts" / "build_ultravox_parity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parity_waveform


WAVE = _waveform()


def _system(family):
    model, processor = tiny_models.build(family)
    return HFNativeSpeechLLM(model, processor, family, model_id=f"tiny/{family}", revision="random")


def _messages(system):
    return [{"role": "user", "content": PROMPT.format(slot=system.audio_slot)}]


# -- Granite-Speech: recorded from the real processor ---------------------------------------------------------
GRANITE = json.loads((NATIVE / "granite_speech.json").read_text())


@pytest.fixture(scope="module")
def granite():
    return _system("granite_speech")


@pytest.mark.parametrize("clip", sorted(GRANITE["clips"]))
def test_granite_inputs_equal_its_processors(granite, clip):
    want = load_file(str(NATIVE / "granite_speech.safetensors"))
    case = GRANITE["clips"][clip]
    assert granite.render(_messages(granite)) == case["text"]
    ours = granite.prepare(_messages(granite), Audio(WAVE(case["seconds"]), item_id=clip))
    assert ours["input_ids"].tolist() == want[f"{clip}.input_ids"].tolist()          # placeholder expansion
    assert int((ours["input_ids"][0] == granite.audio_token_id).sum()) == case["audio_tokens"]
    torch.testing.assert_close(ours["input_features"], want[f"{clip}.input_features"], rtol=1e-4, atol=1e-4)
    assert int(want[f"{clip}.input_features_mask"].sum()) == case["audio_tokens"]


# -- Phi-4-MM and Qwen2.5-Omni: their real processors, audio half ----------------------------------------------
def _phi4_processor(tok):
    from transformers import Phi4MultimodalFeatureExtractor, Phi4MultimodalProcessor
    from transformers.image_processing_utils import BaseImageProcessor

    return Phi4MultimodalProcessor(image_processor=BaseImageProcessor(), audio_processor=Phi4MultimodalFeatureExtractor(),
                                   tokenizer=tok)


def _omni_processor(tok):
    from transformers import Qwen2_5OmniProcessor, WhisperFeatureExtractor
    from transformers.image_processing_utils import BaseImageProcessor
    from transformers.processing_utils import ProcessorMixin

    check = ProcessorMixin.check_argument_for_proper_class

    def vision_waived(self, name, arg):
        return None if name in ("image_processor", "video_processor") else check(self, name, arg)

    with mock.patch.object(ProcessorMixin, "check_argument_for_proper_class", vision_waived):
        return Qwen2_5OmniProcessor(image_processor=BaseImageProcessor(), video_processor=None,
                                    feature_extractor=WhisperFeatureExtractor(feature_size=128), tokenizer=tok)


@pytest.mark.parametrize("family, build, keys", [
    ("phi4_multimodal", _phi4_processor, ("audio_input_features", "audio_embed_sizes")),
    ("qwen2_5_omni", _omni_processor, ("input_features", "feature_attention_mask"))])
@pytest.mark.parametrize("seconds", [1.0, 2.37])
def test_manual_expansion_equals_the_familys_processor(family, build, keys, seconds):
    system = _system(family)
    tok = system.processor.tokenizer
    text = system.render(_messages(system))
    wave = WAVE(seconds)
    real = build(tok)(text=[text], audio=[wave], sampling_rate=16000, return_tensors="pt")
    ours = system.prepare(_messages(system), Audio(wave, item_id="clip"))
    assert ours["input_ids"].tolist() == real["input_ids"].tolist()
    n = int((real["input_ids"][0] == system.audio_token_id).sum())
    assert n > 1 and int((ours["input_ids"][0] == system.audio_token_id).sum()) == n
    for key in keys:
        torch.testing.assert_close(torch.as_tensor(ours[key]), torch.as_tensor(real[key]), rtol=1e-5, atol=1e-5)
    assert np.isfinite(ours[keys[0]].float().numpy()).all()
