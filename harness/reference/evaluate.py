"""Measure a trained reference model against issue 5's bars, through the same adapter and runner as the suite.

- repeat WER: "Repeat exactly what was said." + audio → greedy text, on the held-out training sentences
  (never trained on; the data split of ``harness.reference.data``), WER after Whisper's normaliser — beside
  the matched cascade asked the same (ASR transcript in the slot, same backbone, same prompt): the ceiling.
  The instruction-tuned backbone answers questions instead of repeating them and shortens long sentences,
  so even the cascade is far from 0 (0.35 on the 24 held-out sentences, measured 2026-11-25);
- task accuracy of the reference vs its matched (offline) cascade on the mini twins' evaluation items,
  with chance, through ``harness.runner`` (cached answers are reused by the claim tests).

``python -m harness.reference evaluate ref-cascade [--items 80] [--tasks topic sentiment]``
"""
from __future__ import annotations

from harness.asr import word_error_rate
from harness.reference import data as D
from harness.reference.train import repeat_messages


def repeat_wer(system, heldout, max_new_tokens: int = 48) -> dict:
    """``system`` (a SpeechLLM, or a Cascade: its ASR transcript read as text) repeating ``heldout`` clips."""
    refs, hyps = [], []
    for ex, audio, text in heldout:
        if hasattr(system, "prefix_embeds"):
            prefix = system.prefix_embeds(system.prepare(repeat_messages(system.audio_slot), audio))
        else:
            bb = system.backbone
            prefix = bb.embed(bb.prompt_ids(repeat_messages(system.transcribe(ex.item, audio))))
        hyps.append(system.backbone.generate(prefix, max_new_tokens=max_new_tokens))
        refs.append(text)
    exact = sum(word_error_rate([r], [h]) == 0 for r, h in zip(refs, hyps))
    return {"repeat_wer": round(word_error_rate(refs, hyps), 4), "n": len(refs), "exact": exact,
            "examples": [{"ref": r, "hyp": h} for r, h in list(zip(refs, hyps))[:4]]}


def evaluate(model_id: str, tasks=("topic", "sentiment", "commonsense", "speaking_rate"), items: int = 80,
             progress=print) -> dict:
    from harness.evidence import Evidence

    ev = Evidence(items=items)
    system = ev.speech_llm(model_id)
    _, held, _ = D.examples(D.SEED)
    out = {"model": model_id, "revision": system.backbone.revision}
    clips = D.synthesize(held, desc="tts (held-out)")
    out["repeat"] = repeat_wer(system, clips)
    out["repeat"]["cascade_repeat_wer"] = repeat_wer(ev.cascade(model_id), clips)["repeat_wer"]
    progress(f"repeat WER {out['repeat']['repeat_wer']:.3f} on {out['repeat']['n']} held-out sentences "
             f"(matched cascade asked the same: {out['repeat']['cascade_repeat_wer']:.3f})")
    out["tasks"] = {}
    for name in tasks:
        llm, casc = ev.answers(model_id, name)
        acc = {"model": sum(a.correct for a in llm) / len(llm), "cascade": sum(a.correct for a in casc) / len(casc),
               "chance": ev.task(name).chance, "n": len(llm)}
        out["tasks"][name] = {k: round(v, 4) if isinstance(v, float) else v for k, v in acc.items()}
        progress(f"{name}: {model_id} {acc['model']:.3f} vs cascade {acc['cascade']:.3f} (chance {acc['chance']:.2f}, "
                 f"n={acc['n']})")
    return out
