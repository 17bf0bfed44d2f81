"""LEACE erasure of the text concept at the audio positions, with rank-matched random and acoustic controls (claim 3).

If the speech-LLM answers from text it carries internally, erasing that text concept from the residual stream
at the audio positions should collapse task accuracy, while erasing a random subspace of the same rank should
not. Pieces:

**Concept labels** (one class per audio position, -1 = unlabelled, never fitted):
- *text* (``text_concept``): the word being spoken during that position's time span — ASR word timestamps
  (``harness.asr``, faster-whisper) mapped onto positions by the family's seconds per audio embedding
  (``seconds_per_position``); the word overlapping the span most wins; positions overlapping no word
  (pauses, the padded tail of a Whisper window) are unlabelled. Classes: the ``top_k`` most frequent
  normalised words (lowercase, punctuation stripped, stop words *kept*: they are spoken words too) of the
  **fitting** items, plus ``<other>``. Why this choice: it is the concept the lens shows surfacing (word
  identity at the position where it is heard) and needs no tokenizer alignment. Alternatives: the
  backbone's first token of the word (ties the concept to one tokenizer), a label per lens-top-1 token
  (circular: it erases what the lens reads, not what was said), or a ``<silence>`` class (mixes in
  speech/non-speech, an acoustic distinction the energy control already covers).
- *acoustic* (``energy_concept``): the position's frame energy (RMS in dB over its time span of the clip)
  in ``bins`` quantile bins whose edges come from the fitting items; positions past the clip are unlabelled.

**Fitting** (``fit_erasers``): one ``concept_erasure.LeaceFitter`` per (concept, layer) (``new_fitter``: rare
classes erased too), streamed item by item
on the residual stream entries of ``SpeechLLM.residual_stream`` (entry l = input of decoder layer l); layer by
layer, each fitted with the earlier layers' erasers already hooked in (as concept-erasure's own scrubbers do),
since the erasers are applied together. ``affine=False`` by default: the fitted
projection is applied without re-centering on the audio-position mean (the paper's reason: that mean is out
of distribution for other positions, e.g. generated tokens); ``affine=True`` re-centres. Each eraser is stored
as its compact rank-r form x ↦ x − ((x − b) Rᵀ) Lᵀ.

**Applying** (``erasing``): forward hooks on the decoder layers, registered with ``prepend=True`` so they run
before transformers 5's own output-recording hooks (``utils/output_capturing.py`` records ``hidden_states``
with forward hooks on the decoder layers; the first entry from layer 0's input). Entry l ≥ 1 is erased in
layer l−1's *output* (= layer l's input, and what ``output_hidden_states`` records); entry 0 in a forward
*pre*-hook on layer 0. Only the prompt's audio positions are erased (``scope="audio"``): a call whose
sequence is at least the prompt long starts at position 0 (the prompt pass of option scoring and of
generation, ``residual_stream``); shorter calls are cached steps past the prompt (an option's later tokens,
generated tokens), left alone — they still attend to the erased keys/values cached by the prompt pass.
``scope="all"`` erases every position of every call (generated tokens included), the paper's reading of
"during generation too".

**Controls**: ``random_eraser`` — a seeded orthogonal projection onto the complement of a random subspace with
the text eraser's rank at each of its layers; and the acoustic concept's own LEACE eraser.

``ErasedSystem`` answers like its SpeechLLM under an eraser; its fingerprint (the runner's cache key) holds
the eraser's, a digest of the projection matrices and the config. ``leace_experiment`` runs the whole
comparison with fitting and evaluation items disjoint, the split recorded in the result.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from harness.asr import Word
from harness.audio import SAMPLE_RATE, Audio, Condition
from harness.families import FAMILIES
from harness.runner import accuracy
from harness.systems.base import Answer, answer_from_prefix
from harness.tasks import Item, Task

from .lens import check_aligned, normalise_piece

OTHER = "<other>"
TOP_K = 64
ENERGY_BINS = 8
PAPER_LAYERS = 9          # the paper probes and erases at 9 layers (indices not given): see paper_layers
SCOPES = ("audio", "all")
RANK_TOL = 1e-6          # singular values of the erased part below this × the largest are numerical zeros
SVD_TOL = 1e-9           # concept-erasure's own default (0.01) leaves rare classes readable: see new_fitter
DAMAGE_ITEMS = 16        # fitting items on which the text eraser's displacement is measured (damage-matched control)


# -- time ↔ audio position --------------------------------------------------------------------------------
def seconds_per_position(system) -> float:
    """Seconds of audio behind one audio embedding: the ``seconds_per_position`` of the system's family
    (``harness.families``, which says how each front end gets there) applied to its model's config."""
    family = getattr(system, "family_name", None)
    rule = FAMILIES[family].seconds_per_position if family in FAMILIES else None
    if rule is None:
        raise ValueError(f"{system.name}: seconds per audio position unknown for family {family!r} "
                         f"({type(system).__name__}); add it to the family's entry in harness/families.py")
    return rule(system.model.config)


