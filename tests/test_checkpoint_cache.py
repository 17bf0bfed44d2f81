"""Converted checkpoints in the cache: built once under a lock in a per-process folder, checked on every read
(sizes and sha256 listed in COMPLETE), rebuilt when damaged. Exercised with a tiny real Llama checkpoint."""
from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest
import torch

from harness import lm

CONFIG = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
              num_key_value_heads=1, max_position_embeddings=32)


def save_tiny_llama(folder: Path, tokenizer: bool = False) -> None:
    """A real (randomly initialised, seeded) LlamaForCausalLM written by save_pretrained (+ the packaged tokenizer)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**CONFIG)).save_pretrained(folder)
    if tokenizer:
        AutoTokenizer.from_pretrained(lm.converted_checkpoint()).save_pretrained(folder)


def _build_and_count(out: str, log: str, barrier) -> str:
    def build(tmp: Path) -> None:
        with open(log, "a") as f:
            f.write(f"{tmp.name}\n")
        save_tiny_llama(tmp)

    barrier.wait()                              # both processes ask for the missing checkpoint at once
    return str(lm.build_checkpoint(Path(out), build, {"what": "tiny"}, progress=lambda _: None))


def test_two_processes_building_at_once_build_it_once_and_both_get_it_whole(tmp_path):
    out, log = tmp_path / "backbones" / "tiny", tmp_path / "builds.log"
    out.parent.mkdir()
    ctx = mp.get_context("spawn")
    barrier = ctx.Manager().Barrier(2)
    with ctx.Pool(2) as pool:
        got = pool.starmap(_build_and_count, [(str(out), str(log), barrier)] * 2)
    assert got == [str(out)] * 2
    assert lm.checkpoint_problem(out) is None
    assert len(log.read_text().splitlines()) == 1
    assert [p.name for p in out.parent.iterdir() if ".partial" in p.name] == []


def test_a_truncated_weights_file_is_detected_and_rebuilt(tmp_path):
    out, builds = tmp_path / "tiny", []

    def build(tmp):
        builds.append(tmp.name)
        save_tiny_llama(tmp)

    lm.build_checkpoint(out, build, {}, progress=lambda _: None)
    weights = out / "model.safetensors"
    whole = weights.read_bytes()
    weights.write_bytes(whole[: len(whole) // 2])
    assert "model.safetensors has" in lm.checkpoint_problem(out)
    said = []
    lm.build_checkpoint(out, build, {}, progress=said.append)
    assert len(builds) == 2 and weights.read_bytes() == whole
    assert said and said[0].startswith(f"rebuilding {out}: model.safetensors has {len(whole) // 2} bytes")


def test_a_flipped_byte_fails_the_checksum(tmp_path):
    out = lm.build_checkpoint(tmp_path / "tiny", save_tiny_llama, {}, progress=lambda _: None)
    weights = out / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert lm.checkpoint_problem(out) == "model.safetensors fails its sha256 check"


def test_a_marker_without_checksums_is_not_trusted(tmp_path):
    folder = tmp_path / "old"
    save_tiny_llama(folder)
    (folder / "COMPLETE").write_text('{"gguf": "x.gguf", "sha256": "0"}')       # the marker older versions wrote
    assert lm.checkpoint_problem(folder) == "COMPLETE marker without file checksums"


def test_a_checkpoint_that_fails_to_load_is_rebuilt_once(tmp_path):
    out, builds = tmp_path / "tiny", []

    def build(tmp):                 # the first build leaves a config transformers cannot read (checksums match it)
        save_tiny_llama(tmp, tokenizer=True)
        if not builds:
            (tmp / "config.json").write_text('{"model_type": "no-such-architecture"}')
        builds.append(tmp.name)

    lm.build_checkpoint(out, build, {}, progress=lambda _: None)
    assert lm.checkpoint_problem(out) is None
    model, tokenizer = lm._load_checked(out, lambda: lm.build_checkpoint(out, build, {}, progress=print), "cpu")
    assert len(builds) == 2 and model.config.model_type == "llama" and tokenizer is not None
