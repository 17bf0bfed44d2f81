"""Logit lens at the audio positions: the metric's normalisation, the control, and the projection itself.

The projection must be the model's own: at the last residual entry the lens equals the model's logits at
the audio positions, on tiny configs of every native class and on the untrained reference model.
"""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from harness.audio import Audio
from harness.probes import lens
from harness.systems.hf_native import HFNativeSpeechLLM
from harness.tasks import Item, Task
from tests import tiny_models


def synthetic_clip(item: Item, seconds: float = 2.0) -> Audio:
    """Cheap deterministic speech stand-in: a tone whose loudness varies (so frame energy has structure)."""
    rng = np.random.default_rng(len(item.text))
    t = np.arange(int(16000 * seconds)) / 16000
    envelope = 0.05 + 0.25 * (0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t + len(item.text)))
    x = envelope * np.sin(2 * np.pi * (180 + 7 * len(item.text)) * t) + 0.01 * rng.standard_normal(t.size)
    return Audio(x.astype(np.float32), item_id=item.id)


def tiny_system(family: str) -> HFNativeSpeechLLM:
    model, processor = tiny_models.build(family)
    return HFNativeSpeechLLM(model, processor, family, model_id=f"tiny/{family}", revision="random")


from tests.probe_fixtures import system, task  # noqa: E402,F401  (shared fixtures)


# -- normalisation and the metric -----------------------------------------------------------------------------
@pytest.mark.parametrize("piece, expected", [
    ("Ġmovie", "movie"), (" Movie", "movie"), ("▁Great", "great"), ("##ing", "ing"), ("Hello!", "hello"),
    ("'s", "s"), (" the", None), ("And", None), (",", None), (" ...", None), ("\ufffd", None), ("", None),
    ("42", "42"),
])
def test_normalise_piece(piece, expected):
    assert lens.normalise_piece(piece) == expected


def test_bag_precision_counts_distinct_tokens_by_default():
    ref = {"movie", "great"}
    assert lens.bag_precision(["movie", "movie", "movie", "noise"], ref) == 0.5
    assert lens.bag_precision(["movie", "movie", "movie", "noise"], ref, distinct=False) == 0.75
    assert lens.bag_precision([], ref) == 0.0          # read nothing → recovered nothing


def test_derangement_is_seeded_and_has_no_fixed_point():
    for n in (2, 3, 10, 57):
        perm = lens.derangement(n, seed=3)
        assert sorted(perm) == list(range(n)) and all(perm[i] != i for i in range(n))
        assert perm == lens.derangement(n, seed=3)
    assert lens.derangement(10, seed=1) != lens.derangement(10, seed=2)
    with pytest.raises(ValueError, match="at least 2 items"):
        lens.derangement(1)


