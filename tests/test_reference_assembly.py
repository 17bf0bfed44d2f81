"""Reference speech-LLM parts: the CTranslate2 Whisper encoder converted to torch, and its Voxtral assembly.

The encoder must compute what faster-whisper computes from the very same log-mels; the assembled model must
hold the offline backbone and the converted encoder *exactly*, and answer through the standard adapter.
"""
import numpy as np
import pytest
import torch

from harness import tts
from harness.systems.reference import assemble as A
from harness.systems.reference import whisper_ct2

CLIPS = ("The quick brown fox jumps over the lazy dog.",
         "The central bank raised interest rates again to fight stubborn inflation.")


def _frame_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


@pytest.fixture(scope="module")
def encoder():
    return whisper_ct2.load_encoder()


@pytest.fixture(scope="module")
def clips():
    return [tts.synthesize(text) for text in CLIPS]


def _faster_whisper(compute_type):
    from faster_whisper import WhisperModel

    from harness.asr import packaged_model_dir

    return WhisperModel(str(packaged_model_dir()), device="cpu", compute_type=compute_type, cpu_threads=2)


# -- the conversion --------------------------------------------------------------------------------------
def test_reader_parses_the_packaged_file():
    header, variables = whisper_ct2.read_ct2_variables(whisper_ct2.model_bin(), prefix="encoder/")
    assert header["spec"] == "WhisperSpec" and header["version"] == 6
    assert whisper_ct2.encoder_config_dict(variables) == dict(
        d_model=384, num_mel_bins=80, encoder_layers=4, encoder_attention_heads=6, encoder_ffn_dim=1536,
        max_source_positions=1500)


def test_only_the_encoder_is_converted_and_it_loads_strictly(encoder):
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    _, sd = whisper_ct2.convert()
    assert not any("decoder" in k or "proj_out" in k for k in sd)       # no WhisperForConditionalGeneration
    assert set(sd) == set(encoder.state_dict())                         # strict: nothing missing, nothing extra
    assert isinstance(encoder, WhisperEncoder) and not encoder.training
    assert all(p.dtype == torch.float32 for p in encoder.parameters())


def test_dequantisation_divides_by_the_per_row_scale():
    w = np.array([[0.5, -1.0], [0.02, 0.01]], dtype=np.float32)
    scale = 127.0 / np.abs(w).max(axis=1)                     # how ctranslate2 quantises to int8
    q = np.rint(w * scale[:, None]).astype(np.int8)
    out = whisper_ct2._dequantise({"x/weight": q, "x/weight_scale": scale.astype(np.float32)})
    assert set(out) == {"x/weight"}
    assert (np.abs(out["x/weight"] - w) <= np.abs(w).max(axis=1, keepdims=True) / 254 + 1e-7).all()


def test_conversion_is_cached_and_a_corrupt_entry_is_redone(tmp_cache):
    cfg, sd, digest = whisper_ct2.cached_encoder_state()
    files = sorted((tmp_cache / "reference").glob("whisper-encoder-*.safetensors"))
    assert len(files) == 1 and digest in (tmp_cache / "reference" / (files[0].stem + ".json")).read_text()
    files[0].write_bytes(b"garbage")
    cfg2, sd2, _ = whisper_ct2.cached_encoder_state()
    assert cfg2 == cfg and all(torch.equal(sd[k], sd2[k]) for k in sd)


@pytest.mark.parametrize("chunk_seconds", [30, 10])
def test_encoder_equals_faster_whisper_float32(encoder, clips, chunk_seconds):
    """Same log-mels into both. The package stores float16 weights; ct2 float32 widens them exactly as we do,
    so only summation order differs: per-frame cosine ≥ 0.9999, relative error ≤ 1e-4."""
    fw = _faster_whisper("float32")
    enc = encoder
    if chunk_seconds != 30:  # a shorter window: the first rows of the position table (as assemble() builds it)
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        cfg, sd, _ = whisper_ct2.cached_encoder_state()
        n = chunk_seconds * 50
        enc = WhisperEncoder(whisper_ct2.whisper_config(dict(cfg, max_source_positions=n))).eval()
        enc.load_state_dict({**sd, "embed_positions.weight": sd["embed_positions.weight"][:n]})
    for audio in clips:
        feats = whisper_ct2.feature_extractor(chunk_seconds)(audio.samples, sampling_rate=16_000,
                                                             return_tensors="np")["input_features"]
        ref = np.array(fw.encode(feats))
        with torch.no_grad():
            ours = enc(torch.from_numpy(feats)).last_hidden_state.numpy()
        assert ours.shape == ref.shape == (1, chunk_seconds * 50, 384)
        assert _frame_cosine(ours, ref).min() > 0.9999
        assert np.linalg.norm(ours - ref) / np.linalg.norm(ref) < 1e-4


