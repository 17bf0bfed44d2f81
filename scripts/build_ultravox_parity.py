"""Build the tiny Ultravox parity fixture with the UPSTREAM implementation (documented; never run by the tests).

What it writes (``fixtures/parity/ultravox-tiny/``, ~1 MB):

* ``speech/``   — an Ultravox checkpoint laid out like a hub release of the v0.5 era: ``config.json`` (the
  Whisper ``audio_config`` inline, the language model named by ``text_model_id`` only), ``model.safetensors``
  (audio tower + projector, as upstream's ``save_pretrained`` keeps them), tokenizer and feature-extractor files;
* ``backbone/`` — the text model ``text_model_id`` points to (a tiny Llama + the same tokenizer), standing in
  for the registry's backbone repo;
* ``expected.safetensors`` + ``expected.json`` — for fixed prompts and waveforms: every tensor upstream's
  ``UltravoxProcessor`` returns, the logits of upstream's ``UltravoxModel.forward`` over the whole prompt, and
  the tokens of its greedy ``generate()``.

Upstream: fixie-ai/ultravox at commit ``648efe7f55510afff7adb45f076e904b3aba1d02`` (2025-08-09, the default
branch's head when this was built; its model files are the ones hub repos copy), files
``ultravox/model/ultravox_{config,model,processing}.py``. They are NOT in this repository: the script copies them
from a checkout into a temporary package and imports them from there.

It runs under transformers 4.57 (the upstream code does not load under the transformers 5 the project pins), in
a separate virtual environment::

    python -m venv /tmp/venv-uv457
    /tmp/venv-uv457/bin/pip install torch==2.13.0 "transformers==4.57.*" peft librosa soundfile
    git clone https://github.com/fixie-ai/ultravox /tmp/ultravox && git -C /tmp/ultravox checkout 648efe7f
    /tmp/venv-uv457/bin/python scripts/build_ultravox_parity.py --upstream /tmp/ultravox

``tests/test_parity_ultravox.py`` loads the result with ``harness.systems.ultravox_model`` (our implementation)
and matches every recorded tensor. The waveforms are formulas (``parity_waveform``), repeated in the test.

``--also COMMIT_CHECKOUT`` (after a build): run the SAME committed checkpoint and inputs through a second upstream
checkout — the v0.5-era ``f4f643b`` (2025-02-13, "General improvement", after the v0.5 model update), the code
the v0.5 hub repos ship — and store its last-8-position logits and generations in ``expected-<commit>.safetensors``
/ ``.json`` (small)::

    git -C /tmp/ultravox worktree add /tmp/ultravox-v05 f4f643b
    /tmp/venv-uv457/bin/python scripts/build_ultravox_parity.py --also /tmp/ultravox-v05
"""
from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

UPSTREAM_COMMIT = "648efe7f55510afff7adb45f076e904b3aba1d02"
FILES = ("ultravox_config.py", "ultravox_model.py", "ultravox_processing.py")
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "fixtures" / "parity" / "ultravox-tiny"
SR = 16000

# the fixed inputs: (name, seconds of audio, text before the placeholder, text after it)
CASES = (
    ("short", 1.3, "Classify the sentiment.\nText: ", "\nAnswer with one word: positive, negative."),
    ("chunked", 12.4, "Question: ", "\nChoices:\n- yes\n- no\nAnswer with one of the choices."),
    ("tiny", 0.01, "Heard: ", " Reply."),          # shorter than two hops: upstream pads it
)
SPECIAL = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
EXTRA = ["<|start_header_id|>", "<|end_header_id|>"]
CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
                 "{{ m['content'] }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}"
                 "<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")


def parity_waveform(seconds: float) -> np.ndarray:
    """A deterministic, speech-band waveform (three partials with a slow glide and a tremolo); float32."""
    t = np.arange(int(round(seconds * SR))) / SR
    x = sum(a * np.sin(2 * np.pi * (f * t + 30 * t * t)) for a, f in ((0.3, 180.0), (0.15, 510.0), (0.08, 1320.0)))
    return (x * (0.6 + 0.4 * np.sin(2 * np.pi * 3.0 * t))).astype(np.float32)


def _upstream(checkout: Path):
    """Import upstream's three files as a package from a temporary copy (relative imports need a package)."""
    pkg = Path(tempfile.mkdtemp()) / "ultravox_upstream"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in FILES:
        shutil.copy(checkout / "ultravox" / "model" / name, pkg / name)
    sys.path.insert(0, str(pkg.parent))
    return (importlib.import_module("ultravox_upstream.ultravox_config"),
            importlib.import_module("ultravox_upstream.ultravox_model"),
            importlib.import_module("ultravox_upstream.ultravox_processing"))


