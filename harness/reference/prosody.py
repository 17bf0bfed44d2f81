"""Fit ``ref-prosody``'s read-out (``python -m harness.reference fit-prosody``): the model itself — the energy-contour
front end and its logistic read-out projector — is ``harness.systems.reference.frontends``; this is only its
training, on the speaking-rate training clips (never an evaluation item).
"""
from __future__ import annotations

import numpy as np

from harness.systems.reference import assemble as A
from harness.lm import load_backbone
from harness.systems.reference.frontends import CONTEXT_FRAMES, PROSODY_WORDS, prosody_assembled, readout_state


def fit_prosody(clips, *, seed: int = 0, progress=print) -> tuple[dict, dict]:
    """Fit ref-prosody's read-out: a logistic regression (scikit-learn) of the clip's rate label on each audio
    position's energy window, over every position of the training clips ([(Example, Audio, transcript)] with
    ``label`` "slow"/"fast"; never an evaluation item). Returns (projector state, fit report)."""
    from sklearn.linear_model import LogisticRegression

    model, proc, _ = prosody_assembled()
    tower = model.model.audio_tower
    xs, ys, groups = [], [], []
    for k, (ex, audio, _) in enumerate(clips):
        if ex.label not in PROSODY_WORDS:
            raise ValueError(f"training clip {ex.key}: rate label {ex.label!r} is not one of {PROSODY_WORDS}")
        feats = proc.feature_extractor(audio.samples, sampling_rate=16_000, return_tensors="pt")["input_features"]
        rows = tower(feats).last_hidden_state.reshape(-1, tower.intermediate)[:, : tower.width].numpy()
        xs.append(rows)
        ys.append(np.full(len(rows), PROSODY_WORDS.index(ex.label)))
        groups.append(np.full(len(rows), k))
    x, y, g = np.concatenate(xs), np.concatenate(ys), np.concatenate(groups)
    clf = LogisticRegression(max_iter=5000, C=1.0, random_state=seed).fit(x, y)
    per_clip = [float(clf.predict_proba(x[g == k])[:, 1].mean() > 0.5) == y[g == k][0] for k in range(len(clips))]
    report = {"clips": len(clips), "positions": int(len(y)), "position_accuracy": float(clf.score(x, y)),
              "clip_accuracy_mean_probability": float(np.mean(per_clip)), "C": 1.0, "seed": seed}
    progress(f"ref-prosody read-out: {report}")
    return readout_state(model, load_backbone(), clf.coef_[0], float(clf.intercept_[0])), report


def build_prosody(out_dir=None, *, rate_extra: int = 240, seed: int = 0, progress=print) -> dict:
    """Fit and write ``fixtures/reference/ref-prosody`` (projector.safetensors + manifest.json) from the
    speaking-rate training clips (speaking_rate's training split at its labels' rates, plus ``rate_extra`` other
    training sentences re-spoken at those rates; ``harness.reference.data``). Seconds on a CPU once TTS is cached."""
    import json
    from pathlib import Path

    from safetensors.torch import save_file

    from harness import paths
    from harness.reference import data as D

    out_dir = Path(out_dir) if out_dir is not None else paths.reference_weights("ref-prosody")
    fit, held, extra = D.examples(seed, rate_extra=rate_extra)
    examples = [ex for ex in [*fit, *held] if ex.label] + extra
    clips = D.synthesize(examples, desc="tts (rate clips)")
    state, report = fit_prosody(clips, seed=seed, progress=progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out_dir / "projector.safetensors"))
    manifest = {"mode": "ref-prosody", "what": "energy-contour front end + logistic read-out projector",
                "chunk_seconds": A.CHUNK_SECONDS, "context_frames": CONTEXT_FRAMES,
                "projector_sha256": A.state_digest(state), "data_sha256": D.data_hash(examples),
                "n_clips": len(clips), "rate_extra": rate_extra, "seed": seed, "fit": report,
                "command": f"python -m harness.reference fit-prosody --rate-extra {rate_extra}"}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    progress(f"wrote {out_dir} (projector {manifest['projector_sha256'][:12]})")
    return manifest
