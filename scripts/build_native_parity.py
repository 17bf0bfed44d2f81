"""Record what Granite-Speech's own processor builds, for the native-family parity test (documented; never run by
the tests).

``GraniteSpeechFeatureExtractor`` needs torchaudio, which has no build for the torch this project pins, so the
adapter (``harness.families._granite_mel``, the granite_speech entry) computes the same log-mel by hand. This
script runs the real ``GraniteSpeechProcessor`` (transformers' own code: features *and* the ``<|audio|>``
expansion) on fixed waveforms and prompts and writes its outputs to
``fixtures/parity/native/granite_speech.safetensors`` (+ ``.json``);
``tests/test_parity_native.py`` checks the adapter's inputs against them.

The tokenizer is the tiny models' (``tests/tiny_models.tokenizer("granite_speech")``: the packaged SmolLM2 one
plus ``<|audio|>``), so nothing is downloaded. Environment: a venv that sees the project's packages and adds
torchaudio's pure-Python transforms — torchaudio 2.11's compiled extension does not load under torch 2.13, and
none of it is needed for ``MelSpectrogram``::

    python -m venv --system-site-packages /tmp/venv-ta
    /tmp/venv-ta/bin/pip install --no-deps torchaudio==2.11.1
    rm /tmp/venv-ta/lib/python3.*/site-packages/torchaudio/lib/*.so
    /tmp/venv-ta/bin/python scripts/build_native_parity.py
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "fixtures" / "parity" / "native"
CLIPS = {"short": 1.0, "odd": 2.37}        # 2.37 s: an odd number of mel frames (the extractor drops one)
PROMPT = "Classify the sentiment.\nText: {slot}\nAnswer with one word: positive, negative."


def _waveform():
    spec = importlib.util.spec_from_file_location("b", ROOT / "scripts" / "build_ultravox_parity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parity_waveform


def main() -> None:
    sys.path.insert(0, str(ROOT))
    import torchaudio
    import transformers
    from safetensors.torch import save_file
    from transformers import GraniteSpeechFeatureExtractor, GraniteSpeechProcessor

    from tests import tiny_models

    tok = tiny_models.tokenizer("granite_speech")
    processor = GraniteSpeechProcessor(audio_processor=GraniteSpeechFeatureExtractor(), tokenizer=tok)
    wave = _waveform()
    tensors, meta = {}, {"transformers": transformers.__version__, "torchaudio": torchaudio.__version__,
                         "processor": "GraniteSpeechProcessor(GraniteSpeechFeatureExtractor())", "clips": {}}
    for name, seconds in CLIPS.items():
        text = tok.apply_chat_template([{"role": "user", "content": PROMPT.format(slot=tok.audio_token)}],
                                       tokenize=False, add_generation_prompt=True)
        out = processor(text=[text], audio=[wave(seconds)])
        for key in ("input_ids", "input_features", "input_features_mask"):
            tensors[f"{name}.{key}"] = torch.as_tensor(out[key]).contiguous()
        meta["clips"][name] = {"seconds": seconds, "text": text,
                               "audio_tokens": int((tensors[f"{name}.input_ids"][0] == tok.audio_token_id).sum())}
    OUT.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(OUT / "granite_speech.safetensors"))
    (OUT / "granite_speech.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {OUT / 'granite_speech.safetensors'}: {meta['clips']}")


if __name__ == "__main__":
    main()