def normalise_word(word: str) -> str | None:
    """Lowercase, punctuation stripped at both ends; None when nothing alphanumeric is left (stop words kept)."""
    return normalise_piece(word, stops=frozenset())


def word_owners(words: Sequence[Word], n_positions: int, seconds: float) -> list[int]:
    """Per audio position, the index of the word (one with a normalised form) overlapping its span
    [i·s, (i+1)·s) most; -1 for none. Shared by the text concept and the reference trainer's alignment."""
    starts = np.arange(n_positions) * seconds
    owner = [-1] * n_positions
    best = np.zeros(n_positions)
    for k, w in enumerate(words):
        if normalise_word(w.text) is None:
            continue
        overlap = np.minimum(starts + seconds, w.end) - np.maximum(starts, w.start)
        for i in np.flatnonzero(overlap > best):
            owner[i], best[i] = k, overlap[i]
    return owner


def word_labels(words: Sequence[Word], n_positions: int, seconds: float) -> list[str | None]:
    """Per audio position, the normalised word overlapping its span most (:func:`word_owners`); None for none."""
    return [normalise_word(words[k].text) if k >= 0 else None for k in word_owners(words, n_positions, seconds)]


def position_energy(audio: Audio, n_positions: int, seconds: float) -> np.ndarray:
    """RMS energy in dB of the clip under each position's span; NaN for positions past the clip's end."""
    x = np.asarray(audio.samples, dtype=np.float64)
    hop = seconds * SAMPLE_RATE
    out = np.full(n_positions, np.nan)
    for i in range(n_positions):
        a, b = int(round(i * hop)), int(round((i + 1) * hop))
        if a >= x.size:
            break
        out[i] = 10 * np.log10(np.mean(x[a:min(b, x.size)] ** 2) + 1e-10)
    return out


# -- concepts ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Concept:
    """Per-position class labels over ``classes``; ``labeler(item, audio, n_positions)`` → int array, -1 = none."""

    name: str
    classes: tuple[str, ...]
    labeler: Callable[[Item, Audio, int], np.ndarray] = field(repr=False, compare=False)
    description: str = ""

    def labels(self, item: Item, audio: Audio, n_positions: int) -> np.ndarray:
        y = np.asarray(self.labeler(item, audio, n_positions), dtype=np.int64)
        if y.shape != (n_positions,) or (y.size and not (-1 <= y.min() and y.max() < len(self.classes))):
            raise ValueError(f"item {item.id!r}: concept {self.name!r} gave labels of shape {y.shape} in "
                             f"[{y.min() if y.size else '-'}, {y.max() if y.size else '-'}]; expected "
                             f"({n_positions},) in [-1, {len(self.classes) - 1}]")
        return y


def informative_words(words: Mapping[str, Sequence[Word]], fit_items: Sequence[Item], *, max_k: int,
                      alpha: float = 0.05) -> list[str]:
    """The words whose presence in a fitting item is associated with its label: a χ² test of independence
    (word heard in the item × label) per word, Benjamini–Hochberg over all words at ``alpha``; the most
    significant ``max_k`` of them. Why: the collapse claim asks whether the *task's* information is text; these
    are the words that carry it in the fitting data, whatever the model's width (``max_k`` is a share of it)."""
    from scipy.stats import chi2_contingency
    from statsmodels.stats.multitest import multipletests

    labels = sorted({str(it.label) for it in fit_items})
    if len(labels) < 2:
        raise ValueError(f"informative words need fitting items of at least 2 labels, got {labels}")
    heard = {it.id: {t for w in words[it.id] if (t := normalise_word(w.text)) is not None} for it in fit_items}
    vocab = sorted(set().union(*heard.values()))
    pvalues = []
    for w in vocab:
        table = np.zeros((2, len(labels)))
        for it in fit_items:
            table[int(w in heard[it.id]), labels.index(str(it.label))] += 1
        if (table.sum(axis=1) == 0).any():
            pvalues.append(1.0)
            continue
        pvalues.append(float(chi2_contingency(table, correction=False).pvalue))
    if not vocab:
        return []
    reject, adjusted, _, _ = multipletests(pvalues, alpha=alpha, method="fdr_bh")
    ranked = sorted((p, w) for w, p, r in zip(vocab, adjusted, reject) if r)
    return [w for _, w in ranked[:max_k]]


CONCEPT_WORDS = ("frequent", "informative")


