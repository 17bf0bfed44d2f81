"""One entry point from a registry entry to running systems: the speech-LLM and its matched cascade.

Loaded systems are kept per process (``functools.cache``) so every test of a model shares one copy —
a session loads each model once, however many claims use it. A self-cascade (``matched_cascade = "self"``)
reuses that same copy: one model per job on the GPU.
"""
from __future__ import annotations

import functools

from harness import paths
from harness.specs import ModelSpec, get_spec

REFERENCE_DIR = paths.REFERENCE


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_speech_llm(spec: ModelSpec, *, trust_remote_code: bool = False, device: str | None = None):
    """The speech-LLM behind ``spec`` (reference weights from ``fixtures/reference/<id>``; others from the hub).

    Load failures of hub models say what to do (``load_errors``); remote code runs only on opt-in."""
    from harness.availability import require_opt_in

    require_opt_in(spec, trust_remote_code)
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
        from harness.availability import free_gpu_gb, memory_error
        from harness.systems import hf_native
        from harness.systems.load_errors import ModelLoadError, explained

        problem = memory_error(spec, free_gpu_gb()) if device.startswith("cuda") else None
        if problem:          # before from_pretrained, not an OOM halfway through it
            raise ModelLoadError(f"{problem}: free the GPU or use a larger one")
        with explained(spec):
            return hf_native.load(spec, device=device)
    if spec.loader == "ultravox":
        from harness.systems import ultravox

        return ultravox.load(spec, device=device)
    if spec.loader == "api":
        from harness.systems.api import APISpeechLLM

        return APISpeechLLM(spec)
    raise ValueError(f"{spec.id}: unknown loader {spec.loader!r}")


def speech_llm(model_id: str, trust_remote_code: bool = False):
    """The speech-LLM of ``model_id``, loaded once per process (the opt-in flag only matters for remote code,
    so it does not make a second copy)."""
    from harness.availability import needs_remote_code

    return _speech_llm(model_id, bool(trust_remote_code) and needs_remote_code(get_spec(model_id)))


@functools.cache
def _speech_llm(model_id: str, trust_remote_code: bool):
    return load_speech_llm(get_spec(model_id), trust_remote_code=trust_remote_code)


@functools.cache
def cascade(model_id: str, kind: str | None = None, trust_remote_code: bool = False):
    """The matched cascade of ``model_id``: ``kind`` "self" or "separate", default the registry's
    ``matched_cascade`` (see :mod:`harness.systems.matched`). "self" shares the loaded speech-LLM."""
    from harness.specs import CASCADE_KINDS
    from harness.systems.matched import matched_cascade, self_cascade

    spec = get_spec(model_id)
    kind = kind or spec.matched_cascade
    if kind not in CASCADE_KINDS:
        raise ValueError(f"{model_id}: unknown cascade kind {kind!r}; one of {CASCADE_KINDS}")
    if kind == "self":
        from harness.specs import SELF_CASCADE_LOADERS

        if spec.loader not in SELF_CASCADE_LOADERS:
            raise ValueError(f"{model_id}: a {spec.loader} model has no language model of its own to self-cascade")
        return self_cascade(speech_llm(model_id, trust_remote_code), asr_name=spec.asr, device=_device(),
                            name=f"self-cascade[{spec.id}]")
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
