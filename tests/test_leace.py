"""LEACE erasers: they remove a planted linear concept and nothing orthogonal to it; their hooks act at the audio
positions during scoring *and* generation, before transformers records hidden states; erased answers get
their own runner cache key; and the whole comparison runs on tiny configs of every native class.
"""
import json

import numpy as np
import pytest
import torch

from harness.asr import Word
from harness.audio import Audio, Condition
from harness.positions import normalise_word, seconds_per_position
from harness.probes import leace
from harness.probes.leace.hooks import _stream_at_audio
from harness.runner import Runner
from harness.tasks import load_task
from tests.test_lens import synthetic_clip

class SyntheticRunner(Runner):
    def clean_audio(self, item):
        return synthetic_clip(item)


def fake_words(item, audio):
    """Word timestamps spread evenly over the clip (stands in for ASR on the synthetic tones)."""
    words = item.text.split()
    step = 0.9 * audio.duration / len(words)
    return tuple(Word(w, k * step, (k + 0.8) * step, 1.0) for k, w in enumerate(words))


# -- synthetic data: a planted concept ------------------------------------------------------------------------
def _planted(n=4000, d=16, seed=0):
    """x = noise + 2·e_z (z in 4 classes along e_0..e_3) + 1.5·(2y−1)·e_10 (an orthogonal binary signal)."""
    rng = np.random.default_rng(seed)
    z, y = rng.integers(0, 4, n), rng.integers(0, 2, n)
    x = rng.standard_normal((n, d))
    x[np.arange(n), z] += 2.0
    x[:, 10] += 1.5 * (2 * y - 1)
    return torch.from_numpy(x), z, y


def _fit(x, z, affine, classes=4):
    fitter = leace.new_fitter(x.shape[1], classes, affine=affine)
    fitter.update(x, torch.nn.functional.one_hot(torch.from_numpy(z), classes).double())
    return leace.eraser_from_fitters("planted", {3: fitter}, {"kind": "leace", "affine": affine})


def _probe(x, labels, split=3000):
    return leace.linear_probe(x[:split], labels[:split], x[split:], labels[split:])


@pytest.mark.parametrize("affine", [False, True])
def test_planted_concept_is_removed_and_the_orthogonal_signal_kept(affine):
    x, z, y = _planted()
    fit_x, fit_z = x[:3000], z[:3000]                  # fitted on the probe's training half only
    eraser = _fit(fit_x, fit_z, affine)
    assert eraser.ranks == {3: 3}                      # 4 one-hot classes, centred → rank 3
    erased = eraser.erase(3, x.float()).numpy()
    acc_before, chance = _probe(x.numpy(), z)
    acc_after, _ = _probe(erased, z)
    assert acc_before > 0.6 and chance < 0.3
    assert acc_after < chance + 0.04, (acc_after, chance)            # a fresh probe falls to chance
    keep_before, _ = _probe(x.numpy(), y)
    keep_after, _ = _probe(erased, y)
    assert keep_before > 0.9 and keep_after > keep_before - 0.02     # the orthogonal signal is intact


def test_balanced_probe_sees_rare_classes_that_majority_accuracy_hides():
    """Like the text concept (``<other>`` ~3/4 of positions): 3 rare classes, weakly planted; plain accuracy
    barely leaves the majority rate, balanced accuracy clearly leaves 1/K — and falls back to it after LEACE."""
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(1)
    n, d = 6000, 16
    z = rng.choice(4, n, p=[0.76, 0.08, 0.08, 0.08])
    x = rng.standard_normal((n, d))
    x[np.arange(n), z] += 1.0
    acc, chance = leace.linear_probe(x[:4000], z[:4000], x[4000:], z[4000:])
    bal, bal_chance = leace.linear_probe(x[:4000], z[:4000], x[4000:], z[4000:], balanced=True)
    assert chance == pytest.approx(np.mean(z[4000:] == 0)) and bal_chance == 0.25
    assert acc < chance + 0.03                       # plain accuracy: ~majority, nothing to see
    assert bal > bal_chance + 0.2                    # balanced: the rare classes are decodable
    constant = balanced_accuracy_score(z[4000:], np.zeros(n - 4000, dtype=int))
    assert constant == pytest.approx(bal_chance)     # 1/K is what a constant prediction scores
    eraser = _fit(torch.from_numpy(x[:4000]), z[:4000], affine=True)
    erased = eraser.erase(3, torch.from_numpy(x).float()).numpy()
    after, _ = leace.linear_probe(erased[:4000], z[:4000], erased[4000:], z[4000:], balanced=True)
    assert after < bal_chance + 0.05, after