def text_concept(words: Mapping[str, Sequence[Word]], fit_items: Sequence[Item], seconds: float, *,
                 top_k: int = TOP_K, choose: str = "frequent") -> Concept:
    """The word spoken at each position over the fitting items' ``top_k`` words + ``<other>`` (module doc).
    ``choose``: "frequent" — the ``top_k`` most frequent words; "informative" — at most ``top_k`` words
    associated with the label (:func:`informative_words`)."""
    missing = [it.id for it in fit_items if it.id not in words]
    if missing:
        raise ValueError(f"no ASR words for fitting items {missing[:5]}{'…' if len(missing) > 5 else ''}")
    if choose not in CONCEPT_WORDS:
        raise ValueError(f"text concept words {choose!r}: expected one of {CONCEPT_WORDS}")
    vocab: list[str] = []
    counts: dict[str, int] = {}
    for it in fit_items:
        for w in words[it.id]:
            if (t := normalise_word(w.text)) is not None:
                counts[t] = counts.get(t, 0) + 1
    if choose == "informative":
        vocab = informative_words(words, fit_items, max_k=top_k)
    if choose == "frequent" or not vocab:     # no word carries the label (a text-insufficient task): the frequent ones
        choose = "frequent" if choose == "frequent" else "informative: none significant, so the most frequent"
        vocab = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]]
    if not vocab:
        raise ValueError(f"the {len(fit_items)} fitting items have no recognised words: no text concept to fit")
    index = {w: i for i, w in enumerate(vocab)}

    def labeler(item: Item, audio: Audio, n: int) -> np.ndarray:
        if item.id not in words:
            raise ValueError(f"item {item.id!r}: no ASR words for the text concept")
        return np.array([-1 if w is None else index.get(w, len(vocab))
                         for w in word_labels(words[item.id], n, seconds)])

    what = f"{len(vocab)} label-informative (≤ {top_k}): {vocab}" if choose == "informative" else f"top {top_k} ({choose})"
    return Concept("text", tuple(vocab) + (OTHER,), labeler,
                   f"word spoken at the position (ASR timestamps, {seconds:g} s/position), {what} + other")


def energy_concept(fit_items: Sequence[Item], audios: Sequence[Audio], seconds: float, *,
                   bins: int = ENERGY_BINS) -> Concept:
    """Frame-energy bins (quantile edges from the fitting items' clips) as the acoustic control concept."""
    check_aligned(fit_items, audios)
    chunks = []
    for audio in audios:
        e = position_energy(audio, int(np.ceil(audio.duration / seconds)), seconds)
        chunks.append(e[np.isfinite(e)])
    values = np.concatenate(chunks) if chunks else np.array([])
    if values.size < bins:
        raise ValueError(f"energy concept: {values.size} positions in the fitting clips, fewer than {bins} bins")
    edges = np.quantile(values, np.arange(1, bins) / bins)

    def labeler(item: Item, audio: Audio, n: int) -> np.ndarray:
        e = position_energy(audio, n, seconds)
        return np.where(np.isfinite(e), np.digitize(np.nan_to_num(e), edges), -1)

    return Concept("energy", tuple(f"energy-q{i}" for i in range(bins)), labeler,
                   f"RMS dB per position ({seconds:g} s), {bins} quantile bins; edges {np.round(edges, 1).tolist()}")


