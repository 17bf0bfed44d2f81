"""LEACE erasure of the text concept at the audio positions, with rank-matched random and acoustic controls (claim 3).

If the speech-LLM answers from text it carries internally, erasing that text concept from the residual stream
at the audio positions should collapse task accuracy, while erasing a random subspace of the same rank should
not. One concept per module:

- :mod:`.concepts` — per-position class labels: the word heard there (text) or its frame energy (acoustic);
  which word is heard where comes from ``harness.positions``;
- :mod:`.erasers` — the compact rank-r eraser and the controls matched to one (random, damage-matched, no-op);
- :mod:`.fit` — fitting one LEACE eraser per concept and layer, layer by layer;
- :mod:`.fit_cache` — the fitted erasers kept on disk, so a rerun does not refit them;
- :mod:`.hooks` — applying an eraser inside the decoder (scoring and generation), ``ErasedSystem``;
- :mod:`.probing` — fresh linear probes on the erased stream;
- :mod:`.experiment` — ``leace_experiment``: the whole comparison on disjoint fitting and evaluation items.

The names below are the package's public surface (``from harness.probes.leace import leace_experiment``).
"""
from __future__ import annotations

from .concepts import (CONCEPT_AT, CONCEPT_WORDS, ENERGY_BINS, OTHER, TOP_K, Concept, energy_concept, informative_words,
                       text_concept)
from .erasers import RANK_TOL, Eraser, damage_matched_eraser, identity_eraser, make_eraser, random_eraser
from .experiment import DAMAGE_ITEMS, PAPER_LAYERS, LeaceResult, leace_experiment, paper_layers
from .fit import MOMENTS, SVD_TOL, eraser_from_fitters, fit_erasers, new_fitter
from .hooks import SCOPES, ErasedSystem, HookCounter, displacement, erased_stream, erasing
from .probing import ProbeScore, fit_probe_accuracy, linear_probe, probe_accuracy

__all__ = [
    "CONCEPT_AT", "CONCEPT_WORDS", "DAMAGE_ITEMS", "ENERGY_BINS", "MOMENTS", "OTHER", "PAPER_LAYERS", "RANK_TOL",
    "SCOPES", "SVD_TOL", "TOP_K",
    "Concept", "ErasedSystem", "Eraser", "HookCounter", "LeaceResult", "ProbeScore", "damage_matched_eraser",
    "displacement", "energy_concept", "erased_stream", "eraser_from_fitters", "erasing", "fit_erasers",
    "fit_probe_accuracy", "identity_eraser", "informative_words", "leace_experiment", "linear_probe", "make_eraser",
    "new_fitter", "paper_layers", "probe_accuracy", "random_eraser", "text_concept",
]
