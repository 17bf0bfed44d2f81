"""Ultravox as a SpeechLLM: our own implementation (``ultravox_model``/``ultravox_processor``/``ultravox_weights``),
no remote code.

The hub repos ship modelling code written for transformers 4 (it does not load under the transformers 5 we pin:
the processor fails its type check, the model calls removed internals and leaves the language model on the meta
device) and that code fetches the Llama from ``text_model_id`` at its default branch. Here the release's own
weights (audio tower, projector, any language-model weights or LoRA deltas) are loaded onto the registry's
backbone at its pinned revision; ``tests/test_parity_ultravox.py`` matches upstream's logits on a tiny checkpoint.

Inputs (``UltravoxProcessor``): ONE rendered string holding ``<|audio|>``, the waveform and ``sampling_rate``; the
placeholder becomes ``audio_token_len`` copies of the tokenizer's EOS token per ≤30 s chunk, with
``audio_token_start_idx``/``audio_token_len`` saying which rows the model overwrites. ``audio_positions`` reads
those (EOS also ends chat turns, so token ids cannot locate the audio).

The capture hook for the merged prompt sits at the input of the language model's decoder
(``language_model.get_decoder()``), as for ``hf_native``; scoring and generation after the prefix go straight to
``model.language_model`` (a plain transformers causal LM).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from harness.audio import SAMPLE_RATE, Audio
from harness.availability import TrustRemoteCodeRequired, require_opt_in  # noqa: F401  (kept importable)
from harness.systems.load_errors import HubUnavailable  # noqa: F401  (raised by ``load``)
from harness.systems.speech_llm import SpeechLLM
from harness.systems.ultravox_processor import PLACEHOLDER


class UltravoxSpeechLLM(SpeechLLM):
    """An ``UltravoxModel`` + ``UltravoxProcessor`` as a SpeechLLM.

    ``model`` needs ``.language_model`` (a transformers causal LM) and a ``forward`` that accepts the
    processor's outputs as keyword arguments; ``processor`` needs ``.tokenizer`` and the
    ``__call__(text=str, audio=array, sampling_rate=int)`` described in the module docstring.
    ``provenance``: what was loaded from where (``ultravox_weights.Provenance``), for the doctor.
    """

    family_name = "ultravox"      # its entry in harness.families (seconds per audio position, ...)

    def __init__(self, model: torch.nn.Module, processor, *, model_id: str, revision: str, name: str | None = None,
                 provenance=None):
        self.provenance = provenance
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

        The hook sits on the decoder, not on ``language_model``: that works for any model that calls its
        language model's ``forward`` directly (which bypasses module hooks) as well as for ours."""
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
def load(spec, *, device: str = "cuda", dtype: str | None = None) -> UltravoxSpeechLLM:
    """The release at its pinned revision on the registry's backbone, as a SpeechLLM; failures say what to do
    (``harness.systems.load_errors``)."""
    from harness.availability import free_gpu_gb, memory_error
    from harness.systems.load_errors import ModelLoadError, explained
    from harness.systems.ultravox_weights import load_pretrained

    if device.startswith("cuda"):
        problem = memory_error(spec, free_gpu_gb())
        if problem:
            raise ModelLoadError(f"{problem}: free the GPU or use a larger one")
    with explained(spec):
        model, processor, provenance = load_pretrained(
            spec.repo, spec.revision, spec.backbone.repo, spec.backbone.revision,
            dtype=getattr(torch, dtype or spec.dtype), device=device)
    return UltravoxSpeechLLM(model, processor, model_id=spec.repo, revision=spec.revision, name=spec.id,
                             provenance=provenance)
