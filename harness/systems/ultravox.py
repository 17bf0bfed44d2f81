"""Ultravox: no native transformers class, so its hub code runs (``trust_remote_code``) — only on explicit opt-in.

The remote ``UltravoxModel`` merges projected Whisper-encoder frames into the Llama/Gemma/Qwen prompt at its
``<|audio|>`` placeholder. This adapter loads it and answers through the same SpeechLLM interface; the refusal
path (no opt-in) and the hub-unreachable path are what run offline.

What the remote code does (``ultravox_processing.UltravoxProcessor.__call__`` and
``ultravox_model.UltravoxModel.forward`` in fixie-ai/ultravox; the hub repos ship copies of these files):

* the processor takes ONE rendered string (``text=``, not a list) holding ``<|audio|>``, the waveform
  (``audio=``) and ``sampling_rate``; it splits the text at the placeholder, tokenizes the parts without
  special tokens (the chat template already put BOS in), and puts ``audio_token_len`` copies of the
  tokenizer's EOS token where the placeholder was. It returns ``input_ids``, ``attention_mask``,
  ``audio_values`` (Whisper features, one row per ≤30 s chunk), ``audio_lens``, ``audio_token_len``,
  ``audio_token_start_idx`` (one entry per chunk) and ``audio_batch_size`` (chunks per text).
* the model embeds ``input_ids``, runs ``audio_tower`` + ``multi_modal_projector`` and overwrites
  ``inputs_embeds[b][start : start + len]`` for every chunk, then calls
  ``self.language_model.forward(inputs_embeds=...)`` — note ``.forward``: a forward pre-hook on
  ``model.language_model`` itself does NOT fire on that call, so the capture hook sits one level deeper, at
  the input of the language model's decoder (``language_model.get_decoder()``), which the causal-LM class
  calls normally with the same ``inputs_embeds``. That is also where ``hf_native`` captures.

Scoring/generation after the prefix goes straight to ``model.language_model`` (a plain causal LM): with the
audio already merged, ``UltravoxModel.forward`` does nothing but forward to it (and it requires ``input_ids``
positionally, so it could not be called with ``inputs_embeds`` alone anyway).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from harness.audio import SAMPLE_RATE, Audio
from harness.systems.speech_llm import SpeechLLM

PLACEHOLDER = "<|audio|>"   # UltravoxProcessor's default ``audio_placeholder``


class TrustRemoteCodeRequired(RuntimeError):
    pass


class HubUnavailable(RuntimeError):
    """The checkpoint is neither reachable on the hub nor in the local cache."""


def require_opt_in(spec, trust_remote_code: bool = False) -> None:
    if not (trust_remote_code or spec.trust_remote_code):
        raise TrustRemoteCodeRequired(
            f"{spec.id} ({spec.repo}) needs trust_remote_code: pass --trust-remote-code or set "
            f"trust_remote_code = true in fixtures/models/{spec.id}.toml")


class UltravoxSpeechLLM(SpeechLLM):
    """A remote-code ``UltravoxModel`` + ``UltravoxProcessor`` as a SpeechLLM.

    ``model`` needs ``.language_model`` (a transformers causal LM) and a ``forward`` that accepts the
    processor's outputs as keyword arguments; ``processor`` needs ``.tokenizer`` and the
    ``__call__(text=str, audio=array, sampling_rate=int)`` described in the module docstring.
    """

    def __init__(self, model: torch.nn.Module, processor, *, model_id: str, revision: str, name: str | None = None):
        self.processor = processor
        tok = processor.tokenizer
        placeholder = getattr(processor, "audio_placeholder", None) or PLACEHOLDER
        replacement = getattr(processor, "audio_token_replacement", None) or tok.eos_token
        # The "audio token" Ultravox writes is the EOS token, which also ends chat turns: the base class needs
        # an id, but ``audio_positions`` below never looks for it.
        super().__init__(model.language_model, tok, model_id=model_id, revision=revision, name=name or model_id,
                         audio_slot=placeholder, audio_token_id=tok.convert_tokens_to_ids(replacement))
        self.model = model.eval()            # the full speech-LLM; ``backbone`` wraps only its language model

    # -- backbone access (UltravoxModel is no transformers class: go through its language model) ---------------
    @property
    def language_model(self) -> torch.nn.Module:
        return self.model.language_model

    @property
    def text_model(self) -> torch.nn.Module:
        return self.language_model.get_decoder()

    @property
    def unembedding(self) -> torch.nn.Module:
        return self.language_model.get_output_embeddings()     # the language model's lm_head

    # -- inputs ------------------------------------------------------------------------------------------------
    def render(self, messages: list[dict]) -> str:
        """The tokenizer's own chat template, ready for the reply (as ``lm.Backbone.prompt_ids`` does)."""
        return self.processor.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def prepare(self, messages: list[dict], audio: Audio) -> dict[str, Any]:
        text = self.render(messages)
        if text.count(self.audio_slot) != 1:
            raise ValueError(f"{self.name}: the rendered prompt holds {text.count(self.audio_slot)} audio "
                             f"placeholders {self.audio_slot!r}, expected 1")
        out = self.processor(text=text, audio=np.array(audio.samples, dtype=np.float32),  # a writable copy
                             sampling_rate=SAMPLE_RATE, return_tensors="pt")
        return {k: v for k, v in out.items() if v is not None}

    # -- merging (the model's own code) ------------------------------------------------------------------------
    def prefix_embeds(self, inputs: dict[str, Any]) -> torch.Tensor:
        """[T, H]: what the model's own forward hands its text decoder, captured and the forward stopped.

        The hook sits on the decoder, not on ``language_model``: UltravoxModel calls ``language_model.forward``
        directly, which bypasses module hooks."""
        return self._capture(inputs, self.text_model)

    def audio_positions(self, inputs: dict[str, Any]) -> torch.Tensor:
        """Positions the model's forward overwrites with audio: ``start .. start+len-1`` for every chunk.

        Ultravox fills the placeholder with EOS tokens (also the end-of-turn token), so positions come from the
        processor's ``audio_token_start_idx``/``audio_token_len`` — exactly the slices ``UltravoxModel.forward``
        assigns — not from token ids. Batch of one: every chunk belongs to text 0.
        """
        starts = torch.as_tensor(inputs["audio_token_start_idx"]).flatten().tolist()
        lens = torch.as_tensor(inputs["audio_token_len"]).flatten().tolist()
        if len(starts) != len(lens) or not starts:
            raise ValueError(f"{self.name}: {len(starts)} audio start indices but {len(lens)} lengths")
        if "audio_batch_size" in inputs and int(torch.as_tensor(inputs["audio_batch_size"]).sum()) != len(starts):
            raise ValueError(f"{self.name}: audio_batch_size does not match the {len(starts)} audio chunks")
        positions = torch.cat([torch.arange(int(s), int(s) + int(n)) for s, n in zip(starts, lens)])
        seq_len = inputs["input_ids"].shape[-1]
        if positions.numel() and int(positions.max()) >= seq_len:
            raise ValueError(f"{self.name}: audio positions run past the prompt ({seq_len} tokens)")
        return positions.long()


