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
    """Fit ref-prosody's read-out: a logistic regression (scikit-learn) of each training clip's rate label on its
    clip-level energy features ([(Example, Audio, transcript)] with ``label`` "slow"/"fast"; never an evaluation
    item). Returns (projector state, fit report with the training and 5-fold cross-validated clip accuracy)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model, proc, _ = prosody_assembled()
    tower = model.model.audio_tower
    xs, ys = [], []
    for ex, audio, _ in clips:
        if ex.label not in PROSODY_WORDS:
            raise ValueError(f"training clip {ex.key}: rate label {ex.label!r} is not one of {PROSODY_WORDS}")
        feats = proc.feature_extractor(audio.samples, sampling_rate=16_000, return_tensors="pt")["input_features"]
        xs.append(tower.features(feats)[0].numpy())
        ys.append(PROSODY_WORDS.index(ex.label))
    x, y = np.stack(xs), np.asarray(ys)
    # Standardised features (the modulation channels are ~100× smaller than the contour's), folded back into
    # (w, b) afterwards so the projector reads the raw features: w·(x − μ)/σ + b = (w/σ)·x + (b − Σ wμ/σ).
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, C=1.0, random_state=seed))
    cv = cross_val_score(clf, x, y, cv=5)
    clf.fit(x, y)
    scaler, logistic = clf[0], clf[1]
    weights = logistic.coef_[0] / scaler.scale_
    bias = float(logistic.intercept_[0] - (logistic.coef_[0] * scaler.mean_ / scaler.scale_).sum())
    report = {"clips": len(clips), "clip_accuracy": float(clf.score(x, y)),
              "clip_accuracy_cv5": float(cv.mean()), "C": 1.0, "standardised": True, "seed": seed}
    progress(f"ref-prosody read-out: {report}")
    return readout_state(model, load_backbone(), weights, bias), report


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
    manifest = {"mode": "ref-prosody", "what": "energy-contour front end + clip-level logistic read-out writing rate words in the silent tail",
                "chunk_seconds": A.CHUNK_SECONDS, "context_frames": CONTEXT_FRAMES,
                "projector_sha256": A.state_digest(state), "data_sha256": D.data_hash(examples),
                "n_clips": len(clips), "rate_extra": rate_extra, "seed": seed, "fit": report,
                "command": f"python -m harness.reference fit-prosody --rate-extra {rate_extra}"}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    progress(f"wrote {out_dir} (projector {manifest['projector_sha256'][:12]})")
    return manifest
