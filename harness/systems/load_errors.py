"""Load failures of real models, said as what to do — never a raw traceback from deep inside transformers.

``explained(spec)`` wraps a load: known failures (hub unreachable, gated repo, missing revision, out of GPU
memory, a transformers version that lacks what the code needs, remote code without opt-in) become one
:class:`ModelLoadError` naming the model, the cause and the fix, raised ``from None`` (one error, not a chain).
Errors that already say what is wrong in the model's own terms (a bad checkpoint, a backbone mismatch) pass
through unchanged.
"""
from __future__ import annotations

import contextlib

PINNED_TRANSFORMERS = ">=5.0,<5.40"   # pyproject.toml's pin


class ModelLoadError(RuntimeError):
    """A real model could not be loaded; the message says what to do."""


class HubUnavailable(ModelLoadError):
    """The checkpoint is neither reachable on the hub nor in the local cache."""


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _transformers_version() -> str:
    try:
        import transformers
    except ImportError:
        return "not installed"
    return transformers.__version__


def explain(spec, err: BaseException) -> ModelLoadError | None:
    """The actionable error for ``err`` raised while loading ``spec``, or None when it is not a known kind."""
    from huggingface_hub import errors as hub

    from harness.availability import TrustRemoteCodeRequired, hub_reachable

    where = f"{spec.repo}@{spec.revision}"
    backbone = f"{spec.backbone.repo}@{spec.backbone.revision}" if spec.backbone.repo else None
    first = _first_line(err)
    if isinstance(err, TrustRemoteCodeRequired):
        return None
    if isinstance(err, hub.GatedRepoError):
        return ModelLoadError(
            f"{spec.id}: a gated repo refused access ({first}). Accept its licence on the Hugging Face page "
            f"(for {spec.repo} and the backbone {spec.backbone.repo}) and set HF_TOKEN to a token with access")
    if isinstance(err, hub.RevisionNotFoundError):
        return ModelLoadError(f"{spec.id}: a pinned revision does not exist on the hub ({first}); check "
                              f"fixtures/models/{spec.id}.toml ({where}, backbone {backbone})")
    if isinstance(err, hub.RepositoryNotFoundError):
        return ModelLoadError(f"{spec.id}: repo not found or private ({first}); check the repo ids in "
                              f"fixtures/models/{spec.id}.toml, and HF_TOKEN for private repos")
    if isinstance(err, (hub.LocalEntryNotFoundError, OSError)) and not isinstance(err, hub.HfHubHTTPError):
        if not hub_reachable():
            return HubUnavailable(
                f"{spec.id}: the model hub is unreachable (HF_HUB_OFFLINE=1) and {where} (backbone {backbone}) is "
                f"not in the local cache ({first}). Unset HF_HUB_OFFLINE on a machine with hub access, or fetch "
                f"them beforehand with `huggingface-cli download {spec.repo} --revision {spec.revision}` (and the "
                "backbone likewise)")
        return HubUnavailable(f"{spec.id}: could not fetch {where} (backbone {backbone}) from the model hub ({first}); "
                              "check the network, the repo ids and revisions, and HF_TOKEN for gated backbones")
    if isinstance(err, hub.HfHubHTTPError):
        return HubUnavailable(f"{spec.id}: the hub answered with an error for {where} ({first}); retry, or check "
                              "HF_TOKEN and the registry entry")
    try:
        import torch
        oom = isinstance(err, torch.cuda.OutOfMemoryError)
    except (ImportError, AttributeError):
        oom = False
    if oom or "out of memory" in first.lower():
        return ModelLoadError(f"{spec.id}: out of GPU memory while loading ({first}); it needs ~{spec.gpu_memory_gb:g} "
                              "GiB free (fixtures/models/*.toml gpu_memory_gb): free the GPU or use a larger one")
    if isinstance(err, (ImportError, AttributeError, TypeError)) or "transformers_modules" in repr(err):
        return ModelLoadError(
            f"{spec.id}: the model code does not run under transformers {_transformers_version()} "
            f"({type(err).__name__}: {first}). The project pins transformers{PINNED_TRANSFORMERS} "
            "(pyproject.toml): install a version in that range")
    return None


@contextlib.contextmanager
def explained(spec):
    """Re-raise known load failures of ``spec`` as one actionable :class:`ModelLoadError`."""
    try:
        yield
    except Exception as err:  # noqa: BLE001 - re-raised unless explained
        better = explain(spec, err)
        if better is None:
            raise
        raise better from None