def test_rare_classes_are_erased_too():
    """Like the text concept's tail (a word heard at ~0.1% of positions): concept-erasure's default svd_tol
    keeps such classes readable; ``new_fitter`` erases them, so no probe trained on the erased fitting data reads
    any class there (LEACE's guarantee) nor on new draws."""
    from concept_erasure import LeaceFitter

    rng = np.random.default_rng(2)
    n, d, k = 40_000, 24, 12
    p = np.array([0.80, 0.06, 0.06, 0.06] + [0.0025] * 8)
    z = rng.choice(k, n, p=p / p.sum())
    x = rng.standard_normal((n, d))
    x[np.arange(n), z] += 3.0
    x = torch.from_numpy(x)
    default = LeaceFitter(d, k, affine=False, dtype=torch.float64)
    default.update(x[:30_000], torch.nn.functional.one_hot(torch.from_numpy(z[:30_000]), k).double())
    loose = leace.eraser_from_fitters("default", {3: default})
    ours = _fit(x[:30_000], z[:30_000], affine=False, classes=k)
    assert ours.ranks == {3: k - 1} and loose.ranks[3] < k - 1          # the default drops the rare classes

    def balanced(eraser):
        e = eraser.erase(3, x.float()).numpy()
        return (leace.linear_probe(e[:30_000], z[:30_000], e[:30_000], z[:30_000], balanced=True)[0],
                leace.linear_probe(e[:30_000], z[:30_000], e[30_000:], z[30_000:], balanced=True)[0])

    chance = 1 / k
    before = leace.linear_probe(x[:30_000].numpy(), z[:30_000], x[30_000:].numpy(), z[30_000:], balanced=True)[0]
    assert before > 0.8
    assert min(balanced(loose)) > chance + 0.2                 # rare classes still decodable
    assert max(balanced(ours)) < chance + 0.03, balanced(ours)


def test_random_eraser_is_rank_matched_orthogonal_seeded_and_mostly_harmless():
    x, z, _ = _planted()
    text = _fit(x[:3000], z[:3000], affine=False)
    rnd = leace.random_eraser(text, seed=0)
    assert rnd.ranks == text.ranks and rnd.bias == {}
    q = rnd.left[3]
    torch.testing.assert_close(rnd.right[3] @ q, torch.eye(3), atol=1e-5, rtol=0)   # orthonormal basis
    assert leace.random_eraser(text, seed=0).fingerprint == rnd.fingerprint
    assert leace.random_eraser(text, seed=1).fingerprint != rnd.fingerprint != text.fingerprint
    acc, chance = _probe(rnd.erase(3, x.float()).numpy(), z)
    assert acc > chance + 0.2                          # a random rank-3 cut leaves the concept decodable


# -- labels ------------------------------------------------------------------------------------------------------
def test_text_concept_vocabulary_comes_from_fitting_items_only():
    task = load_task("sentiment")
    fit, held = list(task.items[:4]), task.items[5]
    audios = {it.id: synthetic_clip(it) for it in [*fit, held]}
    words = {i: fake_words(it, audios[i]) for i, it in ((it.id, it) for it in [*fit, held])}
    concept = leace.text_concept(words, fit, 0.08, top_k=5)
    assert len(concept.classes) == 6 and concept.classes[-1] == leace.OTHER
    fit_words = {normalise_word(w.text) for it in fit for w in words[it.id]}
    assert set(concept.classes[:-1]) <= fit_words
    y = concept.labels(held, audios[held.id], 30)
    assert y.shape == (30,) and y.min() >= -1 and (y == -1).any() and (y >= 0).any()
    with pytest.raises(ValueError, match="no ASR words for fitting items"):
        leace.text_concept({}, fit, 0.08)


