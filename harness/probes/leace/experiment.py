"""The whole comparison (claim 3): fit text and energy erasers on training items, build the random controls, and on
disjoint evaluation items measure task accuracy and fresh probes under each eraser; the split is in the result."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from harness.asr import Word
from harness.audio import Condition
from harness.positions import seconds_per_position
from harness.runner import accuracy
from harness.tasks import Item, Task

from .concepts import ENERGY_BINS, TOP_K, energy_concept, text_concept
from .erasers import damage_matched_eraser, identity_eraser, random_eraser
from .fit import fit_erasers
from .hooks import ErasedSystem, _check_layers, displacement
from .probing import _audio_streams, _half_probes, _labelled, _transfer_probes

PAPER_LAYERS = 9          # the paper probes and erases at 9 layers (indices not given): see paper_layers
DAMAGE_ITEMS = 16        # fitting items on which the text eraser's displacement is measured (damage-matched control)


@dataclass(frozen=True)
class LeaceResult:
    """Accuracy and probe results under each eraser; the fit/eval split is part of the result."""

    system: str
    task: str
    layers: tuple[int, ...]
    split: dict                   # {"fit": [ids], "eval": [ids]}
    settings: dict
    erasers: dict                 # condition → Eraser.to_dict()
    accuracy: dict                # condition → accuracy on the eval items
    choices: dict = field(repr=False)          # condition → per-item choices
    probes: dict = field(default_factory=dict)  # concept → condition → [ProbeScore.to_dict()]: held-out halves
    fit_probes: dict = field(default_factory=dict)  # the same, probes trained on the erased fitting positions

    def to_dict(self) -> dict:
        return {"system": self.system, "task": self.task, "layers": list(self.layers), "split": self.split,
                "settings": self.settings, "erasers": self.erasers, "accuracy": self.accuracy,
                "choices": self.choices, "probes": self.probes, "fit_probes": self.fit_probes}


def _even(layers: Sequence[int], n: int) -> list[int]:
    picks = np.unique(np.linspace(0, len(layers) - 1, num=min(n, len(layers))).round().astype(int))
    return [layers[i] for i in picks]


def paper_layers(system) -> list[int]:
    """The default layers to erase at: ``PAPER_LAYERS`` residual entries spread evenly over the decoder's inputs
    (0..L−1, first and last included). Why: the paper erases "at all probed layers at once" and probes 9 layers
    whose indices it does not give (``shared/PAPER.md``, claims 2–3). Erasing at *every* layer instead removes
    L × rank dimensions: measured on ref-cascade (topic, n=80; 30 layers × rank 64 of 576), even the rank-matched
    random control then fell to chance (0.25), so the control could no longer tell text from damage."""
    return _even(list(range(len(system.decoder_layers))), PAPER_LAYERS)


def leace_experiment(runner, system, task: Task, fit_items: Sequence[Item], eval_items: Sequence[Item], *,
                     layers: Sequence[int] | None = None, probe_layers: Sequence[int] | None = None,
                     words: Mapping[str, Sequence[Word]] | None = None, asr=None, top_k: int = TOP_K,
                     energy_bins: int = ENERGY_BINS, affine: bool = False, scope: str = "audio", seed: int = 0,
                     condition: Condition | str = "clean", probes: bool = True, choose: str = "frequent",
                     concept_at: str = "span", moments: str = "central", damage_matched: bool = False,
                     noop_text: bool = False) -> LeaceResult:
    """Fit text + energy erasers on ``fit_items``, build the random control, and on ``eval_items`` measure task
    accuracy under none/text/random/energy (answers via ``runner``) and fresh linear probes after erasure: trained
    on half the evaluation items and tested on the other half (``probes``, :func:`probe_accuracy`), and trained
    on the fitting items and tested on the evaluation items (``fit_probes``, :func:`fit_probe_accuracy`).

    ``layers``: residual entries to erase at (default ``paper_layers``: 9 spread over 0..L−1). ``words``: item id →
    ASR words; transcribed with ``asr`` (default the packaged faster-whisper) when not given. ``choose``: which words
    the text concept names (:func:`text_concept`); ``concept_at``: which positions a word labels (its ``at``);
    ``moments``: central or raw (:func:`fit_erasers`). ``damage_matched``: add the damage-matched random control
    (:func:`damage_matched_eraser`; its displacement measured on the first ``DAMAGE_ITEMS`` fitting items).
    ``noop_text``: the collapse claim's mutant — the fitted text eraser is replaced by a no-op.
    """
    overlap = sorted({it.id for it in fit_items} & {it.id for it in eval_items})
    if overlap:
        raise ValueError(f"fitting and evaluation items must be disjoint; shared: {overlap[:5]}"
                         f"{'…' if len(overlap) > 5 else ''} ({len(overlap)} items)")
    if not fit_items or not eval_items:
        raise ValueError(f"need fitting and evaluation items (got {len(fit_items)} and {len(eval_items)})")
    condition = Condition.parse(condition)
    layers = _check_layers(system, paper_layers(system) if layers is None else layers)
    probe_layers = _check_layers(system, _even(layers, 4) if probe_layers is None else probe_layers)
    fit_audio = [runner.audio(task, it, condition) for it in fit_items]
    eval_audio = [runner.audio(task, it, condition) for it in eval_items]
    if words is None:
        from harness.asr import load_asr

        asr = asr or load_asr()
        words = {it.id: asr.transcribe(a, cached=True).words
                 for it, a in zip([*fit_items, *eval_items], [*fit_audio, *eval_audio])}
    seconds = seconds_per_position(system)
    text = text_concept(words, fit_items, seconds, top_k=top_k, choose=choose, at=concept_at)
    energy = energy_concept(fit_items, fit_audio, seconds, bins=energy_bins)
    fitted = fit_erasers(system, task, fit_items, fit_audio, [text, energy], layers, affine=affine, scope=scope,
                         moments=moments, cache=runner.disk_cache)
    erasers = {"text": fitted["text"], "random": random_eraser(fitted["text"], seed), "energy": fitted["energy"]}
    if damage_matched:
        moved = displacement(system, task, fit_items[:DAMAGE_ITEMS], fit_audio[:DAMAGE_ITEMS], fitted["text"],
                             scope=scope)
        erasers["damage"] = damage_matched_eraser(fitted["text"], moved, seed)
    if noop_text:
        erasers["text"] = identity_eraser(fitted["text"])
    systems = {"none": system, **{k: ErasedSystem(system, e, scope=scope) for k, e in erasers.items()}}
    answers = {k: runner.answers(s, task, eval_items, condition) for k, s in systems.items()}
    probe_out: dict = {}
    fit_probe_out: dict = {}
    if probes:
        streams: dict = {}      # (condition, split) → per-item streams: "none" serves both concepts
        splits = {"evaluation": (eval_items, eval_audio), "fitting": (fit_items, fit_audio)}

        def labelled(cond, split, concept):
            its, auds = splits[split]
            if (cond, split) not in streams:
                streams[cond, split] = _audio_streams(system, task, its, auds, probe_layers, erasers.get(cond), scope,
                                                      f"probe streams (erased: {cond}) on {split} items")
            return _labelled(streams[cond, split], its, auds, concept, probe_layers)

        for concept, conditions in ((text, ("none", "text", "random")), (energy, ("none", "energy"))):
            probe_out[concept.name], fit_probe_out[concept.name] = {}, {}
            for cond in conditions:
                held, fitted = labelled(cond, "evaluation", concept), labelled(cond, "fitting", concept)
                probe_out[concept.name][cond] = [
                    s.to_dict() for s in _half_probes(held, len(eval_items), concept, seed).values()]
                fit_probe_out[concept.name][cond] = [
                    s.to_dict() for s in _transfer_probes(fitted, held, concept, seed).values()]
                if cond != "none":          # only the unerased streams are needed again: keep memory flat
                    streams.pop((cond, "evaluation")), streams.pop((cond, "fitting"))
    return LeaceResult(
        system=system.name, task=task.name, layers=layers,
        split={"fit": [it.id for it in fit_items], "eval": [it.id for it in eval_items]},
        settings={"affine": affine, "scope": scope, "top_k": top_k, "energy_bins": energy_bins, "seed": seed,
                  "concept_words": choose, "concept_at": concept_at, "moments": moments,
                  "concept_classes": list(text.classes),
                  "condition": str(condition), "seconds_per_position": seconds, "probe_layers": list(probe_layers),
                  "text_concept": text.description, "energy_concept": energy.description},
        erasers={k: e.to_dict() for k, e in erasers.items()},
        accuracy={k: accuracy(a) for k, a in answers.items()},
        choices={k: [x.choice for x in a] for k, a in answers.items()},
        probes=probe_out, fit_probes=fit_probe_out)
