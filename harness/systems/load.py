"""One entry point from a registry entry to running systems: the speech-LLM and its matched cascade.

Loaded systems are kept per process (``functools.cache``) so every test of a model shares one copy —
a session loads each model once, however many claims use it. A self-cascade (``matched_cascade = "self"``)
reuses that same copy: one model per job on the GPU.
"""
from __future__ import annotations

import functools

from harness.specs import ModelSpec, get_spec


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# -- one loader per registry ``loader`` kind: (spec, device) → the speech-LLM -------------------------------------
# Each imports its module on use: a CPU session never pays for the GPU loaders' imports, and the other way round.
def _reference(spec: ModelSpec, device: str):
    from harness.systems.reference.trained import load

    return load(spec)


def _transcriber(spec: ModelSpec, device: str):
    from harness.systems.reference.frontends import load_transcriber

    return load_transcriber(spec)


def _disguised_cascade(spec: ModelSpec, device: str):
    from harness.asr import ASR
    from harness.lm import load_backbone
    from harness.systems.cascade import Cascade

    beam = int(spec.revision.removeprefix("beam"))
    return Cascade(ASR(spec.repo, device=device, beam_size=beam),
                   load_backbone(spec.backbone.repo, spec.backbone.revision), name=spec.id)


def _hf_native(spec: ModelSpec, device: str):
    from harness.availability import free_gpu_gb, memory_error
    from harness.systems import hf_native
    from harness.systems.load_errors import ModelLoadError, explained

    problem = memory_error(spec, free_gpu_gb()) if device.startswith("cuda") else None
    if problem:          # before from_pretrained, not an OOM halfway through it
        raise ModelLoadError(f"{problem}: free the GPU or use a larger one")
    with explained(spec):
        return hf_native.load(spec, device=device)


def _ultravox(spec: ModelSpec, device: str):
    from harness.systems import ultravox

    return ultravox.load(spec, device=device)


def _api(spec: ModelSpec, device: str):
    from harness.systems.api import APISpeechLLM

    return APISpeechLLM(spec)


LOADERS = {"reference": _reference, "transcriber": _transcriber, "disguised_cascade": _disguised_cascade,
           "hf_native": _hf_native, "ultravox": _ultravox, "api": _api}     # keys: harness.specs.LOADERS


def load_speech_llm(spec: ModelSpec, *, trust_remote_code: bool = False, device: str | None = None):
    """The speech-LLM behind ``spec`` (reference weights from ``fixtures/reference/<id>``; others from the hub).

    Load failures of hub models say what to do (``load_errors``); remote code runs only on opt-in."""
    from harness.availability import require_opt_in

    require_opt_in(spec, trust_remote_code)
    if spec.loader not in LOADERS:
        raise ValueError(f"{spec.id}: unknown loader {spec.loader!r}")
    return LOADERS[spec.loader](spec, device or _device())


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
    from harness.systems.reference.frontends import transcriber

    spec = get_spec(model_id)
    if spec.loader != "transcriber":
        raise ValueError(f"--mutant {model_id}~permuted: only a 'transcriber' model can be permuted "
                         f"({model_id} is loaded by {spec.loader!r})")
    return transcriber(permute_seed=seed, name=f"{model_id}~permuted")
