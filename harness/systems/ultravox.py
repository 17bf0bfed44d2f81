"""Ultravox: no native transformers class, so its hub code runs (``trust_remote_code``) — only on explicit opt-in.

The remote ``UltravoxModel`` merges projected Whisper-encoder frames into the Llama/Gemma/Qwen prompt at its
``<|audio|>`` placeholder. This adapter loads it and answers through the same SpeechLLM interface; the refusal
path (no opt-in) is what runs offline.
"""
from __future__ import annotations


_ANSWERING_WIRED = False


class TrustRemoteCodeRequired(RuntimeError):
    pass


def require_opt_in(spec, trust_remote_code: bool = False) -> None:
    if not (trust_remote_code or spec.trust_remote_code):
        raise TrustRemoteCodeRequired(
            f"{spec.id} ({spec.repo}) needs trust_remote_code: pass --trust-remote-code or set "
            f"trust_remote_code = true in fixtures/models/{spec.id}.toml")


def load(spec, *, trust_remote_code: bool = False, device: str = "cuda"):
    """The remote model + processor at the pinned revision (GPU box only; never tested offline)."""
    require_opt_in(spec, trust_remote_code)
    if not _ANSWERING_WIRED:
        raise NotImplementedError(f"{spec.id}: Ultravox answering is not wired yet (remote forward takes "
                                  "audio_values + audio_token_start_idx); nothing was downloaded")
    import torch
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(spec.repo, revision=spec.revision, trust_remote_code=True,
                                      dtype=getattr(torch, spec.dtype), device_map="auto" if device == "cuda" else device)
    processor = AutoProcessor.from_pretrained(spec.repo, revision=spec.revision, trust_remote_code=True)
    return model, processor
