"""Why a registry model cannot run here (no GPU, no hub, no API key, no opt-in) — or None when it can.

Tests call ``why_unavailable`` and skip with its reason; ``--strict`` turns those skips into failures.
Every check can be overridden by keyword so it is testable without the real environment.

Remote code: no loader runs hub code today (Ultravox is implemented in ``harness.systems.ultravox_model``).
A future loader that must, goes in ``REMOTE_CODE_LOADERS``; it is then refused unless the user opts in
(``--trust-remote-code`` or ``trust_remote_code = true`` in its registry entry).
"""
from __future__ import annotations

import importlib.util
import os


REMOTE_CODE_LOADERS: tuple[str, ...] = ()


class TrustRemoteCodeRequired(RuntimeError):
    pass


def needs_remote_code(spec) -> bool:
    return spec.loader in REMOTE_CODE_LOADERS


def opt_in_error(spec, trust_remote_code: bool = False) -> str | None:
    """Why ``spec`` may not run its hub code here, or None (no remote code, or opted in)."""
    if needs_remote_code(spec) and not (spec.trust_remote_code or trust_remote_code):
        return (f"{spec.id} runs remote code: pass --trust-remote-code or set trust_remote_code = true in "
                f"fixtures/models/{spec.id}.toml")
    return None


def require_opt_in(spec, trust_remote_code: bool = False) -> None:
    problem = opt_in_error(spec, trust_remote_code)
    if problem:
        raise TrustRemoteCodeRequired(problem)


def hub_reachable() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("1", "true", "True", "YES", "yes")


def free_gpu_gb() -> float | None:
    """Free memory on the current CUDA device in GiB, or None without CUDA."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    free, _ = torch.cuda.mem_get_info()
    return free / 2**30


def memory_error(spec, free_gb: float | None) -> str | None:
    """Checked before loading, so the user sees this instead of an OOM halfway through ``from_pretrained``."""
    if free_gb is not None and spec.gpu_memory_gb > free_gb:
        return f"{spec.id} needs ~{spec.gpu_memory_gb:g} GiB of GPU memory, {free_gb:.1f} GiB is free"
    return None


def why_unavailable(spec, *, gpu_gb: float | None | str = "detect", hub: bool | None = None,
                    env: dict | None = None, trust_remote_code: bool = False) -> str | None:
    env = os.environ if env is None else env
    if spec.loader == "api":
        if not env.get(spec.api_key_env or ""):
            return f"no API key: set {spec.api_key_env}"
        if importlib.util.find_spec("google.genai") is None:
            return "the API SDK is missing: pip install google-genai"
        return None
    opt_in = opt_in_error(spec, trust_remote_code)
    if opt_in:
        return opt_in
    if spec.offline:
        return None
    free = free_gpu_gb() if gpu_gb == "detect" else gpu_gb
    if free is None:
        return f"no CUDA GPU ({spec.id} needs ~{spec.gpu_memory_gb:g} GiB)"
    if (hub_reachable() if hub is None else hub) is False:
        return f"no model hub access (HF_HUB_OFFLINE=1) to fetch {spec.repo}"
    return memory_error(spec, free)
