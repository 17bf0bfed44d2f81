"""A trained reference speech-LLM, loaded from its committed weights (``fixtures/reference/<id>/``).

The weights are written by the training tool (``python -m harness.reference train|fit-prosody``); loading them
needs only the packaged parts (``assemble``, ``frontends``), so the suite never imports the trainer.
"""
from __future__ import annotations

import json
from pathlib import Path

from harness import paths


def load_weights(path: Path) -> tuple[dict, dict]:
    """(projector state, encoder state or {}) from a trained folder."""
    from safetensors.torch import load_file

    path = Path(path)
    enc = path / "encoder.safetensors"
    return load_file(str(path / "projector.safetensors")), (load_file(str(enc)) if enc.exists() else {})


def load_trained(path: Path, *, backbone=None):
    """(model, processor, info) assembled with the trained weights in ``path`` (projector + any encoder layers)."""
    from harness.systems.reference.assemble import assemble, state_digest

    path = Path(path)
    manifest = json.loads((path / "manifest.json").read_text())
    proj, enc = load_weights(path)
    if manifest.get("mode") == "ref-prosody":      # a different front end (harness.systems.reference.frontends)
        from harness.systems.reference.frontends import prosody_assembled

        model, proc, info = prosody_assembled(proj, backbone=backbone)
    else:
        model, proc, info = assemble(proj, chunk_seconds=manifest["chunk_seconds"], backbone=backbone)
    if enc:
        model.model.audio_tower.load_state_dict(enc, strict=False)
        info = dict(info, encoder_sha256=state_digest(enc),
                    revision=info["revision"] + f"+enc:{state_digest(enc)[:12]}")
    for p in model.parameters():
        p.requires_grad_(False)
    return model, proc, dict(info, manifest=manifest)


def trained_system(path: Path, name: str | None = None, *, backbone=None):
    """The trained reference behind the standard adapter (``HFNativeSpeechLLM``, family voxtral)."""
    from harness.systems.hf_native import HFNativeSpeechLLM

    model, proc, info = load_trained(path, backbone=backbone)
    return HFNativeSpeechLLM(model, proc, "voxtral", model_id=info["model_id"], revision=info["revision"],
                             name=name or info["manifest"]["mode"])


def load(spec):
    """The registry entry ``spec`` (loader "reference"): its weights from ``fixtures/reference/<id>``, checked
    against the revision the registry pins (the first 12 hex digits of the projector's sha256)."""
    folder = paths.reference_weights(spec.id)
    if not (folder / "projector.safetensors").exists():
        raise FileNotFoundError(f"{spec.id}: no trained weights in {folder}; rebuild them with "
                                f"`python -m harness.reference train {spec.id}`")
    system = trained_system(folder, spec.id)
    digest = system.backbone.revision.split("proj:")[-1][:12]
    if not spec.revision.startswith(digest):
        raise ValueError(f"{spec.id}: fixtures/models/{spec.id}.toml pins revision {spec.revision!r} but the "
                         f"committed projector is {digest!r}; update the registry entry after retraining")
    return system
