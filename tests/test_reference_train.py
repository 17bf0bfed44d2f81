"""Projector training for the reference speech-LLMs, at smoke scale (a few steps on a handful of clips).

Checks: the training data never touches an evaluation item; the student sees exactly what the adapter builds;
the teacher answers as the cascade's code would; training changes only the trainable parts; a tiny batch is
overfit; the written weights + manifest load back through ``assemble``.
"""
import json

import pytest
import torch

from harness.reference import data as D
from harness.reference import train as T
from harness.systems.reference.trained import load_trained, load_weights

SHORT = {"topic": 1, "sentiment": 1, "commonsense": 1, "speaking_rate": 1}


@pytest.fixture(scope="module")
def examples():
    return D.examples(0, rate_extra=2)


def test_training_data_is_disjoint_from_every_evaluation_item(examples):
    fit, held, extra = examples
    evals = D.eval_texts()
    assert len(fit) + len(held) == 940 and len(held) == len(D.TRAIN_TASKS) * D.HELDOUT_PER_TASK
    assert not {D._norm(e.item.text) for e in fit + held + extra} & set(evals)
    assert not {e.item.id for e in fit} & {e.item.id for e in held}
    assert all("-train-" in e.item.id for e in fit + held + extra)
    rate = [e for e in fit if e.task.name == D.RATE_TASK]
    assert {e.length_scale for e in rate} == {0.7, 1.45} and all(e.label for e in rate)
    other = [e.length_scale for e in fit if e.task.name != D.RATE_TASK]
    assert min(other) >= D.RATE_RANGE[0] and max(other) <= D.RATE_RANGE[1] and len(set(other)) > 100
    assert [e.label for e in extra] == ["slow", "fast"]
    assert D.examples(0, rate_extra=2) == examples                       # seeded


def test_scrambled_sentences_are_seeded_word_salad_from_the_fit_vocabulary_only(examples):
    fit, held, _ = examples
    got = D.scrambled(fit, 50, seed=0)
    assert got == D.scrambled(fit, 50, seed=0) and got != D.scrambled(fit, 50, seed=1)
    vocab = {D._word(t) for e in fit for t in e.transcript.split()}
    held_only = {D._word(t) for e in held for t in e.transcript.split()} - vocab
    for e in got:
        words = [w.lower() for w in e.transcript.rstrip(".").split()]
        assert 4 <= len(words) <= 12 and set(words) <= vocab and not set(words) & held_only
        assert e.task is None and e.item.task == "scrambled" and D.RATE_RANGE[0] <= e.length_scale <= D.RATE_RANGE[1]
    assert len({e.item.id for e in got}) == 50 and D.check_disjoint(got) == 50
    assert D.data_hash(fit, held) != D.data_hash(fit, held, got)     # they change the manifest's data digest
    with pytest.raises(ValueError, match="no words"):
        D.scrambled([], 1)
    with pytest.raises(ValueError, match="n=-1"):
        D.scrambled(fit, -1)


def test_an_evaluation_sentence_in_training_is_refused(examples):
    from harness.tasks import load_task

    leak = load_task("sentiment").items[0]
    ex = D.Example(examples[0][0].task, leak, 1.0)
    with pytest.raises(D.DisjointnessError):
        D.check_disjoint([ex])


def test_a_clip_longer_than_the_window_fails_clearly(examples):
    import numpy as np

    from harness.audio import Audio

    ex = examples[0][0]
    long = Audio.from_array((0.1 * np.ones(16_000 * 11)).astype(np.float32), 16_000, "x")
    with pytest.raises(ValueError, match="longer than the 10 s audio window"):
        D.check_window([(ex, long, ex.transcript)], 10)


@pytest.fixture(scope="module")
def clips(examples):
    fit, held, extra = examples
    picked = []
    for name, n in SHORT.items():
        pool = sorted((e for e in fit if e.task.name == name), key=lambda e: len(e.item.text))
        picked += pool[:n]
    return D.synthesize(picked, progress=False), D.synthesize(held[:1], progress=False)