def test_onset_labels_name_a_word_at_its_first_position_and_other_everywhere_else():
    item = load_task("sentiment").items[0]
    words = {item.id: (Word("good", 0.0, 0.3, 1.0), Word("film", 0.4, 0.6, 1.0))}
    span = leace.text_concept(words, [item], 0.08, top_k=2)
    onset = leace.text_concept(words, [item], 0.08, top_k=2, at="onset")
    assert span.classes == onset.classes == ("film", "good", leace.OTHER) and onset.reference == 2
    audio = synthetic_clip(item)
    assert span.labels(item, audio, 10).tolist() == [1, 1, 1, 1, -1, 0, 0, 0, -1, -1]
    assert onset.labels(item, audio, 10).tolist() == [1, 2, 2, 2, 2, 0, 2, 2, 2, 2]
    with pytest.raises(ValueError, match="positions 'middle'"):
        leace.text_concept(words, [item], 0.08, at="middle")


def test_raw_moments_send_each_named_point_to_zero_and_leave_every_other_row_where_it_is():
    """Rows that are points (a reference's embeddings): named classes e_0..e_3, the reference class (the concept's
    absence) a filler row and two other words. Raw moments with the reference at z = 0 move only the named rows
    (to 0); central moments (LEACE as published) move the filler and the other words too."""
    from harness.probes.leace.fit import _mirrored

    rng = np.random.default_rng(0)
    points = torch.from_numpy(rng.standard_normal((7, 16)))      # 0–3 named, 4 filler, 5–6 other words
    kind = np.array(([0, 1, 2, 3] * 5 + [4] * 60 + [5, 6] * 10) * 10)
    x = points[kind]
    z = torch.nn.functional.one_hot(torch.from_numpy(np.minimum(kind, 4)), 5).double()
    raw = leace.new_fitter(16, 4)
    raw.update(*_mirrored(x, z[:, :4]))
    central = leace.new_fitter(16, 5)
    central.update(x, z)
    moved = {}
    for name, fitter in (("raw", raw), ("central", central)):
        e = leace.eraser_from_fitters(name, {0: fitter})
        moved[name] = (e.erase(0, points.float()) - points.float()).norm(dim=1) / points.float().norm(dim=1)
    # not exactly 0 / 1: the library shrinks the covariance estimate (n = 1000 rows here)
    assert (moved["raw"][:4] > 0.99).all() and (moved["raw"][4:] < 0.01).all(), moved
    assert (moved["central"][4:] > 0.5).any(), moved


def test_energy_concept_bins_loudness_and_skips_positions_past_the_clip():
    t = np.arange(16000) / 16000
    x = np.where(t < 0.5, 0.3, 0.01) * np.sin(2 * np.pi * 200 * t)
    audio = Audio(x.astype(np.float32), item_id="a")
    item = load_task("sentiment").items[0]
    concept = leace.energy_concept([item], [Audio(x.astype(np.float32), item_id=item.id)], 0.1, bins=2)
    y = concept.labels(item, audio, 14)
    assert y[:5].tolist() == [1] * 5 and y[5:10].tolist() == [0] * 5 and y[10:].tolist() == [-1] * 4


# -- hooks on every native class -----------------------------------------------------------------------------------
from tests.probe_fixtures import system, task  # noqa: E402,F401  (shared fixtures)


def _concepts(system, task, items):
    audios = [synthetic_clip(it) for it in items]
    seconds = seconds_per_position(system)
    words = {it.id: fake_words(it, a) for it, a in zip(items, audios)}
    return audios, [leace.text_concept(words, items, seconds, top_k=8),
                    leace.energy_concept(items, audios, seconds, bins=4)]


def _full_eraser(system, layers):
    """Erases everything (left = right = I): the audio positions become 0 at every hooked layer."""
    h = system.model.get_input_embeddings().weight.shape[1]
    eye = torch.eye(h)
    return leace.make_eraser("everything", {k: eye for k in layers}, {k: eye for k in layers})


def test_fit_erasers_on_every_native_class(system, task):
    items = list(task.train[:4])
    audios, concepts = _concepts(system, task, items)
    layers = range(len(system.decoder_layers) + 1)          # every residual entry, incl. the final output
    first = leace.fit_erasers(system, task, items, audios, concepts, layers)
    second = leace.fit_erasers(system, task, items, audios, concepts, layers)
    h = system.model.get_input_embeddings().weight.shape[1]
    for name, eraser in first.items():
        assert eraser.fingerprint == second[name].fingerprint          # deterministic
        assert eraser.layers == tuple(layers) and eraser.dim == h and eraser.bias == {}
        assert all(0 < r < len(eraser.config["classes"]) for r in eraser.ranks.values())
        assert eraser.config["fit_items"] == [it.id for it in items]
    affine = leace.fit_erasers(system, task, items, audios, concepts[1:], [1], affine=True)["energy"]
    assert set(affine.bias) == {1} and affine.config["affine"] is True