# -- erasers -----------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Eraser:
    """Per residual entry: x ↦ x − ((x − bias) @ right.T) @ left.T, left [H, r], right [r, H] (float32, CPU)."""

    name: str
    left: Mapping[int, torch.Tensor] = field(repr=False)
    right: Mapping[int, torch.Tensor] = field(repr=False)
    bias: Mapping[int, torch.Tensor] = field(repr=False)     # empty when not affine
    config: Mapping = field(default_factory=dict)
    fingerprint: str = ""
    _moved: dict = field(default_factory=dict, repr=False)   # (layer, device) → (left, right, bias) copies

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(sorted(self.left))

    @property
    def ranks(self) -> dict[int, int]:
        return {layer: int(self.left[layer].shape[1]) for layer in self.layers}

    @property
    def dim(self) -> int:
        return int(next(iter(self.left.values())).shape[0])

    def erase(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """Apply the layer's eraser to [..., H] states (computed in float32, returned in ``h``'s dtype)."""
        key = (layer, str(h.device))
        if key not in self._moved:      # hooks run once per layer and decoding step: copy to the device once
            bias = self.bias.get(layer)
            self._moved[key] = (self.left[layer].to(h.device), self.right[layer].to(h.device),
                                None if bias is None else bias.to(h.device))
        left, right, bias = self._moved[key]
        x = h.float()
        delta = x - bias if bias is not None else x
        return (x - (delta @ right.T) @ left.T).to(h.dtype)

    def to_dict(self) -> dict:
        return {"name": self.name, "fingerprint": self.fingerprint, "layers": list(self.layers),
                "ranks": {str(k): v for k, v in self.ranks.items()}, **dict(self.config)}


def make_eraser(name: str, left: Mapping, right: Mapping, bias: Mapping | None = None,
                config: Mapping | None = None) -> Eraser:
    """An Eraser with its fingerprint: sha256 over the config and every matrix's float32 bytes."""
    left = {int(k): v.detach().float().cpu().contiguous() for k, v in left.items()}
    right = {int(k): v.detach().float().cpu().contiguous() for k, v in right.items()}
    bias = {int(k): v.detach().float().cpu().contiguous() for k, v in (bias or {}).items()}
    config = dict(config or {})
    h = hashlib.sha256(json.dumps([name, config], sort_keys=True, default=str).encode())
    for layer in sorted(left):
        for part in (left[layer], right[layer], bias.get(layer)):
            if part is not None:
                h.update(str(tuple(part.shape)).encode())
                h.update(part.numpy().tobytes())
    return Eraser(name, left, right, bias, config, h.hexdigest()[:16])


def _compact(proj_left: torch.Tensor, proj_right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The erased part L·R as its exact rank-r factors (U·S, Vh) — LEACE may hand back d×d factors."""
    u, s, vh = torch.linalg.svd(proj_left.double() @ proj_right.double())
    r = int((s > s[0] * RANK_TOL).sum()) if s.numel() and s[0] > 0 else 0
    return u[:, :r] * s[:r], vh[:r]


def new_fitter(dim: int, n_classes: int, *, affine: bool = False, dtype=torch.float64):
    """A ``concept_erasure.LeaceFitter`` that erases every class its data shows, however rare.

    Why not the library's default ``svd_tol=0.01``: it drops singular values of the whitened cross-covariance
    below 0.01, and a class's singular value scales with its share of the positions, so a word heard at ~0.1%
    of them falls under it and stays linearly readable. Measured on ref-cascade (topic, entry 0, 320 fitting
    items, top 64 words + other): the default kept rank 61 of 64, and a probe trained and tested on the
    erased fitting positions still read the words (balanced accuracy 0.115, chance 0.015). ``SVD_TOL`` cuts
    numerical zeros only (the whitened cross-covariance of one-hot labels does not scale with the states):
    rank 64, 0.015.
    """
    from concept_erasure import LeaceFitter

    return LeaceFitter(dim, n_classes, affine=affine, dtype=dtype, svd_tol=SVD_TOL)


def eraser_from_fitters(name: str, fitters: Mapping[int, object], config: Mapping | None = None) -> Eraser:
    """Compact ``LeaceFitter.eraser`` of every layer into one fingerprinted Eraser."""
    left, right, bias = {}, {}, {}
    for layer, fitter in fitters.items():
        e = fitter.eraser
        left[layer], right[layer] = _compact(e.proj_left, e.proj_right)
        if e.bias is not None:
            bias[layer] = e.bias
    return make_eraser(name, left, right, bias, config)


def random_eraser(like: Eraser, seed: int = 0, name: str = "random") -> Eraser:
    """Orthogonal projection removing a seeded random subspace of ``like``'s rank at each of its layers."""
    left, right = {}, {}
    for layer, r in like.ranks.items():
        gen = torch.Generator().manual_seed(int(seed) * 100_003 + int(layer))
        q, _ = torch.linalg.qr(torch.randn(like.dim, r, generator=gen, dtype=torch.float64))
        left[layer], right[layer] = q, q.T
    return make_eraser(name, left, right, None, {"kind": "random-orthogonal", "seed": seed,
                                                 "rank_matched_to": like.fingerprint})


def damage_matched_eraser(like: Eraser, displacement: Mapping[int, float], seed: int = 0,
                          name: str = "damage-matched") -> Eraser:
    """A seeded random orthogonal projection per layer whose rank r = round(d · f), f = the share of the
    activations' energy (‖Δx‖²/‖x‖² at the erased positions) that ``like`` removed there. A uniformly random
    rank-r subspace removes r/d of any vector's energy in expectation, so this control displaces the activations
    as much as the text eraser did — damage without the concept. (The rank-matched control removes far less when
    the text eraser moves a few directions a lot.)"""
    left, right, ranks = {}, {}, {}
    for layer in like.layers:
        r = int(min(like.dim - 1, max(1, round(like.dim * float(displacement[layer])))))
        gen = torch.Generator().manual_seed(int(seed) * 100_003 + int(layer) + 7_919)
        q, _ = torch.linalg.qr(torch.randn(like.dim, r, generator=gen, dtype=torch.float64))
        left[layer], right[layer], ranks[layer] = q, q.T, r
    return make_eraser(name, left, right, None, {
        "kind": "random-orthogonal, damage-matched", "seed": seed, "damage_matched_to": like.fingerprint,
        "displacement": {str(k): round(float(v), 6) for k, v in displacement.items()}})


@torch.no_grad()
def displacement(system, task: Task, items: Sequence[Item], audios: Sequence[Audio], eraser: Eraser, *,
                 scope: str = "audio") -> dict[int, float]:
    """Per erased layer: Σ‖Δx‖² / Σ‖x‖² over the audio positions of ``items`` with ``eraser`` hooked in (the
    share of the activations' energy it moves)."""
    counter = HookCounter()
    for item, audio in zip(items, audios):
        inputs, positions = _stream_at_audio(system, task, item, audio)
        with erasing(system, eraser, positions, inputs["input_ids"].shape[-1], scope=scope, counter=counter):
            system.residual_stream(inputs, upto=max(eraser.layers))
    return {layer: moved / max(total, 1e-30) for layer, (moved, total) in sorted(counter.energy.items())}


def identity_eraser(like: Eraser, name: str = "no-op") -> Eraser:
    """Rank 0 at ``like``'s layers: erases nothing (the collapse claim's mutant)."""
    empty = torch.zeros(like.dim, 0, dtype=torch.float64)
    return make_eraser(name, {k: empty for k in like.layers}, {k: empty.T for k in like.layers}, None,
                       {"kind": "no-op", "replaces": like.fingerprint})


def _entries(system) -> int:
    return len(system.decoder_layers) + 1


def _check_layers(system, layers: Sequence[int]) -> tuple[int, ...]:
    layers = tuple(sorted({int(x) for x in layers}))
    bad = [x for x in layers if not 0 <= x < _entries(system)]
    if not layers or bad:
        raise ValueError(f"{system.name}: layers {list(layers)} must be residual entries in 0..{_entries(system) - 1}")
    return layers


def _stream_at_audio(system, task: Task, item: Item, audio: Audio):
    inputs = system.inputs_for(task, item, audio)
    positions = system.audio_positions(inputs)
    if len(positions) == 0:
        raise ValueError(f"item {item.id!r}: {system.name} put no audio positions in the prompt")
    return inputs, positions


def fit_erasers(system, task: Task, items: Sequence[Item], audios: Sequence[Audio], concepts: Sequence[Concept],
                layers: Sequence[int], *, affine: bool = False, dtype=torch.float64, sequential: bool = True,
                scope: str = "audio", progress: bool = True) -> dict[str, Eraser]:
    """One LEACE eraser per concept at ``layers``, streamed over ``items``.

    ``sequential`` (default): layer by layer in order, each layer's eraser fitted on the stream with the same
    concept's erasers at the earlier layers already hooked in (``scope`` as when applied) — how concept-erasure's
    own scrubbers fit (``concept_erasure.scrubbing``). Why: the erasers act together, and the layers between two
    erasures rebuild the concept in directions a clean-stream fit never saw. Measured on ref-cascade (topic,
    9 layers, 64 fitting items, probes on those same items): fitted on the clean stream, a fresh probe still
    read the word at layers 11 and 18 after erasure (balanced accuracy 0.09–0.10, chance 0.02; 0.007 at
    layer 0, the first erasure); fitted sequentially, 0.006–0.008 at all four probed layers. Costs one forward
    per item, layer and concept (each stopped at its layer); ``sequential=False`` fits every
    layer from one clean pass per item (exact when erasing at one layer)."""
    from tqdm.auto import tqdm

    check_aligned(items, audios)
    layers = _check_layers(system, layers)
    hidden = system.model.get_input_embeddings().weight.shape[1]
    fitters = {c.name: {layer: new_fitter(hidden, len(c.classes), affine=affine, dtype=dtype) for layer in layers}
               for c in concepts}
    prepared = [(*_stream_at_audio(system, task, item, audio), item, audio) for item, audio in zip(items, audios)]
    labels = {c.name: [c.labels(item, audio, len(positions)) for _, positions, item, audio in prepared]
              for c in concepts}
    n_classes = {c.name: len(c.classes) for c in concepts}
    seen = {c.name: sum((np.bincount(y[y >= 0], minlength=len(c.classes)) for y in labels[c.name]),
                        np.zeros(len(c.classes), dtype=np.int64)) for c in concepts}
    for c in concepts:
        if (seen[c.name] > 0).sum() < 2:
            raise ValueError(f"concept {c.name!r}: the {len(items)} fitting items label only "
                             f"{int(seen[c.name].sum())} positions in {(seen[c.name] > 0).sum()} class(es); "
                             "need at least 2 classes to fit an eraser")

    passes = len(concepts) * len(layers) if sequential else 1
    bar = tqdm(total=passes * len(prepared), desc=f"LEACE fit {system.name} ({passes} passes)", unit="item",
               disable=not progress)

    def update(concept_names, fit_layers, eraser=None):
        for k, (inputs, positions, _, _) in enumerate(prepared):
            bar.update()
            stream = erased_stream(system, eraser, inputs, scope=scope, upto=max(fit_layers))
            stream = stream[:, positions.to(stream.device)].cpu().to(dtype)
            for name in concept_names:
                y = labels[name][k]
                keep = y >= 0
                if not keep.any():
                    continue
                z = torch.nn.functional.one_hot(torch.from_numpy(y[keep]), n_classes[name]).to(dtype)
                for layer in fit_layers:
                    fitters[name][layer].update(stream[layer][torch.from_numpy(keep)], z)

    if not sequential:
        update([c.name for c in concepts], list(layers))
    else:
        for c in concepts:
            for j, layer in enumerate(layers):
                earlier = {x: fitters[c.name][x] for x in layers[:j]}
                update([c.name], [layer], eraser_from_fitters(c.name, earlier) if earlier else None)
    bar.close()
    out = {}
    for c in concepts:
        config = {"kind": "leace", "concept": c.name, "classes": list(c.classes), "description": c.description,
                  "affine": affine, "sequential": sequential, "fit_items": [it.id for it in items],
                  "positions_per_class": seen[c.name].tolist(), "system": system.fingerprint}
        out[c.name] = eraser_from_fitters(c.name, fitters[c.name], config)
    return out


# -- hooks ------------------------------------------------------------------------------------------------
@dataclass
class HookCounter:
    """How often the erasure hooks ran and how often they changed something (tests read it)."""

    calls: int = 0
    erasing: int = 0
    lengths: list = field(default_factory=list)   # sequence length of every hooked call
    energy: dict = field(default_factory=dict)    # layer → [Σ‖Δx‖², Σ‖x‖²] over the erased positions


@contextmanager
def erasing(system, eraser: Eraser, positions: torch.Tensor, prompt_len: int, *, scope: str = "audio",
            counter: HookCounter | None = None):
    """Erase ``eraser``'s concept at ``positions`` of the prompt (or everywhere: ``scope="all"``) while inside."""
    if scope not in SCOPES:
        raise ValueError(f"scope {scope!r} is not one of {SCOPES}")
    layers = _check_layers(system, eraser.layers)
    positions = torch.as_tensor(positions, dtype=torch.long)
    if positions.numel() and int(positions.max()) >= prompt_len:
        raise ValueError(f"{system.name}: audio positions reach {int(positions.max())}, past the prompt "
                         f"({prompt_len} positions)")
    counter = counter if counter is not None else HookCounter()

    def apply(layer: int, h: torch.Tensor) -> torch.Tensor | None:
        counter.calls += 1
        counter.lengths.append(int(h.shape[1]))
        if scope == "all":
            counter.erasing += 1
            return eraser.erase(layer, h)
        if h.shape[1] < prompt_len:        # a cached generation step: positions ≥ prompt_len, nothing to erase
            return None
        idx = positions.to(h.device)
        out = h.clone()
        out[:, idx] = eraser.erase(layer, h[:, idx])
        counter.erasing += 1
        acc = counter.energy.setdefault(layer, [0.0, 0.0])
        acc[0] += float((out[:, idx] - h[:, idx]).float().pow(2).sum())
        acc[1] += float(h[:, idx].float().pow(2).sum())
        return out

    def post(layer):
        def hook(module, args, output):
            h = output[0] if isinstance(output, tuple) else output
            new = apply(layer, h)
            if new is None:
                return None
            return (new,) + tuple(output[1:]) if isinstance(output, tuple) else new
        return hook

    def pre(layer):
        def hook(module, args, kwargs):
            if args:
                new = apply(layer, args[0])
                return None if new is None else ((new,) + tuple(args[1:]), kwargs)
            new = apply(layer, kwargs["hidden_states"])
            return None if new is None else (args, {**kwargs, "hidden_states": new})
        return hook

    decoder = system.decoder_layers
    handles = []
    try:
        for layer in layers:
            if layer == 0:
                handles.append(decoder[0].register_forward_pre_hook(pre(0), with_kwargs=True, prepend=True))
            else:
                handles.append(decoder[layer - 1].register_forward_hook(post(layer), prepend=True))
        yield counter
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def erased_stream(system, eraser: Eraser | None, inputs: dict, *, scope: str = "audio",
                  upto: int | None = None) -> torch.Tensor:
    """``residual_stream(inputs, upto=upto)`` [L+1 or upto+1, T, H] with ``eraser`` hooked in (plain when None)."""
    if eraser is None:
        return system.residual_stream(inputs, upto=upto)
    with erasing(system, eraser, system.audio_positions(inputs), inputs["input_ids"].shape[-1], scope=scope):
        return system.residual_stream(inputs, upto=upto)


class ErasedSystem:
    """A SpeechLLM answering with ``eraser`` hooked into its decoder (scoring and generation alike)."""

    needs_audio = True

    def __init__(self, system, eraser: Eraser, *, scope: str = "audio", name: str | None = None):
        if scope not in SCOPES:
            raise ValueError(f"scope {scope!r} is not one of {SCOPES}")
        _check_layers(system, eraser.layers)
        hidden = system.model.get_input_embeddings().weight.shape[1]
        if eraser.dim != hidden:
            raise ValueError(f"eraser {eraser.name!r} is for width {eraser.dim}, {system.name} has {hidden}")
        self.system, self.eraser, self.scope = system, eraser, scope
        self.name = name or f"{system.name}-erased[{eraser.name}]"
        self.fingerprint = f"erased[{system.fingerprint}|eraser:{eraser.fingerprint}|scope:{scope}]"
        self.counter = HookCounter()

    def answer(self, task: Task, item: Item, audio: Audio | None) -> Answer:
        if audio is None:
            raise ValueError(f"item {item.id!r}: {self.name} needs audio (got none)")
        inputs, positions = _stream_at_audio(self.system, task, item, audio)
        embeds = self.system.prefix_embeds(inputs)
        with erasing(self.system, self.eraser, positions, embeds.shape[0], scope=self.scope, counter=self.counter):
            return answer_from_prefix(self.system.backbone, task, item, embeds)


# -- linear probes after erasure --------------------------------------------------------------------------
@dataclass(frozen=True)
class ProbeScore:
    """A fresh probe's held-out accuracy vs the majority-class rate (``chance``), and a class-balanced probe's
    balanced accuracy vs 1/K (``balanced_chance``, K = classes in the test half).

    Why both: the text concept is top-K words + ``<other>``, and ``<other>`` holds ~3/4 of the positions, so
    plain accuracy sits at the majority rate whether or not any word is readable; balanced accuracy (the mean
    per-class recall, sklearn's ``balanced_accuracy_score``) of a probe fitted with ``class_weight="balanced"``
    is what moves when words become decodable.
    """

    layer: int
    accuracy: float
    chance: float
    n_train: int
    n_test: int
    balanced_accuracy: float | None = None
    balanced_chance: float | None = None

    def to_dict(self) -> dict:
        return {"layer": self.layer, "accuracy": self.accuracy, "chance": self.chance,
                "balanced_accuracy": self.balanced_accuracy, "balanced_chance": self.balanced_chance,
                "n_train": self.n_train, "n_test": self.n_test}


def linear_probe(x_train, y_train, x_test, y_test, *, seed: int = 0, balanced: bool = False) -> tuple[float, float]:
    """(accuracy, majority-class accuracy) of a standardised multinomial LogisticRegression on held-out data.

    ``balanced=True``: the probe is fitted with ``class_weight="balanced"`` and scored by balanced accuracy;
    chance is then 1/K for the K classes present in ``y_test`` (what a constant prediction scores).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    classes, counts = np.unique(y_train, return_counts=True)
    majority = classes[np.argmax(counts)]
    if balanced:
        chance = 1.0 / np.unique(y_test).size
        score = balanced_accuracy_score
    else:
        chance = float(np.mean(y_test == majority))
        score = lambda y, p: float(np.mean(y == p))                          # noqa: E731
    if classes.size < 2:
        return float(score(y_test, np.full_like(y_test, majority))), chance
    probe = make_pipeline(StandardScaler(), LogisticRegression(
        max_iter=2000, random_state=seed, class_weight="balanced" if balanced else None))
    probe.fit(np.asarray(x_train), y_train)
    with warnings.catch_warnings():     # a rare word predicted but absent from the test half: expected, scored 0
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return float(score(y_test, probe.predict(np.asarray(x_test)))), chance


def _audio_streams(system, task: Task, items: Sequence[Item], audios: Sequence[Audio], layers: Sequence[int],
                   eraser: Eraser | None, scope: str, desc: str | None = None) -> list[np.ndarray]:
    """Per item, the (erased) stream at ``layers`` and its audio positions: [len(layers), n_audio, H]
    (a progress bar when ``desc`` is given)."""
    from tqdm.auto import tqdm

    out = []
    for item, audio in tqdm(list(zip(items, audios)), desc=desc, unit="item", disable=desc is None):
        inputs, positions = _stream_at_audio(system, task, item, audio)
        stream = erased_stream(system, eraser, inputs, scope=scope, upto=max(layers))
        out.append(stream[list(layers)][:, positions.to(stream.device)].cpu().numpy())
    return out


def _labelled(streams: Sequence[np.ndarray], items: Sequence[Item], audios: Sequence[Audio], concept: Concept,
              layers: Sequence[int]):
    """({layer: [positions, H]}, labels, item index per position) over ``concept``'s labelled positions."""
    xs: dict[int, list] = {layer: [] for layer in layers}
    ys, groups = [], []
    for k, (stream, item, audio) in enumerate(zip(streams, items, audios)):
        y = concept.labels(item, audio, stream.shape[1])
        keep = y >= 0
        for j, layer in enumerate(layers):
            xs[layer].append(stream[j][keep])
        ys.append(y[keep])
        groups.append(np.full(int(keep.sum()), k))
    return {layer: np.concatenate(x) for layer, x in xs.items()}, np.concatenate(ys), np.concatenate(groups)


def _labelled_stream(system, task: Task, items: Sequence[Item], audios: Sequence[Audio], concept: Concept,
                     layers: Sequence[int], eraser: Eraser | None, scope: str):
    return _labelled(_audio_streams(system, task, items, audios, layers, eraser, scope), items, audios, concept,
                     layers)


def probe_accuracy(system, task: Task, items: Sequence[Item], audios: Sequence[Audio], concept: Concept,
                   layers: Sequence[int], *, eraser: Eraser | None = None, scope: str = "audio",
                   seed: int = 0) -> dict[int, ProbeScore]:
    """Per layer: train a fresh probe for ``concept`` on half the items' labelled positions (seeded split by
    item, so no clip is in both halves), test on the other half — on the stream with ``eraser`` hooked in.

    With ``items`` held out from the eraser's fitting, this asks whether the eraser *generalises* so far that
    no linear structure is left to learn on new clips — stricter than LEACE's guarantee, which holds on the
    fitting data (:func:`fit_probe_accuracy`). Measured on ref-cascade (topic, entry 0, halves of the 160
    evaluation items, top 64 words): balanced accuracy 0.42 before erasure; after it 0.22 / 0.16 with erasers
    fitted on 64 / 320 topic training clips and 0.11 on the 916 reference training clips (chance 0.02), while
    the fitting-data probe read 0.018 / 0.016 (= chance). The residual is the eraser's estimation error (576
    dimensions, tens of positions for a rare word); it shrinks slowly with more fitting speech."""
    check_aligned(items, audios)
    layers = _check_layers(system, layers)
    if len(items) < 2:
        raise ValueError(f"a held-out probe needs at least 2 items, got {len(items)}")
    stream = _labelled_stream(system, task, items, audios, concept, layers, eraser, scope)
    return _half_probes(stream, len(items), concept, seed)


def _half_probes(stream, n_items: int, concept: Concept, seed: int) -> dict[int, ProbeScore]:
    xs, y, g = stream
    order = np.random.default_rng(seed).permutation(n_items)
    train = np.isin(g, order[: n_items // 2])
    if not train.any() or train.all():
        raise ValueError(f"concept {concept.name!r}: one half of the probe split has no labelled positions")
    return {layer: _score(layer, x[train], y[train], x[~train], y[~train], seed) for layer, x in xs.items()}


def _score(layer, x_train, y_train, x_test, y_test, seed) -> ProbeScore:
    acc, chance = linear_probe(x_train, y_train, x_test, y_test, seed=seed)
    bal, bal_chance = linear_probe(x_train, y_train, x_test, y_test, seed=seed, balanced=True)
    return ProbeScore(layer, acc, chance, len(y_train), len(y_test), bal, bal_chance)


def fit_probe_accuracy(system, task: Task, fit_items: Sequence[Item], fit_audios: Sequence[Audio],
                       items: Sequence[Item], audios: Sequence[Audio], concept: Concept, layers: Sequence[int], *,
                       eraser: Eraser | None = None, scope: str = "audio", seed: int = 0) -> dict[int, ProbeScore]:
    """Per layer: a fresh probe trained on the eraser's own fitting positions (``fit_items``, erased), tested on
    the held-out ``items`` (erased).

    Why: LEACE guarantees that on its fitting data no linear probe beats a constant one; this carries that
    guarantee's setting to new clips — what a downstream reader trained on erased states could still decode.
    """
    check_aligned(fit_items, fit_audios)
    check_aligned(items, audios)
    layers = _check_layers(system, layers)
    if not fit_items or not items:
        raise ValueError(f"need fitting and held-out items (got {len(fit_items)} and {len(items)})")
    return _transfer_probes(_labelled_stream(system, task, fit_items, fit_audios, concept, layers, eraser, scope),
                            _labelled_stream(system, task, items, audios, concept, layers, eraser, scope),
                            concept, seed)


def _transfer_probes(fitted, held, concept: Concept, seed: int) -> dict[int, ProbeScore]:
    (x_fit, y_fit, _), (x_new, y_new, _) = fitted, held
    if not y_fit.size or not y_new.size:
        raise ValueError(f"concept {concept.name!r}: no labelled positions in the "
                         f"{'fitting' if not y_fit.size else 'held-out'} items")
    return {layer: _score(layer, x_fit[layer], y_fit, x_new[layer], y_new, seed) for layer in x_fit}


# -- the whole comparison ---------------------------------------------------------------------------------
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
                     damage_matched: bool = False, noop_text: bool = False) -> LeaceResult:
    """Fit text + energy erasers on ``fit_items``, build the random control, and on ``eval_items`` measure task
    accuracy under none/text/random/energy (answers via ``runner``) and fresh linear probes after erasure: trained
    on half the evaluation items and tested on the other half (``probes``, :func:`probe_accuracy`), and trained
    on the fitting items and tested on the evaluation items (``fit_probes``, :func:`fit_probe_accuracy`).

    ``layers``: residual entries to erase at (default ``paper_layers``: 9 spread over 0..L−1). ``words``: item id →
    ASR words; transcribed with ``asr`` (default the packaged faster-whisper) when not given. ``choose``: which words
    the text concept names (:func:`text_concept`). ``damage_matched``: add the damage-matched random control
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
    text = text_concept(words, fit_items, seconds, top_k=top_k, choose=choose)
    energy = energy_concept(fit_items, fit_audio, seconds, bins=energy_bins)
    fitted = fit_erasers(system, task, fit_items, fit_audio, [text, energy], layers, affine=affine, scope=scope)
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
                  "concept_words": choose, "concept_classes": list(text.classes),
                  "condition": str(condition), "seconds_per_position": seconds, "probe_layers": list(probe_layers),
                  "text_concept": text.description, "energy_concept": energy.description},
        erasers={k: e.to_dict() for k, e in erasers.items()},
        accuracy={k: accuracy(a) for k, a in answers.items()},
        choices={k: [x.choice for x in a] for k, a in answers.items()},
        probes=probe_out, fit_probes=fit_probe_out)
