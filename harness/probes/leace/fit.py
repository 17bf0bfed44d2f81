"""Fitting: one ``concept_erasure.LeaceFitter`` per (concept, layer) (:func:`new_fitter`: rare classes erased too),
streamed item by item on the residual stream entries of ``SpeechLLM.residual_stream`` (entry l = input of decoder
layer l); layer by layer, each fitted with the earlier layers' erasers already hooked in (as concept-erasure's own
scrubbers do), since the erasers are applied together. ``affine=False`` by default: the fitted projection is
applied without re-centering on the audio-position mean (the paper's reason: that mean is out of distribution for
other positions, e.g. generated tokens); ``affine=True`` re-centres. Each eraser is stored in its compact rank-r
form (:mod:`.erasers`). ``cache=True`` keeps the fitted erasers on disk and reads them back on a rerun with the
same inputs (:mod:`.fit_cache`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from harness import compute
from harness.audio import Audio
from harness.tasks import Item, Task

from ..lens import check_aligned
from . import fit_cache
from .concepts import Concept
from .erasers import Eraser, _compact, make_eraser
from .hooks import _check_layers, _stream_at_audio
from .walk import LayerWalk

SVD_TOL = 1e-9           # concept-erasure's own default (0.01) leaves rare classes readable: see new_fitter


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


MOMENTS = ("central", "raw")


def _mirrored(x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, z) and (−x, −z) together: their mean is 0, so a LeaceFitter's covariances are the raw moments."""
    return torch.cat([x, -x]), torch.cat([z, -z])


def eraser_from_fitters(name: str, fitters: Mapping[int, object], config: Mapping | None = None) -> Eraser:
    """Compact ``LeaceFitter.eraser`` of every layer into one fingerprinted Eraser."""
    left, right, bias = {}, {}, {}
    for layer, fitter in fitters.items():
        e = fitter.eraser
        left[layer], right[layer] = _compact(e.proj_left, e.proj_right)
        if e.bias is not None:
            bias[layer] = e.bias
    return make_eraser(name, left, right, bias, config)


