"""The known-answer front ends: what reaches the audio positions is what their construction says.

ref-transcriber must put exactly the backbone's input embeddings of the ASR's timed tokens at the positions where
they are heard (and the permuted mutant must not); ref-prosody's input must depend on the frame energy alone, so two
clips with the same energy contour and different spectra are indistinguishable to it.
"""
import json

import numpy as np
import pytest
import torch

from harness import tts
from harness.asr import load_asr
from harness.positions import position_tokens
from harness.systems.reference import frontends as F

CLIP = "The football club signed a new goalkeeper on Friday."


@pytest.fixture(scope="module")
def transcriber():
    return F.transcriber()


@pytest.fixture(scope="module")
def clip():
    return tts.synthesize(CLIP)


def _features(system, audio):
    return system.processor.feature_extractor(audio.samples, sampling_rate=16_000,
                                              return_tensors="pt")["input_features"]


def test_transcriber_writes_the_asr_tokens_own_embeddings_where_they_are_heard(transcriber, clip):
    feats = _features(transcriber, clip)
    embeds = transcriber.model.get_audio_features(feats).pooler_output        # [positions, hidden]
    words = transcriber.model.model.audio_tower.last_words[0]
    assert " ".join(w.text for w in words) == load_asr().transcribe(clip).text     # the cascade's own transcript
    tokens, _ = position_tokens(transcriber.backbone, words, embeds.shape[0], F.SECONDS_PER_POSITION, layout="onset")
    table = transcriber.model.get_input_embeddings().weight
    filler = transcriber.backbone.reply_ids(" ")[0]
    expected = table[[filler if t is None else t for t in tokens]]
    assert torch.equal(embeds, expected)                                      # identity projector: exact
    assert sum(t is not None for t in tokens) >= len(words)                   # every word is somewhere
    assert embeds.shape[0] == 125                                             # 10 s window, 0.08 s a position


def test_the_answering_path_sees_those_embeddings_at_the_audio_positions(transcriber, clip):
    from harness.tasks import load_task

    task = load_task("keyword_topic")
    item = task.items[0]
    inputs = transcriber.inputs_for(task, item, clip)
    prefix = transcriber.prefix_embeds(inputs)
    positions = transcriber.audio_positions(inputs)
    audio = transcriber.model.get_audio_features(inputs["input_features"]).pooler_output
    assert torch.allclose(prefix[positions], audio.to(prefix.dtype))


def test_decoded_words_are_read_back_from_disk_by_a_fresh_tower_and_a_bad_entry_is_decoded_again(
        transcriber, clip, tmp_path, monkeypatch):
    monkeypatch.setenv("CASCADE_EQ_CACHE", str(tmp_path))
    tower = transcriber.model.model.audio_tower
    feats = _features(transcriber, clip)[0].numpy()
    decode, decoded = tower._guarded, []

    def counted(features):
        decoded.append(1)
        return decode(features)

    monkeypatch.setattr(tower, "_guarded", counted)
    monkeypatch.setattr(tower, "_memo", {})
    first = tower.words(feats)
    [entry] = (tmp_path / "transcripts" / "tower").rglob("*.json")
    monkeypatch.setattr(tower, "_memo", {})                      # a fresh process: nothing in memory
    assert tower.words(feats) == first and len(decoded) == 1     # read from disk, not decoded
    entry.write_text("{not json")
    monkeypatch.setattr(tower, "_memo", {})
    from harness.cache import CacheWarning

    with pytest.warns(CacheWarning, match="rejected"):
        assert tower.words(feats) == first and len(decoded) == 2  # rejected, decoded again, rewritten
    assert json.loads(entry.read_text())["key"] == entry.stem      # a checked entry, as the ASR's transcripts are


