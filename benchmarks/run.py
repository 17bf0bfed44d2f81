"""Speed of the offline pipeline on this machine, against targets (never part of the test run).

    python benchmarks/run.py [--items 10]

Measures seconds per item for TTS (cold cache), ASR (Whisper tiny.en, greedy and beam 5), the backbone's answer
(option scoring), each reference speech-LLM's answer (ref-cascade: encoder, projector, backbone; ref-transcriber:
its own Whisper decoding, then the backbone; ref-prosody: the energy contour, then the backbone) — the default
`pytest` run's largest cost —, one logit-lens pass (and its top-1 unembedding alone: float32 vs the bfloat16-screened
exact top-1), one sequential LEACE fit at the paper's 9 layers (per item: one walk through the layers) on
ref-transcriber, one κ bootstrap CI at n=500, and the wall time of the demo command
run twice: the second run must take its audio, the converted backbone and the answers from the caches. Exits 1 when
a target is missed.
Per-system inference seconds of a whole `pytest` run are in its terminal summary ("answers inferred").
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGETS = {  # seconds; set for a 2-core laptop CPU
    "tts_per_item": 1.0,
    "asr_per_item": 0.8,
    "answer_per_item": 0.6,
    "ref_answer_per_item": 1.0,
    "demo_second_run": 15.0,
    "kappa_bootstrap_n500": 2.0,
}


def per_item(fn, items) -> float:
    start = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - start) / len(items)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=10)
    args = parser.parse_args()
    os.environ["CASCADE_EQ_CACHE"] = cache = tempfile.mkdtemp(prefix="cascade-eq-bench-")
    from harness import prompts, tts
    from harness.asr import load_asr
    from harness.cache import cache_root
    from harness.lm import load_backbone
    from harness.systems.base import answer_from_prefix
    from harness.tasks import load_task

    task = load_task("topic")
    items = task.subset(args.items)
    results = {}
    results["tts_per_item"] = per_item(lambda it: tts.synthesize(it.text, it.speech, item_id=it.id), items)
    asr = load_asr()
    audio = {it.id: tts.synthesize(it.text, it.speech, item_id=it.id) for it in items}
    results["asr_per_item"] = per_item(lambda it: asr.transcribe(audio[it.id]), items)
    beam = load_asr(beam_size=5)
    results["asr_beam5_per_item"] = per_item(lambda it: beam.transcribe(audio[it.id]), items)
    t0 = time.perf_counter()
    backbone = load_backbone()
    results["backbone_load_s"] = time.perf_counter() - t0

    def answer(it):
        ids = backbone.prompt_ids(prompts.messages(task, it, it.text))
        return answer_from_prefix(backbone, task, it, backbone.embed(ids))

    results["answer_per_item"] = per_item(answer, items)
    from harness.systems.load import speech_llm

    ref = speech_llm("ref-cascade")
    ref.answer(task, items[0], audio[items[0].id])        # first call: lazy set-up outside the timing
    results["ref_answer_per_item"] = per_item(lambda it: ref.answer(task, it, audio[it.id]), items)
    for model in ("ref-transcriber", "ref-prosody"):
        other = speech_llm(model)
        other.answer(task, items[0], audio[items[0].id])
        results[f"{model.replace('-', '_')}_answer_per_item"] = per_item(
            lambda it: other.answer(task, it, audio[it.id]), items)
    from harness.positions import seconds_per_position
    from harness.probes.leace.concepts import energy_concept
    from harness.probes.leace.fit import fit_erasers
    from harness.probes.lens import logit_lens

    carrier, clips = speech_llm("ref-transcriber"), [audio[it.id] for it in items]
    t0 = time.perf_counter()
    logit_lens(carrier, task, items, clips)
    results["lens_per_item"] = (time.perf_counter() - t0) / len(items)
    import torch

    from harness.systems.lens_top1 import exact_top1

    rows = [torch.unique(carrier.hidden_states_at_audio(task, it, audio[it.id]).flatten(0, 1), dim=0)
            for it in items[:3]]
    normed, weight = [carrier.final_norm(r).detach() for r in rows], carrier.unembedding.weight.detach()
    results["lens_top1_float32_per_item"] = per_item(lambda h: (h @ weight.T).argmax(-1), normed)
    results["lens_top1_screened_per_item"] = per_item(lambda h: exact_top1(h, weight), normed)
    from harness.probes.leace.experiment import paper_layers

    concept = energy_concept(items, clips, seconds_per_position(carrier))
    t0 = time.perf_counter()
    fit_erasers(carrier, task, items, clips, [concept], paper_layers(carrier), progress=False)
    results["leace_fit_paper_layers_per_item"] = (time.perf_counter() - t0) / len(items)
    from harness.stats import agreement

    rng = __import__("numpy").random.default_rng(0)
    a = rng.integers(0, 4, 500)
    b = (a + (rng.random(500) < 0.3) * rng.integers(1, 4, 500)) % 4
    t0 = time.perf_counter()
    agreement(a, b)
    results["kappa_bootstrap_n500"] = time.perf_counter() - t0
    demo = [sys.executable, "-m", "harness", "answer", "--task", "sentiment", "--items", "20", "--quiet"]
    env = {**os.environ, "CASCADE_EQ_CACHE": cache}
    for label in ("demo_first_run", "demo_second_run"):
        t0 = time.perf_counter()
        subprocess.run(demo, env=env, check=True, capture_output=True)
        results[label] = time.perf_counter() - t0
    print(f"cache: {cache_root()}")
    failed = False
    for name, value in results.items():
        target = TARGETS.get(name)
        ok = target is None or value <= target
        failed |= not ok
        print(f"{name:<32} {value:8.3f} s   target {'-' if target is None else f'≤ {target}'}  {'' if ok else 'MISSED'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