def fit_erasers(system, task: Task, items: Sequence[Item], audios: Sequence[Audio], concepts: Sequence[Concept],
                layers: Sequence[int], *, affine: bool = False, dtype=torch.float64, sequential: bool = True,
                scope: str = "audio", moments: str = "central", progress: bool = True,
                cache: bool = False) -> dict[str, Eraser]:
    """One LEACE eraser per concept at ``layers``, streamed over ``items``.

    ``sequential`` (default): layer by layer in order, each layer's eraser fitted on the stream with the same
    concept's erasers at the earlier layers already hooked in (``scope`` as when applied) — how concept-erasure's
    own scrubbers fit (``concept_erasure.scrubbing``). Why: the erasers act together, and the layers between two
    erasures rebuild the concept in directions a clean-stream fit never saw. Measured on ref-cascade (topic,
    9 layers, 64 fitting items, probes on those same items): fitted on the clean stream, a fresh probe still
    read the word at layers 11 and 18 after erasure (balanced accuracy 0.09–0.10, chance 0.02; 0.007 at
    layer 0, the first erasure); fitted sequentially, 0.006–0.008 at all four probed layers. Costs one walk
    through the layers per item and concept (:mod:`.walk`: the stream paused at each erased entry while its
    eraser is fitted) — not a forward per layer; ``sequential=False`` fits every layer from one clean walk per
    item (exact when erasing at one layer).

    ``moments``: "central" (the default; LEACE as published: every class's mean made the global mean) or "raw" —
    second moments about 0, each concept's ``reference`` class (the absence of a named word) fitted as z = 0 with
    no column of its own: the named classes' means all become 0 (LEACE's guarantee for E[x zᵀ]) and a row the
    named classes do not span stays where it is. Why it exists: a model writing each named word as one point
    (ref-transcriber) keeps the rest of its input unmoved only then — with central moments the whitened class
    means are "a word rather than filler", and the eraser wiped every word (measured, ``fixtures/claims/``).
    Fitted with concept-erasure itself on the mirrored batch (x, z) ∪ (−x, −z), whose mean is 0.

    ``cache``: read the erasers from the disk cache when these inputs were fitted before (no forward pass at all),
    and keep new ones there (:mod:`.fit_cache`); off by default, so a library caller never writes into the
    cache unless asked."""
    from tqdm.auto import tqdm

    check_aligned(items, audios)
    if moments not in MOMENTS:
        raise ValueError(f"LEACE moments {moments!r}: expected one of {MOMENTS}")
    layers = _check_layers(system, layers)
    prepared = [(*_stream_at_audio(system, task, item, audio), item, audio) for item, audio in zip(items, audios)]
    labels = {c.name: [c.labels(item, audio, len(positions)) for _, positions, item, audio in prepared]
              for c in concepts}
    n_classes = {c.name: len(c.classes) for c in concepts}
    columns = {c.name: [k for k in range(len(c.classes)) if moments == "central" or k != c.reference]
               for c in concepts}
    seen = {c.name: sum((np.bincount(y[y >= 0], minlength=len(c.classes)) for y in labels[c.name]),
                        np.zeros(len(c.classes), dtype=np.int64)) for c in concepts}
    for c in concepts:
        if (seen[c.name] > 0).sum() < 2:
            raise ValueError(f"concept {c.name!r}: the {len(items)} fitting items label only "
                             f"{int(seen[c.name].sum())} positions in {(seen[c.name] > 0).sum()} class(es); "
                             "need at least 2 classes to fit an eraser")
    key = (fit_cache.key(system, task, items, audios, concepts, labels, layers, affine=affine, dtype=dtype,
                         sequential=sequential, scope=scope, svd_tol=SVD_TOL, moments=moments) if cache else None)
    if key is not None and (hit := fit_cache.load(key, [c.name for c in concepts], layers)) is not None:
        return hit

    hidden = system.model.get_input_embeddings().weight.shape[1]
    fitters = {c.name: {layer: new_fitter(hidden, len(columns[c.name]), affine=affine, dtype=dtype)
                        for layer in layers} for c in concepts}

    def update(name, layer, k, stream):
        y = labels[name][k]
        keep = y >= 0
        if keep.any():
            z = torch.nn.functional.one_hot(torch.from_numpy(y[keep]), n_classes[name]).to(dtype)[:, columns[name]]
            x = stream.cpu().to(dtype)[torch.from_numpy(keep)]
            fitters[name][layer].update(*(_mirrored(x, z) if moments == "raw" else (x, z)))

    steps = len(layers) * (len(concepts) if sequential else 1)
    bar = tqdm(total=steps * len(prepared), desc=f"LEACE fit {system.name} ({steps} layer steps)", unit="item",
               disable=not progress)
    walks = []
    for inputs, _, _, _ in prepared:              # one recorded call per decoder layer and item (leace.walk)
        with compute.timed("leace-fit"):
            walks.append(LayerWalk(system, inputs, upto=max(layers)))
    for names in [[c.name for c in concepts]] if not sequential else [[c.name] for c in concepts]:
        walking = [walk.cursor() for walk in walks]
        for j, layer in enumerate(layers):
            for k, ((_, positions, _, _), cursor) in enumerate(zip(prepared, walking)):
                with compute.timed("leace-fit"):     # the layers walked and the fitters' covariance updates
                    stream = cursor.advance(layer)
                    for name in names:
                        update(name, layer, k, stream[positions.to(stream.device)])
                bar.update()
            if sequential and j + 1 < len(layers):   # this layer's eraser acts before the next is fitted
                eraser = eraser_from_fitters(names[0], {layer: fitters[names[0]][layer]})
                for (_, positions, _, _), cursor in zip(prepared, walking):
                    cursor.erase(eraser, positions, scope)
    bar.close()
    out = {}
    for c in concepts:
        config = {"kind": "leace", "concept": c.name, "classes": list(c.classes), "description": c.description,
                  "affine": affine, "sequential": sequential, "moments": moments,
                  "fit_items": [it.id for it in items],
                  "positions_per_class": seen[c.name].tolist(), "system": system.fingerprint}
        out[c.name] = eraser_from_fitters(c.name, fitters[c.name], config)
    if key is not None:
        fit_cache.store(key, out)
    return out