def _cross_covariance(system, task, items, audios, concept, layers, eraser):
    """Per layer: max |Cov(stream at the audio positions, concept one-hot)| over the labelled positions."""
    xs, zs = {layer: [] for layer in layers}, []
    for item, audio in zip(items, audios):
        inputs, positions = _stream_at_audio(system, task, item, audio)
        y = concept.labels(item, audio, len(positions))
        stream = leace.erased_stream(system, eraser, inputs)[:, positions].double()
        for layer in layers:
            xs[layer].append(stream[layer][torch.from_numpy(y >= 0)])
        zs.append(torch.nn.functional.one_hot(torch.from_numpy(y[y >= 0]), len(concept.classes)).double())
    z = torch.cat(zs)
    z = z - z.mean(0)
    return {layer: float(((torch.cat(xs[layer]) - torch.cat(xs[layer]).mean(0)).T @ z).abs().max() / len(z))
            for layer in layers}


def test_sequential_fit_removes_the_concept_at_every_erased_layer_where_one_pass_fitting_does_not(system, task):
    """With all erasers hooked in at once, a layer fitted on the clean stream misses what the earlier erasures
    moved; fitted after them (``sequential``, the default) its erased stream keeps (almost) no cross-covariance
    with the concept on the fitting data (not exactly 0: LeaceFitter drops whitened singular values < svd_tol)."""
    items = list(task.train[:4])
    audios, concepts = _concepts(system, task, items)
    text = concepts[0]
    layers = [0, 1, 2]
    clean = _cross_covariance(system, task, items, audios, text, layers, None)
    seq = leace.fit_erasers(system, task, items, audios, [text], layers)["text"]
    one_pass = leace.fit_erasers(system, task, items, audios, [text], layers, sequential=False)["text"]
    assert seq.config["sequential"] is True and one_pass.config["sequential"] is False
    after_seq = _cross_covariance(system, task, items, audios, text, layers, seq)
    after_one = _cross_covariance(system, task, items, audios, text, layers, one_pass)
    for layer in layers[1:]:
        assert after_seq[layer] <= 1e-2 * clean[layer], (layer, clean, after_seq)
        assert after_seq[layer] < after_one[layer], (layer, after_seq, after_one)


def test_a_walk_through_the_layers_computes_what_the_erasure_hooks_do(system, task):
    """The sequential fit walks the decoder layer by layer on recorded calls (``leace.walk``) instead of a hooked
    forward per layer; on every native class both give the same erased stream at every entry."""
    from harness.probes.leace.walk import LayerWalk

    item = task.train[0]
    inputs, positions = _stream_at_audio(system, task, item, synthetic_clip(item))
    top = len(system.decoder_layers)
    h = system.model.get_input_embeddings().weight.shape[1]
    gen = torch.Generator().manual_seed(0)
    q = {k: torch.linalg.qr(torch.randn(h, 3, generator=gen, dtype=torch.float64))[0] for k in (0, top - 1)}
    eraser = leace.make_eraser("random-3", q, {k: v.T for k, v in q.items()})
    hooked = leace.erased_stream(system, eraser, inputs)
    cursor = LayerWalk(system, inputs, upto=top).cursor()
    for entry in range(top + 1):
        cursor.advance(entry)
        if entry in eraser.layers:
            cursor.erase(eraser, positions, "audio")
        torch.testing.assert_close(cursor.state.float(), hooked[entry], rtol=1e-5, atol=1e-5, msg=f"entry {entry}")
    with pytest.raises(ValueError, match="cannot walk from entry"):
        cursor.advance(0)


def test_recording_a_walk_restores_a_layers_own_forward_wrapper(system, task):
    """accelerate (device_map) wraps a layer's forward as an instance attribute; recording must put it back."""
    from harness.probes.leace.walk import LayerWalk

    item = task.train[0]
    inputs, _ = _stream_at_audio(system, task, item, synthetic_clip(item))
    layer = system.decoder_layers[-1]
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(1)
        return type(layer).forward(layer, *args, **kwargs)

    layer.forward = wrapped
    try:
        walk = LayerWalk(system, inputs, upto=len(system.decoder_layers))
        assert layer.__dict__["forward"] is wrapped and not calls       # stood in while recording, then restored
        walk.cursor().advance(len(system.decoder_layers))
        assert calls == [1]                                            # the walk runs the wrapper
    finally:
        del layer.forward
    assert all("forward" not in x.__dict__ for x in system.decoder_layers)      # no stand-in left behind