def test_permuted_mutant_writes_other_tokens(transcriber, clip):
    mutant = F.transcriber(permute_seed=0)
    feats = _features(transcriber, clip)
    a = transcriber.model.get_audio_features(feats).pooler_output
    b = mutant.model.get_audio_features(feats).pooler_output
    assert mutant.backbone.revision != transcriber.backbone.revision
    same_rows = (a == b).all(dim=-1).float().mean()
    assert same_rows < 0.05                      # (a fixed point of the permutation is ~1/49152 likely)


def test_frame_energy_undoes_whisper_scaling():
    power = torch.rand(1, 80, 50) + 0.1                                       # mel power, no floor reached
    feats = (torch.log10(power) + 4) / 4
    got = F.frame_energy(feats)
    expected = torch.log10(power.sum(1))
    assert torch.allclose(got, expected - expected.amax(-1, keepdim=True), atol=1e-5)


def test_prosody_input_depends_on_energy_only():
    """Same per-frame energy, different spectra (the power moved between mel bins) → the same tower output."""
    rng = np.random.default_rng(0)
    frames = 1000
    total = torch.tensor(rng.uniform(0.5, 5.0, frames), dtype=torch.float32)
    shares_a = torch.tensor(rng.dirichlet(np.ones(80), frames).T, dtype=torch.float32)   # [80, frames]
    shares_b = torch.tensor(rng.dirichlet(np.ones(80) * 0.2, frames).T, dtype=torch.float32)
    tower = F.EnergyContourTower(intermediate_size=1536)
    outs = [tower((torch.log10(total * s) + 4).unsqueeze(0) / 4).last_hidden_state for s in (shares_a, shares_b)]
    assert not torch.allclose(shares_a, shares_b)
    assert torch.allclose(outs[0], outs[1], atol=1e-5)
    assert outs[0].shape == (1, frames // F.MEL_FRAMES_PER_POSITION * 4, 384)
    # and it does follow the energy: a louder stretch changes the positions around it
    louder = total.clone()
    louder[400:480] *= 50
    out_l = tower((torch.log10(louder * shares_a) + 4).unsqueeze(0) / 4).last_hidden_state
    assert not torch.allclose(outs[0], out_l)


@pytest.fixture(scope="module")
def prosody():
    """(backbone, model, processor) of ref-prosody, assembled once: each test loads its whole projector first."""
    from harness.lm import load_backbone

    backbone = load_backbone()
    model, proc, _ = F.prosody_assembled(backbone=backbone)
    return backbone, model, proc


@pytest.mark.parametrize("rate, bias", [("fast", 1.0), ("slow", -1.0)])
def test_prosody_writes_the_filler_while_the_sound_lasts_and_the_decided_rate_words_after(prosody, clip, rate, bias):
    """With a read-out that decides ``rate`` whatever it hears (w = 0, b = ±1), the positions that overlap the sound
    hold the " " filler's embedding and every later position the rate word of its slot — exactly, by construction."""
    backbone, model, proc = prosody
    tower = model.model.audio_tower
    model.model.multi_modal_projector.load_state_dict(F.readout_state(model, backbone, np.zeros(tower.width), bias))
    feats = proc.feature_extractor(clip.samples, sampling_rate=16_000, return_tensors="pt")["input_features"]
    embeds = model.get_audio_features(feats).pooler_output                   # [positions, hidden]
    table = model.get_input_embeddings().weight
    ended = int(np.ceil(F.clip_seconds(feats[0].numpy()) / F.SECONDS_PER_POSITION))
    assert 0 < ended < embeds.shape[0] and abs(ended * F.SECONDS_PER_POSITION - clip.duration) < 0.3
    filler = table[backbone.reply_ids(" ")[0]]
    torch.testing.assert_close(embeds[:ended], filler.expand(ended, -1), rtol=0, atol=1e-5)
    words = [backbone.reply_ids(" " + w)[0] for w in F.RATE_WORDS[rate]]
    expected = table[[words[p % F.RATE_SLOTS] for p in range(ended, embeds.shape[0])]]
    torch.testing.assert_close(embeds[ended:], expected, rtol=0, atol=1e-5)