@pytest.fixture(scope="module")
def parts():
    from harness.lm import load_backbone
    from harness.systems.reference.assemble import assemble

    backbone = load_backbone()
    return backbone, assemble(seed=0, backbone=backbone)


@pytest.fixture
def fresh(parts):
    """The shared assembled model, restored to its initial state after each test."""
    backbone, (model, proc, info) = parts
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    yield backbone, (model, proc, info)
    model.load_state_dict(saved)


def test_student_inputs_equal_the_adapters_and_teacher_answers_like_the_cascade(fresh, clips):
    from harness import prompts
    from harness.systems.base import answer_from_prefix

    backbone, assembled = fresh
    tr = T.Trainer("ref-cascade", assembled=assembled, backbone=backbone, progress=lambda m: None)
    fit, _ = clips
    ex, audio, text = next(c for c in fit if c[0].task.kind == "multiple_choice")
    tasks = {n: __import__("harness.tasks", fromlist=["load_task"]).load_task(n) for n in D.TRAIN_TASKS}
    import random

    s = tr.sample("own", fit.index((ex, audio, text)), ex, tasks, {"commonsense": list(tasks["commonsense"].train)},
                  random.Random(0))
    embeds, mask, plen = tr.merged_embeds([s], fit)
    adapter = tr.system.prefix_embeds(tr.system.prepare(prompts.messages(ex.task, ex.item, tr.system.audio_slot), audio))
    assert plen[0] == adapter.shape[0] and mask.all()
    torch.testing.assert_close(embeds[0, : plen[0]], adapter, rtol=1e-5, atol=1e-6)
    cascade = answer_from_prefix(backbone, ex.task, ex.item,
                                 backbone.embed(backbone.prompt_ids(prompts.messages(ex.task, ex.item, text))))
    assert s.extra["teacher_choice"] == cascade.choice
    assert s.reply == backbone.reply_ids(cascade.choice) + backbone.reply_ids("<|im_end|>")
    assert s.teacher_idx.shape == s.teacher_logp.shape == (len(s.reply), 64)
    torch.testing.assert_close(s.teacher_logp.exp().sum(-1), torch.ones(len(s.reply)))


def test_two_steps_change_only_the_projector_and_write_loadable_weights(fresh, clips, tmp_path):
    from harness.systems.reference.assemble import assemble, projector_weights, state_digest

    backbone, assembled = fresh
    before = {k: v.clone() for k, v in assembled[0].state_dict().items()}
    fit, held = clips
    out = tmp_path / "ref-cascade"
    m = T.train("ref-cascade", 2, out_dir=out, fit=fit, heldout=held, assembled=assembled, backbone=backbone,
                hyper=dict(batch=2, check_every=2, check_n=1, check_max_new_tokens=4, log_every=1),
                progress=lambda msg: None)
    after = assembled[0].state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"model.multi_modal_projector.linear_1.weight", "model.multi_modal_projector.linear_2.weight"}
    assert m["steps"] == 2 and all(torch.isfinite(torch.tensor(c["loss"])) for c in m["curve"]["points"])
    kinds = {k for c in m["curve"]["points"] for k in c} & {"repeat", "own", "other"}
    assert kinds, m["curve"]
    assert m["checks"] and m["checks"][-1]["step"] == 2 and m["checks"][-1]["repeat_wer"] >= 0

    manifest = json.loads((out / "manifest.json").read_text())
    assert {"whisper_model_bin_sha256", "backbone_revision", "data", "code_version", "seed", "hyper",
            "curve", "projector_sha256"} <= set(manifest)
    assert manifest["data"]["n_fit"] == len(fit) and len(manifest["data"]["sha256"]) == 64
    assert (out / "projector.safetensors").stat().st_size <= 20 * 2**20
    assert not (out / "encoder.safetensors").exists()
    proj, enc = load_weights(out)
    assert enc == {} and state_digest(proj) == manifest["projector_sha256"] == state_digest(projector_weights(assembled[0]))
    model, _, info = assemble(projector_state=proj, backbone=backbone)
    assert info["projector_sha256"] == manifest["projector_sha256"]


