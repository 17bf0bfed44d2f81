"""Logit lens at the audio positions: does literal text surface inside the backbone (claim 2)?

For each item, the pre-norm residual stream at the audio positions (``SpeechLLM.hidden_states_at_audio``) is
projected through the backbone's *own* final norm and unembedding (``SpeechLLM.lens_logits``); the top-1 token
at every audio position is what that layer "reads". Entry ``l`` of a curve is the residual stream entering
decoder layer ``l``; the last entry (``L``) is the last layer's output, whose lens equals the model's logits.

**Bag-of-tokens precision** (per item and layer): the share of the lens's content tokens that occur in the
item's transcript. Normalisation, applied identically to both sides:

1. tokens are decoded one at a time with the model's tokenizer (``decode([id])``), which turns the word-piece
   marker (byte-level ``Ġ``, SentencePiece ``▁``) into a leading space; that space and a WordPiece ``##``
   are stripped;
2. lowercased; punctuation is stripped from both ends (Unicode category P*);
3. dropped: special tokens (incl. the audio placeholder), tokens with no letter or digit (punctuation-only,
   whitespace, undecodable byte fragments ``�``), and English stop words — scikit-learn's
   ``ENGLISH_STOP_WORDS`` (318 words), so "the"/"and" cannot inflate precision.

The transcript's bag is the union of its own tokens (tokenised with a leading space, as mid-sentence words
are) and its whitespace-separated words, both normalised as above — so a lens token matches whether it is
a full word or the same word piece the tokenizer would produce. Precision counts **distinct** lens tokens
by default (a token read at 20 positions counts once; ``distinct=False`` counts positions). A layer whose
lens reads no content token at all has recovered no text: its precision is 0, not undefined.

Control (chance level): the very same lens tokens scored against another item's transcript, the pairing a
seeded derangement (Sattolo's algorithm: one cycle, no item paired with itself). Per-layer means carry a 95%
**percentile bootstrap** CI over items (``scipy.stats.bootstrap``, seeded); the difference curve
(precision − control) is a paired bootstrap over the same items.

Caching: the lens forward (``top1_tokens``) is the lens's whole cost, seconds per item on a CPU; scoring what it
read is cheap. ``logit_lens`` therefore keeps each item's top-1 array in the disk cache (``lens_cache``), so a
rerun does not redo the forward passes; ``cache=False`` computes everything and writes nothing.
"""
from __future__ import annotations

import inspect
import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from harness import compute
from harness.audio import Audio
from harness.positions import normalise_piece, stop_words  # noqa: F401  (the lens's normalisation)
from harness.probes import lens_cache
from harness.tasks import Item, Task

CI_METHOD = "percentile bootstrap over items (scipy.stats.bootstrap)"
N_RESAMPLES = 2000
LENS_ROWS = 512     # rows per unembedding pass (bounds the logits held at once: rows × vocabulary floats)
EXAMPLES = 5        # lens readings kept in ``to_dict`` (best layer, first items)


# -- normalisation -----------------------------------------------------------------------------------------
class TokenNormaliser:
    """Per-tokenizer cache of id → normalised string (decoding is the slow part of scoring a curve)."""

    def __init__(self, tokenizer, extra_special: Sequence[int] = ()):
        self.tokenizer = tokenizer
        self.special = set(getattr(tokenizer, "all_special_ids", ()) or ()) | {int(i) for i in extra_special}
        self.stops = stop_words()
        self._memo: dict[int, str | None] = {}

    def __call__(self, token_id: int) -> str | None:
        token_id = int(token_id)
        if token_id not in self._memo:
            self._memo[token_id] = (None if token_id in self.special
                                    else normalise_piece(self.tokenizer.decode([token_id]), self.stops))
        return self._memo[token_id]

    def bag(self, ids: Sequence[int]) -> list[str]:
        """Normalised content tokens of ``ids`` in order (dropped ones removed)."""
        return [t for t in (self(i) for i in ids) if t is not None]

    def reference(self, text: str) -> set[str]:
        """The transcript's bag: its normalised tokens ∪ its normalised words."""
        ids = self.tokenizer(" " + text, add_special_tokens=False)["input_ids"]
        words = (normalise_piece(w, self.stops) for w in text.split())
        return set(self.bag(ids)) | {w for w in words if w is not None}


def bag_precision(predicted: Sequence[str], reference: set[str], *, distinct: bool = True) -> float:
    """Share of ``predicted`` (normalised lens tokens) found in ``reference``; 0.0 when nothing was read."""
    pred = set(predicted) if distinct else list(predicted)
    if not pred:
        return 0.0
    return sum(t in reference for t in pred) / len(pred)


