"""Concept labels: one class per audio position (-1 = unlabelled, never fitted), the concepts LEACE erases.

- *text* (:func:`text_concept`): the word being spoken during that position's time span — ASR word timestamps
  (``harness.asr``, faster-whisper) mapped onto positions by the family's seconds per audio embedding
  (``harness.positions``); the word overlapping the span most wins; positions overlapping no word
  (pauses, the padded tail of a Whisper window) are unlabelled. Classes: the ``top_k`` most frequent
  normalised words (lowercase, punctuation stripped, stop words *kept*: they are spoken words too) of the
  **fitting** items, plus ``<other>``. Why this choice: it is the concept the lens shows surfacing (word
  identity at the position where it is heard) and needs no tokenizer alignment. Alternatives: the
  backbone's first token of the word (ties the concept to one tokenizer), a label per lens-top-1 token
  (circular: it erases what the lens reads, not what was said), or a ``<silence>`` class (mixes in
  speech/non-speech, an acoustic distinction the energy control already covers).
- *acoustic* (:func:`energy_concept`): the position's frame energy (RMS in dB over its time span of the clip)
  in ``bins`` quantile bins whose edges come from the fitting items; positions past the clip are unlabelled.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from harness.asr import Word
from harness.audio import Audio
from harness.positions import normalise_word, position_energy, word_labels, word_owners
from harness.tasks import Item

from ..lens import check_aligned

OTHER = "<other>"
TOP_K = 64
ENERGY_BINS = 8


@dataclass(frozen=True)
class Concept:
    """Per-position class labels over ``classes``; ``labeler(item, audio, n_positions)`` → int array, -1 = none.
    ``reference``: the class that stands for the concept's absence (the text concept's ``<other>``), which a
    raw-moment fit takes as the origin rather than as one more direction (``fit_erasers(moments="raw")``)."""

    name: str
    classes: tuple[str, ...]
    labeler: Callable[[Item, Audio, int], np.ndarray] = field(repr=False, compare=False)
    description: str = ""
    reference: int | None = None

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
# Which positions a heard word labels. "span": every position its time span owns (the default: where a model
# carries a word is unknown). "onset": its first position only, every other audio position (silence included)
# labelled <other> — for a model that by construction writes a word once, at its onset (ref-transcriber).
CONCEPT_AT = ("span", "onset")


def text_concept(words: Mapping[str, Sequence[Word]], fit_items: Sequence[Item], seconds: float, *,
                 top_k: int = TOP_K, choose: str = "frequent", at: str = "span") -> Concept:
    """The word spoken at each position over the fitting items' ``top_k`` words + ``<other>`` (module doc).
    ``choose``: "frequent" — the ``top_k`` most frequent words; "informative" — at most ``top_k`` words
    associated with the label (:func:`informative_words`). ``at``: which positions a word labels (``CONCEPT_AT``)."""
    if at not in CONCEPT_AT:
        raise ValueError(f"text concept positions {at!r}: expected one of {CONCEPT_AT}")
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
        heard = word_labels(words[item.id], n, seconds)
        if at == "onset":
            owner = word_owners(words[item.id], n, seconds)
            return np.array([index.get(w, len(vocab)) if w is not None and (i == 0 or owner[i - 1] != owner[i])
                             else len(vocab) for i, w in enumerate(heard)])
        return np.array([-1 if w is None else index.get(w, len(vocab)) for w in heard])

    what = f"{len(vocab)} label-informative (≤ {top_k}): {vocab}" if choose == "informative" else f"top {top_k} ({choose})"
    where = "at the position" if at == "span" else "at its first position (elsewhere: other)"
    return Concept("text", tuple(vocab) + (OTHER,), labeler,
                   f"word spoken {where} (ASR timestamps, {seconds:g} s/position), {what} + other",
                   reference=len(vocab))


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
