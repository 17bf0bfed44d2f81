"""Linear probes after erasure: can a fresh reader still decode the concept from the (erased) stream?"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness import compute
from harness.audio import Audio
from harness.tasks import Item, Task

from ..lens import check_aligned
from .concepts import Concept
from .erasers import Eraser
from .hooks import _check_layers, _stream_at_audio, erased_stream


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
        with compute.timed("leace-probes"):
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
