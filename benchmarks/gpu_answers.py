"""GPU answers per second of every native class's tiny config, at batch 1 and 16, bf16 (a start for the GPU
benchmark a real-model nightly needs). Run on a GPU box: ``python benchmarks/gpu_answers.py`` (prints a table).
Synthetic 3 s clips (seeded noise) and the commonsense twin's items; option scoring as in the suite."""
from __future__ import annotations

import time

import numpy as np
import torch

from harness.audio import Audio
from harness.systems.hf_native import HFNativeSpeechLLM
from harness.tasks import load_task
from tests import tiny_models

ITEMS = 48


def clip(seed: int) -> Audio:
    return Audio(np.random.default_rng(seed).normal(0, 0.05, 48_000).astype(np.float32))


def answers_per_second(system, task, items, batch: int) -> float:
    audios = [clip(k) for k in range(len(items))]
    def run():
        if batch == 1:
            for it, a in zip(items, audios):
                system.answer(task, it, a)
        else:
            for k in range(0, len(items), batch):
                system.answer_batch(task, list(items[k:k + batch]), audios[k:k + batch])
        torch.cuda.synchronize()
    run()                                   # warm-up (kernels, caches)
    t0 = time.perf_counter()
    run()
    return len(items) / (time.perf_counter() - t0)


def main() -> None:
    task = load_task("commonsense")
    items = task.items[:ITEMS]
    print(f"| family (tiny config) | answers/s batch 1 | answers/s batch 16 |  ({torch.cuda.get_device_name()}, bf16, "
          f"{ITEMS} items, torch {torch.__version__})")
    print("|---|---|---|")
    for family in tiny_models.FAMILIES:
        model, processor = tiny_models.build(family)
        system = HFNativeSpeechLLM(model.to("cuda", torch.bfloat16), processor, family, model_id=f"tiny/{family}",
                                   revision="random")
        rates = [answers_per_second(system, task, items, b) for b in (1, 16)]
        print(f"| {family} | {rates[0]:.1f} | {rates[1]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