def derangement(n: int, seed: int = 0) -> list[int]:
    """A seeded permutation with no fixed point (Sattolo: a single cycle); item i is scored against perm[i]."""
    if n < 2:
        raise ValueError(f"a mismatched-transcript control needs at least 2 items, got {n}")
    perm = list(range(n))
    rng = random.Random(seed)
    for i in range(n - 1, 0, -1):
        j = rng.randrange(i)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


# -- reading the lens --------------------------------------------------------------------------------------
def check_aligned(items: Sequence[Item], audios: Sequence[Audio]) -> None:
    if len(items) != len(audios):
        raise ValueError(f"{len(items)} items but {len(audios)} audio clips; they must be aligned one to one")
    for it, a in zip(items, audios):
        if a.item_id not in ("?", it.id):
            raise ValueError(f"item {it.id!r}: its audio clip belongs to item {a.item_id!r}")


def top1_tokens(system, task: Task, item: Item, audio: Audio,
                layers: Sequence[int] | None = None) -> np.ndarray:
    """[len(layers), n_audio] top-1 token ids of the lens at the audio positions (all L+1 entries by default).

    The unembedding is the lens's whole cost on a CPU (vocabulary × width per row), so every layer's rows go
    through it together, each distinct row once (at the input entry many positions hold the same embedding), and
    only the top-1 is computed exactly (``SpeechLLM.lens_top1``: a bfloat16 screen, float32 where it decides)."""
    with compute.timed("lens"):
        hs = system.hidden_states_at_audio(task, item, audio)           # [L+1, n_audio, H], pre-norm
        layers = list(range(hs.shape[0]) if layers is None else layers)
        if hs.shape[1] == 0:
            raise ValueError(f"item {item.id!r}: {system.name} put no audio positions in the prompt")
        for layer in layers:
            if not -hs.shape[0] <= layer < hs.shape[0]:
                raise ValueError(f"layer {layer} out of range: {system.name} has entries 0..{hs.shape[0] - 1}")
        rows = hs[layers].reshape(-1, hs.shape[-1])
        distinct, where = torch.unique(rows, dim=0, return_inverse=True)
        top = torch.cat([system.lens_top1(chunk).cpu() for chunk in distinct.split(LENS_ROWS)])
    return top[where.cpu()].reshape(len(layers), hs.shape[1]).numpy()


def special_ids(system) -> set[int]:
    tok = system.backbone.tokenizer
    return set(getattr(tok, "all_special_ids", ()) or ()) | {int(system.audio_token_id)}


def lens_text(system, token_ids: Sequence[int]) -> str:
    """The text a layer reads: top-1 ids at the audio positions, consecutive repeats collapsed, special
    tokens (incl. the audio placeholder) dropped, decoded with the backbone's tokenizer."""
    specials = special_ids(system)
    kept: list[int] = []
    for t in (int(x) for x in token_ids):
        if t in specials or (kept and kept[-1] == t):
            continue
        kept.append(t)
    return system.backbone.tokenizer.decode(kept, skip_special_tokens=True).strip()


# -- the curves --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Curve:
    """Per-layer mean of a per-item score with its CI; ``per_item`` is [n_items, n_layers]."""

    mean: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    per_item: np.ndarray

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "ci_low": self.ci_low.tolist(), "ci_high": self.ci_high.tolist()}


def _curve(values: np.ndarray, *, confidence: float, n_resamples: int, seed: int) -> Curve:
    """Mean over items (axis 0) per layer, percentile-bootstrap CI; constant data gives a zero-width CI."""
    from scipy import stats

    mean = values.mean(axis=0)
    if values.shape[0] < 2:
        nan = np.full_like(mean, np.nan)
        return Curve(mean, nan, nan.copy(), values)
    rng_kw = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant layers (e.g. all 0): scipy warns, the interval is [m, m]
        res = stats.bootstrap((values,), np.mean, axis=0, vectorized=True, method="percentile",
                              confidence_level=confidence, n_resamples=n_resamples,
                              **{rng_kw: np.random.default_rng(seed)})
    lo, hi = np.asarray(res.confidence_interval.low), np.asarray(res.confidence_interval.high)
    constant = np.ptp(values, axis=0) == 0
    lo, hi = np.where(constant, mean, lo), np.where(constant, mean, hi)
    return Curve(mean, lo, hi, values)