def _tokenizer():
    """A small byte-level BPE trained on the task texts + the Llama-3-style special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [line for p in sorted((ROOT / "fixtures" / "tasks").glob("*.jsonl")) for line in p.read_text().splitlines()]
    corpus += [c[2] + c[3] for c in CASES] * 4
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=480, special_tokens=[*SPECIAL.values(), *EXTRA],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL, additional_special_tokens=EXTRA)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upstream", type=Path, help="a fixie-ai/ultravox checkout at UPSTREAM_COMMIT")
    ap.add_argument("--also", type=Path, help="another upstream checkout: record the committed fixture with it")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.also:
        return record_with(args.also, args.out)
    if not args.upstream:
        ap.error("--upstream (build) or --also (record with another commit) is required")

    import transformers
    from safetensors.torch import save_file

    if not transformers.__version__.startswith("4.57"):
        sys.exit(f"run under transformers 4.57 (upstream's code), not {transformers.__version__}")
    cfg_mod, model_mod, proc_mod = _upstream(args.upstream)
    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp())
    tok = _tokenizer()

    # the parts upstream loads by id: a tiny Whisper (encoder used) and a tiny Llama
    whisper_dir, llama_dir = work / "tiny-whisper", work / "tiny-llama"
    wcfg = transformers.WhisperConfig(d_model=16, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=32,
                                      decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=32, vocab_size=64,
                                      num_mel_bins=80, max_source_positions=500, max_target_positions=16,
                                      pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
                                      init_std=0.1)
    transformers.WhisperForConditionalGeneration(wcfg).save_pretrained(whisper_dir)
    lcfg = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                                    bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                    tie_word_embeddings=False, initializer_range=0.2)   # large enough to matter
    llm = transformers.LlamaForCausalLM(lcfg)
    llm.save_pretrained(llama_dir)
    tok.save_pretrained(llama_dir)

    config = cfg_mod.UltravoxConfig(audio_model_id=str(whisper_dir), text_model_id=str(llama_dir), stack_factor=8,
                                    hidden_size=64, projector_act="swiglu", projector_ln_mid=True, norm_init=0.4,
                                    torch_dtype="float32")
    model = model_mod.UltravoxModel(config)
    with torch.no_grad():                      # give the projector's norms non-trivial weights
        for name, p in model.multi_modal_projector.named_parameters():
            if "ln_" in name:
                p.uniform_(0.3, 1.2)
    # a v0.5-style release ships its (fine-tuned) audio tower: keep it in the checkpoint, drop the id
    model.keep_params.update(f"audio_tower.{k}" for k in model.audio_tower.state_dict())
    model.config.audio_model_id = None
    model.config.audio_config._name_or_path = "tiny-whisper"
    speech_dir = work / "speech"
    model.save_pretrained(speech_dir, safe_serialization=True)

    fe = transformers.WhisperFeatureExtractor(feature_size=80)
    whisper_tok = _whisper_tokenizer(work)
    processor = proc_mod.UltravoxProcessor(audio_processor=transformers.WhisperProcessor(fe, whisper_tok),
                                           tokenizer=tok, stack_factor=8, audio_context_size=1000)
    fe.save_pretrained(speech_dir)
    tok.save_pretrained(speech_dir)

    # reload as a user would (upstream's from_pretrained: config + checkpoint + text model from text_model_id)
    loaded = model_mod.UltravoxModel.from_pretrained(speech_dir, torch_dtype=torch.float32).eval()
    expected, meta = {}, {"upstream": "fixie-ai/ultravox", "upstream_commit": UPSTREAM_COMMIT,
                          "transformers": transformers.__version__, "torch": torch.__version__,
                          "audio_context_size": 1000, "stack_factor": 8, "cases": {}}
    for name, seconds, before, after in CASES:
        text = tok.apply_chat_template([{"role": "user", "content": before + "<|audio|>" + after}], tokenize=False,
                                       add_generation_prompt=True)
        inputs = processor(text=text, audio=parity_waveform(seconds), sampling_rate=SR, return_tensors="pt")
        with torch.no_grad():
            logits = loaded(**{k: v.clone() for k, v in inputs.items()}).logits
            fresh = model(**{k: v.clone() for k, v in inputs.items()}).logits
            torch.testing.assert_close(logits, fresh)      # the reloaded model is the one that was built
            gen = loaded.generate(**{k: v.clone() for k, v in inputs.items()}, max_new_tokens=6, do_sample=False,
                                  pad_token_id=tok.eos_token_id)
        new = gen[0, -6:] if gen.shape[-1] > 6 else gen[0]
        for key, value in inputs.items():
            expected[f"{name}.{key}"] = torch.as_tensor(value).contiguous()
        expected[f"{name}.logits"] = logits.contiguous()
        meta["cases"][name] = {"seconds": seconds, "content": before + "<|audio|>" + after, "text": text,
                               "generated": [int(t) for t in new]}

    out = args.out
    if out.exists():
        shutil.rmtree(out)
    (out / "speech").mkdir(parents=True)
    for f in speech_dir.iterdir():
        if f.suffix != ".py":                    # save_pretrained copies upstream's code: never committed here
            shutil.copy(f, out / "speech" / f.name)
    cfg = json.loads((out / "speech" / "config.json").read_text())
    cfg["text_model_id"] = "backbone"            # resolved next to speech/ by the fixture spec (no absolute paths)
    cfg.pop("auto_map", None)                     # points at the upstream code files, which are not shipped
    (out / "speech" / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    shutil.copytree(llama_dir, out / "backbone")
    save_file(expected, str(out / "expected.safetensors"))
    (out / "expected.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {out}: {sum(p.stat().st_size for p in out.rglob('*') if p.is_file()) / 1e6:.2f} MB")


def record_with(checkout: Path, out: Path, last: int = 8) -> None:
    """The committed checkpoint and inputs through another upstream commit's code: logits at the last ``last``
    positions (after the audio) and the greedy generations."""
    import subprocess

    import transformers
    from safetensors.torch import load_file, save_file

    commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    _, model_mod, _ = _upstream(checkout)
    work = Path(tempfile.mkdtemp())
    shutil.copytree(out / "speech", work / "speech")
    cfg = json.loads((work / "speech" / "config.json").read_text())
    cfg["text_model_id"] = str((out / "backbone").resolve())          # what upstream loads the LLM from
    (work / "speech" / "config.json").write_text(json.dumps(cfg))
    model = model_mod.UltravoxModel.from_pretrained(work / "speech", torch_dtype=torch.float32).eval()
    # Under transformers 4.57 the v0.5-era code loads the LLM from text_model_id and then lets post-init
    # re-initialise it (its lm_head comes out NaN): put the backbone's weights back — the weights that code means
    # to run — so the comparison is about its audio path (tower, projector, merge), which loads correctly.
    lm_state = load_file(str(out / "backbone" / "model.safetensors"))
    if any(not torch.equal(model.language_model.state_dict()[k], v) for k, v in lm_state.items()):
        model.language_model.load_state_dict(lm_state, strict=False)
        record_note = "language-model weights re-put after from_pretrained (re-initialised by this commit's load)"
    else:
        record_note = ""
    inputs = load_file(str(out / "expected.safetensors"))
    meta = json.loads((out / "expected.json").read_text())
    tensors, record = {}, {"upstream": "fixie-ai/ultravox", "upstream_commit": commit,
                           "transformers": transformers.__version__, "last_positions": last, "cases": {}}
    if record_note:
        record["note"] = record_note
    for name in meta["cases"]:
        feed = {k.split(".", 1)[1]: v for k, v in inputs.items() if k.startswith(name + ".") and "logits" not in k}
        if "audio_batch_size" not in model_mod.UltravoxModel.forward.__code__.co_varnames:
            feed.pop("audio_batch_size")                                 # older commits: one chunk list per batch
        with torch.no_grad():
            logits = model(**{k: v.clone() for k, v in feed.items()}).logits
        tensors[f"{name}.logits_last"] = logits[:, -last:].contiguous()
        # no generate(): before v0.6 UltravoxModel relied on PreTrainedModel.generate, gone in transformers 4.50+
        record["cases"][name] = {"prompt_tokens": int(feed["input_ids"].shape[1])}
    save_file(tensors, str(out / f"expected-{commit[:7]}.safetensors"))
    (out / f"expected-{commit[:7]}.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"recorded {out}/expected-{commit[:7]}.*: {record['cases']}")


def _whisper_tokenizer(work: Path):
    """WhisperProcessor (upstream's audio_processor) insists on a Whisper tokenizer, never used for audio:
    a byte-level one with no merges, written locally."""
    from transformers import WhisperTokenizer
    from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    vocab["<|endoftext|>"] = len(vocab)
    (work / "vocab.json").write_text(json.dumps(vocab))
    (work / "merges.txt").write_text("#version: 0.2\n")
    return WhisperTokenizer(str(work / "vocab.json"), str(work / "merges.txt"))


if __name__ == "__main__":
    main()