def test_encoder_close_to_faster_whisper_int8(encoder, clips):
    """The cascade's ASR runs int8 (per-row weight quantisation, ~0.4% of a row's range per weight): the
    float encoder agrees on average (mean per-frame cosine > 0.99; measured ~0.9995), not frame for frame."""
    fw = _faster_whisper("int8")
    for audio in clips:
        feats = whisper_ct2.feature_extractor(30)(audio.samples, sampling_rate=16_000,
                                                  return_tensors="np")["input_features"]
        with torch.no_grad():
            ours = encoder(torch.from_numpy(feats)).last_hidden_state.numpy()
        assert _frame_cosine(ours, np.array(fw.encode(feats))).mean() > 0.99


# -- the assembly ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def backbone():
    from harness.lm import load_backbone

    return load_backbone()


@pytest.fixture(scope="module")
def reference(backbone):
    from harness.systems.hf_native import HFNativeSpeechLLM

    model, processor, info = A.assemble(backbone=backbone)
    return HFNativeSpeechLLM(model, processor, "voxtral", model_id=info["model_id"], revision=info["revision"],
                             name="ref-untrained"), info


def test_language_model_is_the_offline_backbone_exactly(reference, backbone):
    system, _ = reference
    ours, theirs = system.model.state_dict(), backbone.model.state_dict()
    for key, value in theirs.items():
        mine = ours[key] if key == "lm_head.weight" else ours["model.language_model." + key[len("model."):]]
        assert torch.equal(mine, value), key
    assert system.model.config.text_config.vocab_size == len(system.backbone.tokenizer) == 49152
    ids = backbone.prompt_ids([{"role": "user", "content": "Is this positive or negative? Text: lovely day"}])
    with torch.no_grad():
        a = system.model(input_ids=torch.tensor([ids])).logits
        b = backbone.model(input_ids=torch.tensor([ids])).logits
    assert torch.equal(a, b)


def test_audio_tower_is_the_converted_encoder(reference):
    system, info = reference
    _, sd, digest = whisper_ct2.cached_encoder_state()
    tower = system.model.model.audio_tower.state_dict()
    n = info["chunk_seconds"] * 50
    assert set(tower) == set(sd) and digest == info["whisper_model_bin_sha256"]
    for key, value in sd.items():
        assert torch.equal(tower[key], value[:n] if key == "embed_positions.weight" else value), key


def test_projector_shape_trainability_and_scale(reference):
    system, info = reference
    proj = system.model.model.multi_modal_projector
    assert proj.linear_1.weight.shape == (576, 4 * 384) and proj.linear_2.weight.shape == (576, 576)
    trainable = {n for n, p in system.model.named_parameters() if p.requires_grad}
    assert trainable == {f"model.multi_modal_projector.linear_{i}.weight" for i in (1, 2)}
    assert info["projector_params"] == 1_216_512
    with torch.no_grad():
        out = system.model.get_audio_features(A.calibration_features(info["chunk_seconds"])).pooler_output
    assert out.shape == (info["audio_embeddings_per_clip"], 576) == (info["chunk_seconds"] * 50 // 4, 576)
    rms = system.model.get_input_embeddings().weight.pow(2).mean().sqrt()
    torch.testing.assert_close(out.pow(2).mean().sqrt(), rms, rtol=1e-4, atol=0)


def test_projector_init_is_seeded_and_state_round_trips(reference, backbone):
    system, info = reference
    model = system.model
    saved = A.projector_weights(model)
    A.init_projector(model, seed=0)
    assert A.state_digest(A.projector_weights(model)) == info["projector_sha256"]
    A.init_projector(model, seed=1)
    assert A.state_digest(A.projector_weights(model)) != info["projector_sha256"]
    model.model.multi_modal_projector.load_state_dict(saved)
    assert A.state_digest(A.projector_weights(model)) == info["projector_sha256"]


def test_audio_token_reuses_an_existing_id(reference):
    system, info = reference
    tok = system.backbone.tokenizer
    assert system.audio_token_id == info["audio_token_id"] == tok.convert_tokens_to_ids(A.AUDIO_TOKEN) == 14
    assert len(tok) == 49152
    assert tok(tok.audio_token * 3, add_special_tokens=False)["input_ids"] == [14, 14, 14]


def test_longer_audio_than_the_window_is_refused(reference):
    system, info = reference
    too_long = np.zeros(16_000 * (info["chunk_seconds"] + 1), dtype=np.float32)
    with pytest.raises(ValueError, match="window"):
        system.processor.feature_extractor(too_long, sampling_rate=16_000)


def test_answers_two_items_through_the_adapter_deterministically(reference):
    from harness.runner import Runner
    from harness.tasks import load_task

    system, info = reference
    task = load_task("sentiment")
    items = task.subset(2)
    first = Runner(disk_cache=False, progress=False).answers(system, task, items)
    second = Runner(disk_cache=False, progress=False).answers(system, task, items)
    assert [a.to_json() for a in first] == [a.to_json() for a in second]
    assert all(set(a.scores) == set(it.options) and a.choice in it.options for a, it in zip(first, items))
    inputs = system.inputs_for(task, items[0], Runner().clean_audio(items[0]))
    assert len(system.audio_positions(inputs)) == info["audio_embeddings_per_clip"]
    assert info["revision"] in system.fingerprint