def test_a_concept_seen_in_one_class_only_is_refused_before_any_pass(system, task):
    items = list(task.train[:2])
    audios = [synthetic_clip(it) for it in items]
    constant = leace.Concept("constant", ("a", "b"), lambda item, audio, n: np.zeros(n, dtype=np.int64))
    with pytest.raises(ValueError, match="'constant'.*1 class"):
        leace.fit_erasers(system, task, items, audios, [constant], [0, 1], progress=False)


def test_hooks_erase_audio_positions_before_transformers_records_them(system, task):
    item = task.items[0]
    inputs = system.inputs_for(task, item, synthetic_clip(item))
    positions = system.audio_positions(inputs)
    embeds = system.prefix_embeds(inputs)
    n = len(system.decoder_layers)
    eraser = _full_eraser(system, range(n))                   # entries 0..L-1: pre-hook on 0, post-hooks after
    mask = torch.ones(1, len(embeds), dtype=torch.long)
    with torch.no_grad():
        plain = system.backbone.model(inputs_embeds=embeds[None], attention_mask=mask, output_hidden_states=True)
        with leace.erasing(system, eraser, positions, len(embeds)) as counter:
            erased = system.backbone.model(inputs_embeds=embeds[None], attention_mask=mask,
                                           output_hidden_states=True)
    assert counter.calls == counter.erasing == n
    other = torch.ones(len(embeds), dtype=torch.bool)
    other[positions] = False
    for entry in range(n):       # transformers' recorded hidden states already hold the erased values
        rec = erased.hidden_states[entry][0]
        assert rec[positions].abs().max() == 0, entry
        if entry == 0:
            torch.testing.assert_close(rec[other], plain.hidden_states[0][0][other])
    assert not torch.allclose(erased.logits[0, -1], plain.logits[0, -1])
    # hooks are gone afterwards
    with torch.no_grad():
        again = system.backbone.model(inputs_embeds=embeds[None], attention_mask=mask).logits
    torch.testing.assert_close(again, plain.logits)


def test_hooks_stay_active_during_generation(system, task):
    item = task.items[0]
    inputs = system.inputs_for(task, item, synthetic_clip(item))
    positions = system.audio_positions(inputs)
    embeds = system.prefix_embeds(inputs)
    layers = range(1, len(system.decoder_layers) + 1)
    eraser = _full_eraser(system, layers)
    with leace.erasing(system, eraser, positions, len(embeds)) as counter:
        system.backbone.generate(embeds, max_new_tokens=3)
    # prefill (full prompt) erased once per hooked layer; every cached step still runs the hooks, erasing nothing
    assert counter.lengths.count(len(embeds)) == counter.erasing == len(layers)
    assert counter.calls > counter.erasing and set(counter.lengths) - {len(embeds)} == {1}
    with leace.erasing(system, eraser, positions, len(embeds), scope="all") as everywhere:
        system.backbone.generate(embeds, max_new_tokens=3)
    assert everywhere.erasing == everywhere.calls == counter.calls


def test_erased_system_through_the_runner(system, task):
    items = list(task.items[:3])
    big = _full_eraser(system, range(len(system.decoder_layers)))
    erased = leace.ErasedSystem(system, big)
    plain = SyntheticRunner(disk_cache=False, progress=False).answers(system, task, items)
    first = SyntheticRunner(disk_cache=False, progress=False).answers(erased, task, items)
    second = SyntheticRunner(disk_cache=False, progress=False).answers(leace.ErasedSystem(system, big), task, items)
    assert [a.to_json() for a in first] == [a.to_json() for a in second]             # deterministic
    assert [a.scores for a in first] != [a.scores for a in plain]                    # the hooks were active
    assert erased.counter.erasing == len(items) * len(big.layers)
    runner = Runner(disk_cache=False)

    def key(s):
        return runner.key(s, task, items[0], Condition())

    other = leace.random_eraser(big, seed=0)
    assert len({key(system), key(erased), key(leace.ErasedSystem(system, other)),
                key(leace.ErasedSystem(system, big, scope="all"))}) == 4
    assert key(erased) == key(leace.ErasedSystem(system, big))
    with pytest.raises(ValueError, match="width"):
        leace.ErasedSystem(system, leace.make_eraser("w", {1: torch.eye(7)}, {1: torch.eye(7)}))
    with pytest.raises(ValueError, match="residual entries"):
        leace.ErasedSystem(system, _full_eraser(system, [len(system.decoder_layers) + 1]))


