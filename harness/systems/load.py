"""One entry point from a registry entry to running systems: the speech-LLM and its matched cascade.

Loaded systems are kept per process (``functools.cache``) so every test of a model shares one copy —
a session loads each model once, however many claims use it.
"""
from __future__ import annotations

import functools
from pathlib import Path

from harness.specs import ModelSpec, get_spec

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "reference"


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_speech_llm(spec: ModelSpec, *, trust_remote_code: bool = False, device: str | None = None):
    """The speech-LLM behind ``spec`` (reference weights from ``fixtures/reference/<id>``; others from the hub)."""
    device = device or _device()
    if spec.loader == "reference":
        from harness.reference.train import trained_system

        folder = REFERENCE_DIR / spec.id
        if not (folder / "projector.safetensors").exists():
            raise FileNotFoundError(f"{spec.id}: no trained weights in {folder}; rebuild them with "
                                    f"`python -m harness.reference train {spec.id}`")
        system = trained_system(folder, spec.id)
        digest = system.backbone.revision.split("proj:")[-1][:12]
        if not spec.revision.startswith(digest):
            raise ValueError(f"{spec.id}: fixtures/models/{spec.id}.toml pins revision {spec.revision!r} but the "
                             f"committed projector is {digest!r}; update the registry entry after retraining")
        return system
    if spec.loader == "transcriber":
        from harness.reference.frontends import transcriber

        system = transcriber(name=spec.id)
        if system.backbone.revision != spec.revision:
            raise ValueError(f"{spec.id}: fixtures/models/{spec.id}.toml pins revision {spec.revision!r} but its parts "
                             f"(ASR model, backbone, layout) now build {system.backbone.revision!r}; update the entry")
        return system
    if spec.loader == "disguised_cascade":
        from harness.asr import ASR
        from harness.lm import load_backbone
        from harness.systems.cascade import Cascade

        beam = int(spec.revision.removeprefix("beam"))
        return Cascade(ASR(spec.repo, device=device, beam_size=beam),
                       load_backbone(spec.backbone.repo, spec.backbone.revision), name=spec.id)
    if spec.loader == "hf_native":
        from harness.systems import hf_native

        return hf_native.load(spec, device=device)
    if spec.loader == "ultravox":
        from harness.systems import ultravox

        return ultravox.load(spec, trust_remote_code=trust_remote_code, device=device)
    if spec.loader == "api":
        from harness.systems.api import APISpeechLLM

        return APISpeechLLM(spec)
    raise ValueError(f"{spec.id}: unknown loader {spec.loader!r}")


@functools.cache
def speech_llm(model_id: str, trust_remote_code: bool = False):
    return load_speech_llm(get_spec(model_id), trust_remote_code=trust_remote_code)


@functools.cache
def cascade(model_id: str):
    """The matched cascade of ``model_id`` (see :mod:`harness.systems.matched`)."""
    from harness.systems.matched import matched_cascade

    spec = get_spec(model_id)
    return matched_cascade(spec, device=_device())


@functools.cache
def permuted_transcriber(model_id: str, seed: int = 0):
    """The emergence claim's mutant of a ``transcriber`` model: every token written as a fixed other token."""
    from harness.reference.frontends import transcriber

    spec = get_spec(model_id)
    if spec.loader != "transcriber":
        raise ValueError(f"--mutant {model_id}~permuted: only a 'transcriber' model can be permuted "
                         f"({model_id} is loaded by {spec.loader!r})")
    return transcriber(permute_seed=seed, name=f"{model_id}~permuted")
