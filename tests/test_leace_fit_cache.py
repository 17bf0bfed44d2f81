"""The LEACE fit's disk cache: a rerun reads the erasers instead of refitting them (no forward pass); other labels,
items, layers or ``affine`` miss; a damaged entry is rejected loudly, discarded and refitted; ``cache=False`` (the
default) writes nothing.

Forward passes are counted by wrapping the system's own ``residual_stream`` (the real tiny model still runs).
"""
import dataclasses
import json

import numpy as np
import pytest
import torch

from harness.cache import CACHE_ENV, CacheWarning
from harness.positions import seconds_per_position
from harness.probes import leace
from harness.probes.leace import fit_cache
from harness.probes.leace.hooks import _stream_at_audio
from harness.tasks import load_task
from tests import tiny_models
from tests.test_leace import _concepts
from tests.test_lens import tiny_system

LAYERS = [0, 1]


@pytest.fixture(scope="module")
def task():
    return load_task("sentiment")


@pytest.fixture(scope="module")
def system():
    return tiny_system(tiny_models.FAMILIES[0])   # one family: the cache does not depend on the model class


@pytest.fixture(scope="module")
def data(system, task):
    """Two fitting items, their synthetic clips and the text + energy concepts (as in test_leace)."""
    items = list(task.train[:2])
    audios, concepts = _concepts(system, task, items)
    return items, audios, concepts


@pytest.fixture(scope="module")
def stored(system, task, data, tmp_path_factory):
    """An uncached fit of ``data`` (fingerprints) and its entry's key and bytes, as ``fit_erasers`` keeps it."""
    items, audios, concepts = data
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("stored")))
        erasers = fit(system, task, items, audios, concepts)
        key, path = entry_path(system, task, items, audios, concepts)
        assert fit_cache.store(key, erasers)
        return key, path.read_bytes(), fingerprints(erasers)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    return tmp_path / "leace"


@pytest.fixture
def forwards(system, monkeypatch):
    """Counts the fit's forward passes: one recorded forward per item (``leace.walk``), each starting from the
    system's own prompt embeddings (wrapped)."""
    calls = []
    real = system.prefix_embeds

    def counted(inputs):
        calls.append(1)
        return real(inputs)

    monkeypatch.setattr(system, "prefix_embeds", counted)
    return calls


def fit(system, task, items, audios, concepts, layers=LAYERS, **kw):
    return leace.fit_erasers(system, task, items, audios, concepts, layers, progress=False, **kw)


def fingerprints(erasers):
    return {name: e.fingerprint for name, e in erasers.items()}


def entries(cache):
    return sorted(cache.rglob("*.safetensors")) if cache.exists() else []


def entry_path(system, task, items, audios, concepts, layers=LAYERS, affine=False):
    """Where ``fit`` keeps this fit (the key computed from the same labels fit_erasers computes)."""
    labels = {c.name: [c.labels(it, a, len(_stream_at_audio(system, task, it, a)[1])) for it, a in zip(items, audios)]
              for c in concepts}
    key = fit_cache.key(system, task, items, audios, concepts, labels, layers, affine=affine,
                        dtype=torch.float64, sequential=True, scope="audio", svd_tol=leace.SVD_TOL)
    return key, fit_cache.path(key)


def test_a_rerun_reads_the_cache_instead_of_the_model(system, task, data, stored, cache, forwards, capsys):
    items, audios, concepts = data
    first = fit(system, task, items, audios, concepts, cache=True)
    n = len(forwards)
    assert n == len(items) and len(entries(cache)) == 1
    assert fingerprints(first) == stored[2]                     # a miss fits what an uncached fit gives
    capsys.readouterr()
    second = leace.fit_erasers(system, task, items, audios, concepts, LAYERS, cache=True)   # progress on
    assert len(forwards) == n                                   # no forward pass the second time
    assert capsys.readouterr().err == ""                        # and no progress bar: nothing to do
    assert list(second) == list(first) and fingerprints(second) == fingerprints(first)
    for name, e in first.items():
        assert second[name].config == e.config and second[name].ranks == e.ranks
        for layer in LAYERS:
            assert np.array_equal(second[name].left[layer].numpy(), e.left[layer].numpy())
            assert np.array_equal(second[name].right[layer].numpy(), e.right[layer].numpy())