def test_leace_experiment_end_to_end(system, task):
    fit, evaluation = list(task.train[:4]), list(task.items[:4])
    runner = SyntheticRunner(disk_cache=False, progress=False)
    words = {it.id: fake_words(it, runner.clean_audio(it)) for it in fit + evaluation}
    kw = dict(words=words, top_k=8, energy_bins=4, layers=[0, 1])
    result = leace.leace_experiment(runner, system, task, fit, evaluation, **kw)
    d = json.loads(json.dumps(result.to_dict()))
    assert d["split"] == {"fit": [it.id for it in fit], "eval": [it.id for it in evaluation]}
    assert set(d["accuracy"]) == {"none", "text", "random", "energy"}
    assert d["erasers"]["random"]["ranks"] == d["erasers"]["text"]["ranks"]
    assert d["settings"]["affine"] is False and d["settings"]["scope"] == "audio"
    for probes in (d["probes"], d["fit_probes"]):
        assert set(probes) == {"text", "energy"} and set(probes["text"]) == {"none", "text", "random"}
        for scores in probes["text"].values():
            assert [s["layer"] for s in scores] == [0, 1] and all(0 <= s["accuracy"] <= 1 for s in scores)
            assert all(0 <= s["balanced_accuracy"] <= 1 and 0 < s["balanced_chance"] <= 1 for s in scores)
    # the fitting-data probes train on every labelled fitting position and test on every evaluation position
    held = d["probes"]["text"]["none"][0]
    assert d["fit_probes"]["text"]["none"][0]["n_test"] == held["n_train"] + held["n_test"]
    text = leace.text_concept(words, fit, seconds_per_position(system), top_k=8)
    audios = {it.id: runner.audio(task, it, Condition()) for it in fit + evaluation}
    direct = leace.fit_probe_accuracy(system, task, fit, [audios[it.id] for it in fit], evaluation,
                                      [audios[it.id] for it in evaluation], text, [0, 1])
    assert [s.to_dict() for s in direct.values()] == d["fit_probes"]["text"]["none"]
    again = leace.leace_experiment(SyntheticRunner(disk_cache=False, progress=False), system, task, fit,
                                   evaluation, **kw)
    assert json.dumps(again.to_dict(), sort_keys=True) == json.dumps(d, sort_keys=True)
    with pytest.raises(ValueError, match="disjoint.*" + evaluation[0].id):
        leace.leace_experiment(runner, system, task, [evaluation[0], *fit], evaluation, **kw)


def test_default_erasure_layers_are_the_papers_nine_spread_over_the_decoder():
    class Deep:
        decoder_layers = [None] * 30

    class Shallow:
        decoder_layers = [None] * 4

    assert leace.paper_layers(Deep()) == [0, 4, 7, 11, 14, 18, 22, 25, 29]
    assert leace.paper_layers(Shallow()) == [0, 1, 2, 3]        # fewer layers than 9: every one


# -- the untrained reference model -----------------------------------------------------------------------------
def test_reference_model_erasure_changes_scores_and_keeps_them_deterministic(task):
    from harness.systems.reference import assemble

    ref = assemble.system()
    item = task.items[0]
    audio = synthetic_clip(item, seconds=3.0)
    big = _full_eraser(ref, [1, 15])
    rnd = leace.random_eraser(leace.make_eraser("rank8", {k: torch.eye(576)[:, :8] for k in (1, 15)},
                                                {k: torch.eye(576)[:8] for k in (1, 15)}), seed=0)
    assert rnd.ranks == {1: 8, 15: 8}
    plain = ref.answer(task, item, audio).scores
    erased = leace.ErasedSystem(ref, big).answer(task, item, audio).scores
    assert erased != plain
    assert leace.ErasedSystem(ref, big).answer(task, item, audio).scores == erased
    assert seconds_per_position(ref) == pytest.approx(0.08)