def test_asking_for_cuda_without_a_gpu_fails_clearly_before_loading_anything():
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: the refusal only applies without one")
    with pytest.raises(ValueError, match="device 'cuda'.*no CUDA GPU"):
        T.Trainer("ref-cascade", device="cuda", backbone=object(), assembled=object(), progress=lambda m: None)


@pytest.mark.gpu
def test_a_cuda_step_computes_the_cpu_loss_and_saves_cpu_weights(fresh, clips, tmp_path):
    """``--device cuda`` (how the committed ref-cascade's last stage was trained, on an H200): the first step's
    loss equals the CPU's in fp32 on the same batch, and the saved weights and manifest are device-free."""
    import copy
    import dataclasses

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    backbone, (model, proc, info) = fresh
    fit, held = clips
    on_gpu = (copy.deepcopy(model), proc, info)
    gpu_backbone = dataclasses.replace(backbone, model=copy.deepcopy(backbone.model).to("cuda"))
    hyper = dict(batch=2, check_every=0, log_every=1, precision="fp32")
    runs = {}
    for device, parts, bb in (("cpu", (model, proc, info), backbone), ("cuda", on_gpu, gpu_backbone)):
        runs[device] = T.train("ref-cascade", 1, out_dir=tmp_path / device, fit=fit, heldout=held, assembled=parts,
                               backbone=bb, hyper=hyper, device=device, progress=lambda msg: None)
    cpu, gpu = (runs[d]["curve"]["points"][0]["loss"] for d in ("cpu", "cuda"))
    assert gpu == pytest.approx(cpu, rel=1e-3, abs=1e-4)
    proj, _ = load_weights(tmp_path / "cuda")
    assert all(v.device.type == "cpu" for v in proj.values())
    assert runs["cuda"]["device"].startswith("cuda: ") and runs["cpu"]["device"].startswith("cpu: ")


def test_a_tiny_batch_is_overfit(fresh, clips):
    backbone, assembled = fresh
    fit, _ = clips
    one = [min(fit, key=lambda c: len(c[0].item.text))]
    tr = T.Trainer("ref-cascade", assembled=assembled, backbone=backbone, progress=lambda msg: None,
                   hyper=dict(batch=1, lr=3e-3, warmup=1, min_lr_frac=1.0, mix={"repeat": 1.0}, check_every=0))
    result = tr.fit(4, one, [])
    losses = [c["loss"] for c in result["curve"]]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0], losses


def test_scrambled_clips_feed_only_the_repeat_objective(fresh, clips):
    backbone, assembled = fresh
    fit, _ = clips
    salad = D.synthesize(D.scrambled([c[0] for c in fit], 2), progress=False)
    seen = []
    tr = T.Trainer("ref-cascade", assembled=assembled, backbone=backbone, progress=lambda msg: None,
                   hyper=dict(batch=4, check_every=0))
    real_sample = tr.sample
    tr.sample = lambda kind, i, ex, *a: seen.append((kind, ex.item.task)) or real_sample(kind, i, ex, *a)
    # 2 steps × 4 (seeded order): each of the 4 fit clips once through a task objective, both salad clips through
    # repeat; a third step only redraws clips already seen
    tr.fit(2, fit, [], repeat_clips=salad)
    assert {task for kind, task in seen if kind != "repeat"} <= set(D.TRAIN_TASKS)
    assert ("repeat", "scrambled") in seen