def test_token_normaliser_on_the_real_tokenizer():
    tok = tiny_models.tokenizer("voxtral")
    norm = lens.TokenNormaliser(tok)
    ref = norm.reference("The movie was absolutely wonderful, truly.")
    assert {"movie", "wonderful", "absolutely", "truly"} <= ref and "the" not in ref and "," not in ref
    ids = tok(" movie, the wonderful!", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert norm.bag(ids) == ["movie", "wonderful"]


class _PlantedLens:
    """A stand-in SpeechLLM whose lens reads the item's own transcript tokens at the last entry (and noise
    before): the curve must then reach 1 there and the mismatched control must stay below it."""

    def __init__(self, tokenizer, n_entries=3):
        self.name, self.audio_token_id, self.n_entries = "planted", -1, n_entries
        self.backbone = SimpleNamespace(tokenizer=tokenizer)
        self.vocab = len(tokenizer)

    def hidden_states_at_audio(self, task, item, audio):
        ids = self.backbone.tokenizer(" " + item.text, add_special_tokens=False)["input_ids"]
        noise = self.backbone.tokenizer(" zebra quantum", add_special_tokens=False)["input_ids"]
        rows = [[noise[k % len(noise)] for k in range(len(ids))]] * (self.n_entries - 1) + [ids]
        return torch.tensor(rows, dtype=torch.float32).unsqueeze(-1)   # [entries, n, 1]: the id itself

    def lens_logits(self, h):
        return torch.nn.functional.one_hot(h[..., 0].long(), self.vocab).float()

    def lens_top1(self, h):
        return self.lens_logits(h).argmax(-1)


def test_planted_lens_reads_the_transcript_at_the_last_entry():
    tok = tiny_models.tokenizer("voxtral")
    texts = ["the movie was wonderful", "a dreadful boring plot", "great acting and music", "slow sad ending"]
    items = [Item(f"i{k}", "t", t, "positive", ("positive", "negative")) for k, t in enumerate(texts)]
    task = Task("t", "classification", True, "Classify.", ("positive", "negative"), tuple(items))
    res = lens.logit_lens(_PlantedLens(tok), task, items, [synthetic_clip(it) for it in items], n_resamples=200)
    assert res.layers == (0, 1, 2) and res.best_layer == 2
    assert res.precision.mean.tolist() == [0.0, 0.0, 1.0]
    assert res.control.mean[2] < 0.5 and res.difference.mean[2] > 0.5
    assert (res.precision.ci_low <= res.precision.mean).all() and (res.precision.mean <= res.precision.ci_high).all()
    assert res.readings["i0"] == "the movie was wonderful"
    assert sorted(res.control_of) == sorted(res.item_ids) and all(a != b for a, b in zip(res.control_of, res.item_ids))


def test_misaligned_audio_is_refused(task):
    items = list(task.items[:2])
    with pytest.raises(ValueError, match=repr(items[0].id)):
        lens.check_aligned(items, [synthetic_clip(items[1]), synthetic_clip(items[0])])
    with pytest.raises(ValueError, match="2 items but 1 audio"):
        lens.check_aligned(items, [synthetic_clip(items[0])])


# -- the projection on every native class -----------------------------------------------------------------------
def test_last_entry_equals_the_models_own_logits(system, task):
    item = task.items[0]
    audio = synthetic_clip(item)
    hs = system.hidden_states_at_audio(task, item, audio)
    own = lens.own_logits_at_audio(system, task, item, audio)
    assert hs.shape[:2] == (len(system.decoder_layers) + 1, own.shape[0])
    torch.testing.assert_close(system.lens_logits(hs[-1]), own, rtol=1e-4, atol=1e-4)
    top1 = lens.top1_tokens(system, task, item, audio)
    assert top1.shape == (len(system.decoder_layers) + 1, own.shape[0])
    assert (top1[-1] == own.argmax(-1).numpy()).all()


def test_top1_tokens_are_each_layers_own_lens_argmax(system, task):
    """Batching the layers and reading each distinct row once must not change what any layer reads."""
    item = task.items[0]
    audio = synthetic_clip(item)
    hs = system.hidden_states_at_audio(task, item, audio)
    expected = np.stack([system.lens_logits(h).argmax(-1).numpy() for h in hs])
    assert (lens.top1_tokens(system, task, item, audio) == expected).all()
    assert (lens.top1_tokens(system, task, item, audio, [2, 0]) == expected[[2, 0]]).all()


def test_logit_lens_end_to_end_is_deterministic(system, task, tmp_path):
    items = list(task.items[:3])
    audios = [synthetic_clip(it) for it in items]
    first = lens.logit_lens(system, task, items, audios, n_resamples=200, cache=False)   # both computed
    second = lens.logit_lens(system, task, items, audios, n_resamples=200, cache=False)
    d = first.to_dict()
    assert json.loads(json.dumps(d)) == second.to_dict()
    n = len(system.decoder_layers) + 1
    assert d["layers"] == list(range(n)) and all(len(d[k]["mean"]) == n for k in ("precision", "control", "difference"))
    assert all(0.0 <= v <= 1.0 for v in d["precision"]["mean"] + d["control"]["mean"])
    assert d["best_layer"] in d["layers"] and set(d["readings_at_best_layer"]) == {it.id for it in items}
    fig = lens.plot_lens(first, tmp_path / "lens.png")
    assert (tmp_path / "lens.png").stat().st_size > 1000
    fig.clf()


def test_layer_subset_and_range_errors(system, task):
    item = task.items[0]
    audio = synthetic_clip(item)
    assert lens.top1_tokens(system, task, item, audio, [0, 1]).shape[0] == 2
    with pytest.raises(ValueError, match="layer 99 out of range"):
        lens.top1_tokens(system, task, item, audio, [99])


# -- the untrained reference model (a real 30-layer backbone) ----------------------------------------------------
@pytest.fixture(scope="module")
def reference(task):
    """(the untrained reference model, one item, its 3 s clip, its residual stream at the audio positions)."""
    from harness.systems.reference import assemble

    ref = assemble.system()
    item = task.items[0]
    audio = synthetic_clip(item, seconds=3.0)
    return ref, item, audio, ref.hidden_states_at_audio(task, item, audio)


def test_reference_lens_equals_its_own_logits(task, reference):
    ref, item, audio, hs = reference
    own = lens.own_logits_at_audio(ref, task, item, audio)
    assert hs.shape == (len(ref.decoder_layers) + 1, 125, ref.model.config.text_config.hidden_size)
    torch.testing.assert_close(ref.lens_logits(hs[-1]), own, rtol=1e-4, atol=2e-3)
    assert (ref.lens_logits(hs[-1]).argmax(-1) == own.argmax(-1)).float().mean() > 0.99


def test_screened_top1_equals_the_float32_argmax_on_every_layer_of_the_reference_model(reference, monkeypatch):
    """The bfloat16 screen decides nothing: on a real 30-layer backbone's lens rows (every entry, where a middle
    layer's lens is flat and the screen's bound is loosest) the top-1 equals the float32 argmax row for row. The
    screen runs here on any CPU (without native bfloat16 it is slower, equally exact)."""
    from harness.systems import lens_top1

    monkeypatch.setattr(lens_top1, "screen_pays", lambda: True)
    ref, _, _, hs = reference
    rows = torch.unique(hs.reshape(-1, hs.shape[-1]), dim=0)
    assert torch.equal(ref.lens_top1(rows), (ref.final_norm(rows) @ ref.unembedding.weight.T).argmax(-1))


def test_screen_bound_holds_and_near_ties_fall_back_to_float32(monkeypatch):
    """The stated bound covers the bfloat16 screen's actual error; rows whose best logits are closer than the bound
    (here: two vocabulary rows almost equal) are decided in float32, ties going to the lowest id. The screen runs
    here even on a CPU without native bfloat16 (slower there, equally exact)."""
    from harness.systems import lens_top1
    from harness.systems.lens_top1 import exact_top1, screen_error

    monkeypatch.setattr(lens_top1, "screen_pays", lambda: True)

    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(3000, 64, generator=gen)
    weight[7] = weight[5] * (1 + 1e-6)        # a near-tie the screen cannot separate
    weight[11] = weight[9]                     # an exact tie
    weight[40:70] = weight[30] * (1 + 1e-7 * torch.arange(30)[:, None])   # more near-ties than candidates
    h = torch.cat([torch.randn(200, 64, generator=gen) * 3, weight[[30, 5, 9]] * 4])
    z = h @ weight.T
    screen = (h.bfloat16() @ weight.bfloat16().T).float()
    bound = screen_error(h, weight.norm(dim=-1).max(), screen.abs().amax(-1))
    assert ((screen - z).abs().amax(-1) <= bound).all()
    top = exact_top1(h, weight)
    assert torch.equal(top, z.argmax(-1))
    assert top[-1] == 9                        # of the tied rows 9 and 11, the lowest id
    best, _ = screen[-3].topk(lens_top1.CANDIDATES)
    assert best[-1] >= best[0] - 2 * bound[-3]   # row 30's candidates cannot decide: it took the float32 path