# -- loading a real checkpoint (GPU box) -----------------------------------------------------------------------
def _hub_error(spec, err: Exception) -> RuntimeError:
    from harness.availability import hub_reachable

    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    where = f"{spec.repo}@{spec.revision}"
    if not hub_reachable():
        return HubUnavailable(
            f"{spec.id}: the model hub is unreachable (HF_HUB_OFFLINE=1) and {where} is not in the local "
            f"cache ({first}). Unset HF_HUB_OFFLINE on a machine with hub access, or fetch it beforehand with "
            f"`huggingface-cli download {spec.repo} --revision {spec.revision}` (its remote code also fetches "
            "the Whisper encoder and the text model named in its config).")
    return HubUnavailable(f"{spec.id}: could not fetch {where} from the model hub ({first}); check the repo id, "
                          "the revision and, for gated backbones, that a Hugging Face token with access is set")


def load(spec, *, trust_remote_code: bool = False, device: str = "cuda") -> UltravoxSpeechLLM:
    """The remote model + processor at the pinned revision as a SpeechLLM (GPU box; offline only the errors)."""
    require_opt_in(spec, trust_remote_code)
    from transformers import AutoModel, AutoProcessor

    from harness.availability import free_gpu_gb, memory_error

    if device.startswith("cuda"):
        problem = memory_error(spec, free_gpu_gb())
        if problem:
            raise RuntimeError(problem)
    try:
        processor = AutoProcessor.from_pretrained(spec.repo, revision=spec.revision, trust_remote_code=True)
        model = AutoModel.from_pretrained(spec.repo, revision=spec.revision, trust_remote_code=True,
                                          dtype=getattr(torch, spec.dtype),
                                          device_map="auto" if device == "cuda" else device)
    except OSError as err:
        raise _hub_error(spec, err) from None
    return UltravoxSpeechLLM(model, processor, model_id=spec.repo, revision=spec.revision, name=spec.id)