def test_other_labels_items_layers_or_affine_miss_the_cache(system, task, data, cache, forwards):
    items, audios, concepts = data
    energy = concepts[1]
    fit(system, task, items, audios, [energy], cache=True)
    per_fit = len(forwards)
    def shifted(item, audio, n):                                # the same classes, each position's bin moved
        y = energy.labeler(item, audio, n)
        return np.where(y >= 0, (y + 1) % len(energy.classes), -1)

    other_items = list(task.train[2:4])
    variants = [
        ("other classes", dict(concepts=[leace.energy_concept(items, audios, seconds_per_position(system), bins=3)])),
        ("same classes, other labels", dict(concepts=[dataclasses.replace(energy, labeler=shifted)])),
        ("other items", dict(items=other_items, audios=_concepts(system, task, other_items)[0])),
        ("other layers", dict(layers=[1])),
        ("affine", dict(affine=True)),
    ]
    for k, (what, change) in enumerate(variants, start=1):
        kw = {"items": items, "audios": audios, "concepts": [energy], "layers": LAYERS, **change}
        before = len(forwards)
        fit(system, task, cache=True, **kw)
        after = len(forwards)
        assert after > before, what                             # refitted
        assert len(entries(cache)) == 1 + k, what               # and kept under its own key
        fit(system, task, cache=True, **kw)
        assert len(forwards) == after, what                     # which the next rerun reads
    assert per_fit == len(items)


def test_a_corrupted_entry_is_rejected_and_refitted(system, task, data, stored, cache, forwards):
    items, audios, concepts = data
    key, good, uncached = stored
    path = fit_cache.path(key)
    raw = bytearray(good)
    raw[-40:-24] = b"\xff" * 16                                 # inside the tensors' data
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(raw))
    with pytest.warns(CacheWarning, match=rf"{path.name}.*rejected \(checksum mismatch"):
        again = fit(system, task, items, audios, concepts, cache=True)
    assert len(forwards) == len(items)    # refitted
    assert fingerprints(again) == uncached
    assert entries(cache) == [path]                             # rewritten whole
    assert fingerprints(fit(system, task, items, audios, concepts, cache=True)) == uncached
    assert len(forwards) == len(items)    # and read back


def _rewrite(path, damage):
    """Re-save the entry at ``path`` after ``damage(tensors, meta)`` (tensor checksum recomputed unless told)."""
    from safetensors.torch import load, save

    data = path.read_bytes()
    tensors, meta = load(data), fit_cache._metadata(data)
    fix = damage(tensors, meta)
    if fix:
        meta["sha256"] = fit_cache._digest(tensors)
    path.write_bytes(save(tensors, metadata={"entry": json.dumps(meta)}))


def _first(tensors):
    return sorted(tensors)[0]


@pytest.mark.parametrize("damage, why", [
    (lambda t, m: m.update(format=99), "not a format-"),
    (lambda t, m: m.update(key="f" * 64), "written under key"),
    (lambda t, m: m.update(sha256="0" * 64), "checksum mismatch"),
    (lambda t, m: t.update({_first(t): t[_first(t)] + 1}), "checksum mismatch"),
    (lambda t, m: m["concepts"][0]["config"].update(affine=True) or True, "fingerprint"),
    (lambda t, m: t.update({_first(t): t[_first(t)] * 2}) or True, "fingerprint"),
    (lambda t, m: m["concepts"].reverse() or True, "expected \\['text', 'energy'\\]"),
    (lambda t, m: (t.pop("0/1/left"), True)[1], "matrices for layers"),
], ids=["format", "other-key", "checksum", "tampered-tensor", "tampered-config", "tampered-and-rehashed",
        "other-concepts", "missing-layer"])
def test_each_rejection_names_the_entry_and_why(data, stored, cache, damage, why):
    names = [c.name for c in data[2]]
    key, good, uncached = stored
    path = fit_cache.path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(good)
    assert fingerprints(fit_cache.load(key, names, LAYERS)) == uncached
    _rewrite(path, damage)
    with pytest.warns(CacheWarning, match=rf"{path.name}.*rejected \(.*{why}"):
        assert fit_cache.load(key, names, LAYERS) is None
    assert not path.exists()                                    # discarded, not left corrupt


@pytest.mark.parametrize("cut", [4, 100, -50], ids=["no-header", "half-header", "short-data"])
def test_an_unreadable_entry_is_rejected(data, stored, cache, cut):
    key, good, _ = stored
    path = fit_cache.path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(good[:cut])                                # truncated
    with pytest.warns(CacheWarning, match=rf"{path.name}.*rejected"):
        assert fit_cache.load(key, [c.name for c in data[2]], LAYERS) is None
    assert not path.exists()


def test_no_cache_writes_nothing(system, task, data, cache, forwards):
    items, audios, concepts = data
    fit(system, task, items, audios, concepts[1:])              # the default: no cache
    fit(system, task, items, audios, concepts[1:], cache=False)
    assert len(forwards) == 2 * len(items)
    assert entries(cache) == [] and not cache.exists()


def test_a_system_without_a_fingerprint_is_not_cached(system, task, data):
    items, audios, concepts = data
    labels = {c.name: [np.zeros(3, dtype=np.int64)] * len(items) for c in concepts}
    assert fit_cache.key(object(), task, items, audios, concepts, labels, LAYERS, affine=False, dtype="x",
                         sequential=True, scope="audio", svd_tol=1e-9) is None
