"""The logit lens's disk cache: a rerun reads each item's top-1 tokens instead of redoing the forward pass; a
different input misses; a damaged entry is rejected loudly and recomputed; ``cache=False`` writes nothing.

Forward passes are counted by wrapping the system's own ``hidden_states_at_audio`` (the real model still runs).
"""
import json
import warnings

import numpy as np
import pytest

from harness.audio import Audio
from harness.cache import CACHE_ENV, CacheWarning
from harness.probes import lens, lens_cache
from harness.tasks import load_task
from tests import tiny_models
from tests.test_lens import synthetic_clip, tiny_system
from tests.test_runner import read_only

N_RESAMPLES = 50


@pytest.fixture(scope="module")
def task():
    return load_task("sentiment")


@pytest.fixture(scope="module")
def system():
    return tiny_system(tiny_models.FAMILIES[0])   # one family: the cache does not depend on the model class


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    return tmp_path / "lens"


@pytest.fixture
def forwards(system, monkeypatch):
    """Counts the lens forward passes (the system's own method, wrapped)."""
    calls = []
    real = system.hidden_states_at_audio

    def counted(task, item, audio):
        calls.append(item.id)
        return real(task, item, audio)

    monkeypatch.setattr(system, "hidden_states_at_audio", counted)
    return calls


def run(system, task, items, audios, **kw):
    return lens.logit_lens(system, task, items, audios, n_resamples=N_RESAMPLES, **kw)


def same(a: lens.LensResult, b: lens.LensResult) -> bool:
    return (json.dumps(a.to_dict()) == json.dumps(b.to_dict())
            and all(np.array_equal(x, y) and x.dtype == y.dtype for x, y in zip(a.top1, b.top1)))


def entries(cache):
    return sorted(cache.rglob("*.npz")) if cache.exists() else []


def test_a_rerun_reads_the_cache_instead_of_the_model(system, task, cache, forwards):
    items = list(task.items[:2])
    audios = [synthetic_clip(it) for it in items]
    first = run(system, task, items, audios)
    assert forwards == [it.id for it in items] and len(entries(cache)) == 2
    second = run(system, task, items, audios)
    assert forwards == [it.id for it in items]           # no forward pass the second time
    assert same(first, second)
    assert same(first, run(system, task, items, audios, cache=False))   # and it is what the model reads


def test_other_audio_or_layers_miss_the_cache(system, task, cache, forwards):
    items = list(task.items[:2])
    audios = [synthetic_clip(it) for it in items]
    run(system, task, items, audios)
    assert len(forwards) == 2
    quieter = [Audio(a.samples * np.float32(0.5), item_id=a.item_id) for a in audios]
    run(system, task, items, quieter)
    assert len(forwards) == 4
    sub = run(system, task, items, audios, layers=[0, 2])
    assert len(forwards) == 6 and sub.layers == (0, 2) and all(t.shape[0] == 2 for t in sub.top1)
    run(system, task, items, audios, layers=[0, 2])
    assert len(forwards) == 6 and len(entries(cache)) == 6


def test_a_corrupted_entry_is_rejected_and_recomputed(system, task, cache, forwards):
    items = list(task.items[:2])
    audios = [synthetic_clip(it) for it in items]
    uncached = run(system, task, items, audios, cache=False)
    run(system, task, items, audios)
    path = lens_cache.path(lens_cache.key(system, task, items[0], audios[0], None))
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))
    n = len(forwards)
    with pytest.warns(CacheWarning, match=rf"{path.name}.*rejected"):
        again = run(system, task, items, audios)
    assert forwards[n:] == [items[0].id]                 # only the damaged item is recomputed
    assert same(again, uncached)
    assert lens_cache.load(lens_cache.key(system, task, items[0], audios[0], None)) is not None   # rewritten whole


@pytest.mark.parametrize("damage, why", [
    (lambda e: {**e, "sha256": np.array("0" * 64)}, "checksum mismatch"),
    (lambda e: {**e, "top1": e["top1"] + 1}, "checksum mismatch"),
    (lambda e: {**e, "key": np.array("f" * 64)}, "written under key"),
    (lambda e: {**e, "top1": e["top1"].astype(np.float32)}, "expected a 2-D integer"),
    (lambda e: {**e, "top1": e["top1"][0]}, "expected a 2-D integer"),
    (lambda e: {k: v for k, v in e.items() if k != "sha256"}, "not a format-"),
], ids=["checksum", "tampered-array", "other-key", "float-array", "1-d-array", "missing-field"])
def test_each_rejection_names_the_entry_and_why(system, task, cache, damage, why):
    item = task.items[0]
    audio = synthetic_clip(item)
    key = lens_cache.key(system, task, item, audio, [1])
    good = lens.top1_tokens(system, task, item, audio, [1])
    lens_cache.store(key, good)
    path = lens_cache.path(key)
    with np.load(path) as z:
        entry = {k: z[k] for k in z.files}
    np.savez(path, **damage(entry))
    with pytest.warns(CacheWarning, match=rf"{path.name}.*rejected \({why}"):
        assert lens_cache.load(key, [1]) is None
    assert not path.exists()                             # discarded, not left corrupt
    assert np.array_equal(lens_cache.cached(lens.top1_tokens, system, task, item, audio, [1]), good)


def test_no_cache_writes_nothing(system, task, cache, forwards):
    items = list(task.items[:2])
    audios = [synthetic_clip(it) for it in items]
    run(system, task, items, audios, cache=False)
    run(system, task, items, audios, cache=False)
    assert len(forwards) == 4 and entries(cache) == []


def test_the_key_covers_what_defines_the_result(system, task):
    item, other = task.items[0], task.items[1]
    audio = synthetic_clip(item)
    k = lens_cache.key(system, task, item, audio, None)
    assert k == lens_cache.key(system, task, item, Audio(audio.samples.copy(), item_id=item.id), None)
    assert len({k, lens_cache.key(system, task, other, audio, None),
                lens_cache.key(system, task, item, audio, [0]),
                lens_cache.key(system, task, item, audio, list(range(len(system.decoder_layers) + 1)))}) == 4
    assert lens_cache.key(object(), task, item, audio, None) is None   # no fingerprint: not cached


def test_a_read_only_cache_is_read_and_degrades_to_no_cache(system, task, cache, forwards):
    items = list(task.items[:2])
    audios = [synthetic_clip(it) for it in items]
    expected = run(system, task, items, audios, cache=False)
    run(system, task, items, audios)
    lens_cache.path(lens_cache.key(system, task, items[1], audios[1], None)).unlink()   # item 1: not cached yet
    before = entries(cache)
    del forwards[:]
    with read_only(cache.parent), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = run(system, task, items, audios)
    assert forwards == [items[1].id] and same(got, expected)    # item 0 read, item 1 computed, not kept
    ours = [w for w in caught if issubclass(w.category, CacheWarning)]
    assert len(ours) == 1 and "cannot be written" in str(ours[0].message), [str(w.message) for w in caught]
    assert entries(cache) == before