@dataclass(frozen=True)
class LensResult:
    """Per-layer lens precision vs the mismatched-transcript control, for one system and task."""

    system: str
    task: str
    item_ids: tuple[str, ...]
    layers: tuple[int, ...]
    precision: Curve
    control: Curve
    difference: Curve                  # precision − control, paired per item
    control_of: tuple[str, ...]        # the item whose transcript item i's control is scored against
    distinct: bool
    confidence: float
    top1: np.ndarray = field(repr=False)   # object array [n_items] of [n_layers, n_audio] token ids
    readings: dict = field(default_factory=dict, repr=False)   # first items: id → text read at the best layer

    @property
    def best_layer(self) -> int:
        """The layer with the highest mean precision (the earliest on ties)."""
        return self.layers[int(np.argmax(self.precision.mean))]

    def to_dict(self) -> dict:
        k = self.layers.index(self.best_layer)
        return {
            "system": self.system, "task": self.task, "n_items": len(self.item_ids),
            "items": list(self.item_ids), "control_of": list(self.control_of), "layers": list(self.layers),
            "precision": self.precision.to_dict(), "control": self.control.to_dict(),
            "difference": self.difference.to_dict(), "best_layer": self.best_layer,
            "best_precision": float(self.precision.mean[k]), "best_control": float(self.control.mean[k]),
            "metric": "bag-of-tokens precision (" + ("distinct tokens" if self.distinct else "positions") + ")",
            "ci": f"{self.confidence:.0%} {CI_METHOD}", "stop_words": "sklearn ENGLISH_STOP_WORDS",
            "readings_at_best_layer": dict(self.readings),
        }


def logit_lens(system, task: Task, items: Sequence[Item], audios: Sequence[Audio], *,
               layers: Sequence[int] | None = None, distinct: bool = True, seed: int = 0,
               confidence: float = 0.95, n_resamples: int = N_RESAMPLES, cache: bool = True) -> LensResult:
    """Lens precision and its mismatched control per layer over ``items`` (audio clips aligned with them).

    ``cache``: read each item's top-1 tokens from the disk cache and keep new ones there (see ``lens_cache``)."""
    check_aligned(items, audios)
    perm = derangement(len(items), seed)
    norm = TokenNormaliser(system.backbone.tokenizer, extra_special=[system.audio_token_id])
    refs = [norm.reference(it.text) for it in items]
    top1 = [lens_cache.cached(top1_tokens, system, task, it, audio, layers) if cache
            else top1_tokens(system, task, it, audio, layers) for it, audio in zip(items, audios)]
    n_layers = top1[0].shape[0]
    layers = tuple(range(n_layers)) if layers is None else tuple(int(x) for x in layers)
    match = np.zeros((len(items), n_layers))
    control = np.zeros_like(match)
    for i, ids in enumerate(top1):
        for k in range(n_layers):
            bag = norm.bag(ids[k])
            match[i, k] = bag_precision(bag, refs[i], distinct=distinct)
            control[i, k] = bag_precision(bag, refs[perm[i]], distinct=distinct)
    kw = dict(confidence=confidence, n_resamples=n_resamples, seed=seed)
    precision, ctrl, diff = _curve(match, **kw), _curve(control, **kw), _curve(match - control, **kw)
    arr = np.empty(len(top1), dtype=object)
    arr[:] = top1
    best = int(np.argmax(precision.mean))       # the same rule as LensResult.best_layer
    readings = {it.id: lens_text(system, ids[best]) for it, ids in zip(items[:EXAMPLES], top1)}
    return LensResult(system.name, task.name, tuple(it.id for it in items), layers, precision, ctrl, diff,
                      tuple(items[j].id for j in perm), distinct, confidence, arr, readings)


def plot_lens(result: LensResult | dict, path=None, ax=None):
    """Precision and control curves with their CIs, best layer marked; saved to ``path`` when given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = result.to_dict() if isinstance(result, LensResult) else result
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
    else:
        fig = ax.figure
    x = data["layers"]
    for key, label, color in (("precision", "transcript", "tab:blue"), ("control", "mismatched control", "gray")):
        c = data[key]
        ax.plot(x, c["mean"], marker="o", ms=3, color=color, label=label)
        ax.fill_between(x, c["ci_low"], c["ci_high"], color=color, alpha=0.2, linewidth=0)
    ax.axvline(data["best_layer"], color="tab:blue", ls=":", lw=1)
    ax.set_xlabel("residual stream entry (layer input; last = final output)")
    ax.set_ylabel("bag-of-tokens precision")
    ax.set_title(f"logit lens at audio positions — {data['system']} / {data['task']} (n={data['n_items']})",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


@torch.no_grad()
def own_logits_at_audio(system, task: Task, item: Item, audio: Audio) -> torch.Tensor:
    """The model's own forward logits at the audio positions [n_audio, V] (what the last lens entry must equal)."""
    inputs = system.inputs_for(task, item, audio)
    logits = system.model(**system._to_model(inputs)).logits[0]
    return logits[system.audio_positions(inputs).to(logits.device)].float()