def test_acoustic_mode_trains_the_rate_objective_and_optional_top_encoder_layer(fresh, clips, tmp_path):
    backbone, assembled = fresh
    before = {k: v.clone() for k, v in assembled[0].state_dict().items()}
    fit, held = clips
    tr = T.Trainer("ref-acoustic", assembled=assembled, backbone=backbone, progress=lambda msg: None,
                   hyper=dict(unfreeze_encoder_layers=1))
    feats = assembled[1].feature_extractor(fit[0][1].samples, sampling_rate=16_000, return_tensors="pt")
    with torch.no_grad():          # cached lower layers + live top layer == the model's own audio features
        ours = tr.audio_embeds(tr._encoder_state(0, fit[0][1]).unsqueeze(0))
        theirs = assembled[0].get_audio_features(feats["input_features"]).pooler_output
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    m = T.train_ref_acoustic(1, unfreeze_encoder_layers=1, out_dir=tmp_path / "acoustic", fit=fit, heldout=[],
                             assembled=assembled, backbone=backbone,
                             hyper=dict(batch=2, mix={"rate": 1.0}), progress=lambda msg: None)
    after = assembled[0].state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    top = len(assembled[0].model.audio_tower.layers) - 1
    assert changed and all(k.startswith(("model.multi_modal_projector.", f"model.audio_tower.layers.{top}.",
                                         "model.audio_tower.layer_norm.")) for k in changed), changed
    assert any(k.startswith(f"model.audio_tower.layers.{top}.") for k in changed)
    assert "rate" in m["curve"]["points"][0] and m["encoder_layers_tuned"] == [top]
    model, _, info = load_trained(tmp_path / "acoustic", backbone=backbone)
    assert all(torch.equal(model.state_dict()[k], after[k]) for k in changed)
    assert "+enc:" in info["revision"]


def test_audio_embeddings_are_held_at_the_token_embeddings_scale(fresh, clips):
    """The projection step after each update puts the audio embeddings' RMS back on the text embeddings' RMS
    (unconstrained, the first committed run drifted to ~60× — see Trainer.rescale_to_text)."""
    backbone, assembled = fresh
    fit, _ = clips
    tr = T.Trainer("ref-cascade", assembled=assembled, backbone=backbone, progress=lambda msg: None,
                   hyper=dict(batch=2, mix={"repeat": 1.0}, check_every=0, match_text_scale=True))
    samples = [tr.sample("repeat", i, fit[i][0], {}, {}, None) for i in range(2)]
    assembled[0].model.multi_modal_projector.linear_2.weight.data.mul_(7.0)   # as if training had inflated it
    tr.merged_embeds(samples, fit)
    assert tr.audio_rms > 3 * tr.text_rms
    tr.rescale_to_text()
    tr.merged_embeds(samples, fit)
    assert tr.audio_rms == pytest.approx(tr.text_rms, rel=1e-4)
    groups = tr.param_groups()
    w1, w2 = (assembled[0].model.multi_modal_projector.linear_1.weight,
              assembled[0].model.multi_modal_projector.linear_2.weight)
    ratio = float(w2.detach().pow(2).mean().sqrt() / w1.detach().pow(2).mean().sqrt())
    assert groups[1]["params"] == [w2] and groups[1]["lr"] == pytest.approx(tr.hyper["lr"] * ratio)
    off = T.Trainer("ref-cascade", assembled=assembled, backbone=backbone, progress=lambda msg: None,
                    hyper=dict(match_text_scale=False))
    assert len(off.param_groups()) == 1


def test_alignment_warm_start_moves_audio_embeddings_towards_the_spoken_tokens(fresh, clips, tmp_path):
    from harness.reference.align import align_projector

    backbone, assembled = fresh
    fit, held = clips
    tr = T.Trainer("ref-cascade", assembled=assembled, backbone=backbone, progress=lambda msg: None)
    first = align_projector(tr, fit[:3], steps=1, progress=lambda msg: None)
    more = align_projector(tr, fit[:3], steps=60, progress=lambda msg: None)
    assert first["rows"] == 3 * tr.n_audio and 0 < first["word_share"] < 1
    assert more["loss_last"] < first["loss_first"] and more["cosine_on_words"] > first["cosine_on_words"]
    m = T.train("ref-cascade", 1, out_dir=tmp_path / "a", fit=fit[:3], heldout=[], assembled=assembled,
                backbone=backbone, hyper=dict(batch=2, align_steps=2, align_clips=2), progress=lambda msg: None)
    assert m["align"]["clips"] == 2 and m["align"]["steps"] == 2
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["align"] == m["align"]
