"""The SpeechLLM interface: answers items exactly as its matched cascade does, and opens its backbone to probes.

A speech-LLM turns (prompt with an audio placeholder, audio) into prompt *embeddings* with the audio merged in
by the model's own code; from there ``answer_from_prefix`` — the cascade's code — scores the options. So the
only difference between the pair is what fills the content slot.

Probe access (``decoder_layers``, ``final_norm``, ``unembedding``, ``audio_positions``) is generic over
transformers' native classes. **Pre-norm vs normed**: transformers 5 returns ``hidden_states[-1]`` already
passed through the final norm, while every other entry is the raw residual stream. ``residual_stream`` never
uses ``output_hidden_states``: it records each decoder layer's *input* and the last layer's *output* with hooks,
so all L+1 entries are pre-norm; ``lens_logits(h)`` applies ``final_norm`` then ``unembedding`` — the only
place the norm is applied.
"""
from __future__ import annotations

from typing import Any

import torch
from transformers import GenerationMixin

from harness import prompts
from harness.audio import Audio
from harness.lm import Backbone
from harness.systems.base import Answer, answer_from_prefix, answers_from_prefixes
from harness.tasks import Item, Task


class _Captured(Exception):
    """Raised from a hook to stop a forward once the merged prompt embeddings are captured."""


class TextView(torch.nn.Module):
    """The speech-LLM called on ``inputs_embeds`` only: what ``lm.Backbone`` scores and generates with.

    ``generate`` is GenerationMixin's own, bypassing class overrides that switch adapters off when no audio
    features are passed (Granite-Speech) — the embeddings already hold the audio.
    """

    def __init__(self, model: torch.nn.Module, before_call=None):
        super().__init__()
        self.inner = model
        self._before_call = before_call or (lambda m: None)

    def get_input_embeddings(self):
        return self.inner.get_input_embeddings()

    def forward(self, **kwargs):
        self._before_call(self.inner)
        return self.inner(**kwargs)

    def generate(self, **kwargs):
        self._before_call(self.inner)
        return GenerationMixin.generate(self.inner, **kwargs)


class SpeechLLM:
    """A speech-LLM as a System. Subclasses/adapters provide ``prepare`` and ``prefix_embeds``."""

    needs_audio = True

    def __init__(self, model: torch.nn.Module, tokenizer, *, model_id: str, revision: str, name: str,
                 audio_slot: str, audio_token_id: int, before_text_call=None):
        self.model = model.eval()
        self.name = name
        self.audio_slot = audio_slot           # what stands where the cascade puts the transcript
        self.audio_token_id = int(audio_token_id)
        self.backbone = Backbone(model=TextView(model, before_text_call), tokenizer=tokenizer,
                                 model_id=model_id, revision=revision)
        self.fingerprint = f"speech-llm[{self.backbone.fingerprint}]"

    # -- to implement per loader -----------------------------------------------------------------------
    def prepare(self, messages: list[dict], audio: Audio) -> dict[str, Any]:
        """Model inputs (``input_ids`` [1, T] + audio tensors) for ``messages`` holding ``audio_slot``."""
        raise NotImplementedError

    def prefix_embeds(self, inputs: dict[str, Any]) -> torch.Tensor:
        """[T, H] prompt embeddings with the audio merged in, by the model's own code."""
        raise NotImplementedError

    # -- shared by the adapters ------------------------------------------------------------------------
    def _to_model(self, inputs: dict) -> dict:
        """Tensors moved to the model's device; floating ones to its dtype."""
        weight = self.model.get_input_embeddings().weight
        return {k: (v.to(weight.device, weight.dtype) if v.is_floating_point() else v.to(weight.device))
                if torch.is_tensor(v) else v for k, v in inputs.items()}

    @torch.no_grad()
    def _capture(self, inputs: dict[str, Any], module: torch.nn.Module, *, output: bool = False) -> torch.Tensor:
        """Run the model's own forward until ``module``; return the ``inputs_embeds`` it is called with (or its
        output when ``output``) as [T, H], and stop the forward there."""
        captured: list[torch.Tensor] = []

        def pre(mod, args, kwargs):
            if kwargs.get("inputs_embeds") is None:
                raise RuntimeError(f"{self.name}: {type(mod).__name__} was called without inputs_embeds")
            captured.append(kwargs["inputs_embeds"])
            raise _Captured

        def post(mod, args, out):
            captured.append(out)
            raise _Captured

        handle = (module.register_forward_hook(post) if output
                  else module.register_forward_pre_hook(pre, with_kwargs=True))
        try:
            self.model(**self._to_model(inputs), use_cache=False)
        except _Captured:
            pass
        finally:
            handle.remove()
        if not captured:
            raise RuntimeError(f"{self.name}: the merge point {type(module).__name__} was never reached")
        return captured[0][0]

    # -- answering (the cascade's code from here on) ---------------------------------------------------
    def inputs_for(self, task: Task, item: Item, audio: Audio) -> dict[str, Any]:
        return self.prepare(prompts.messages(task, item, self.audio_slot), audio)

    def answer(self, task: Task, item: Item, audio: Audio | None) -> Answer:
        if audio is None:
            raise ValueError(f"item {item.id!r}: {self.name} needs audio (got none)")
        embeds = self.prefix_embeds(self.inputs_for(task, item, audio))
        return answer_from_prefix(self.backbone, task, item, embeds)

    def answer_batch(self, task: Task, items: list[Item], audios: list[Audio]) -> list[Answer]:
        """Answers for several items; the expensive part (option scoring) runs as one padded batch."""
        for item, audio in zip(items, audios, strict=True):
            if audio is None:
                raise ValueError(f"item {item.id!r}: {self.name} needs audio (got none)")
        prefixes = [self.prefix_embeds(self.inputs_for(task, it, a)) for it, a in zip(items, audios)]
        return answers_from_prefixes(self.backbone, task, items, prefixes)

    # -- probe access -----------------------------------------------------------------------------------
    @property
    def text_model(self) -> torch.nn.Module:
        """The decoder stack (embeddings → layers → norm) inside the speech-LLM."""
        return self.model.get_decoder()

    @property
    def decoder_layers(self) -> torch.nn.ModuleList:
        return self.text_model.layers

    @property
    def final_norm(self) -> torch.nn.Module:
        return self.text_model.norm

    @property
    def unembedding(self) -> torch.nn.Module:
        return self.model.get_output_embeddings()

    def audio_positions(self, inputs: dict[str, Any]) -> torch.Tensor:
        """Sequence positions (LongTensor [n_audio]) that hold audio in ``inputs`` (batch of one)."""
        return (inputs["input_ids"][0] == self.audio_token_id).nonzero().flatten().cpu()

    @torch.no_grad()
    def residual_stream(self, inputs: dict[str, Any], *, upto: int | None = None) -> torch.Tensor:
        """PRE-final-norm residual stream [L+1, T, H]: the input of every decoder layer, then the last output.

        Entry 0 is what enters layer 0 (after any embedding multiplier), entry L the last layer's output
        *before* ``final_norm``. Never mix with ``output_hidden_states`` (its last entry is normed).
        ``upto``: entries 0..upto only, and the layers above never run — fitting an eraser at one layer needs
        nothing later (``harness.probes.leace.fit_erasers``: about half the cost of its sequential passes).
        """
        layers, states = self.decoder_layers, []
        last = len(layers) if upto is None else int(upto)
        if not 0 <= last <= len(layers):
            raise ValueError(f"{self.name}: upto={upto} is not a residual entry in 0..{len(layers)}")

        class Enough(Exception):
            """Raised from the hook on layer ``last``: the entries wanted are recorded."""

        def grab_input(module, args, kwargs):
            states.append((args[0] if args else kwargs["hidden_states"]).detach()[0])
            if len(states) > last:
                raise Enough

        def grab_output(module, args, output):
            states.append((output[0] if isinstance(output, tuple) else output).detach()[0])

        handles = [layer.register_forward_pre_hook(grab_input, with_kwargs=True) for layer in layers]
        handles.append(layers[-1].register_forward_hook(grab_output))
        try:
            embeds = self.prefix_embeds(inputs)
            self.backbone.model(inputs_embeds=embeds.unsqueeze(0),
                                attention_mask=torch.ones(1, embeds.shape[0], dtype=torch.long,
                                                          device=embeds.device))
        except Enough:
            pass
        finally:
            for h in handles:
                h.remove()
        return torch.stack(states).float()

    def hidden_states_at_audio(self, task: Task, item: Item, audio: Audio) -> torch.Tensor:
        """Pre-norm residual stream at the audio positions: [L+1, n_audio, H]."""
        inputs = self.inputs_for(task, item, audio)
        return self.residual_stream(inputs)[:, self.audio_positions(inputs)]

    @torch.no_grad()
    def lens_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Logit lens on PRE-norm states: unembedding(final_norm(h))."""
        w = self.unembedding.weight
        return self.unembedding(self.final_norm(h.to(w.device, w.dtype))).float()

    @torch.no_grad()
    def lens_top1(self, h: torch.Tensor) -> torch.Tensor:
        """``lens_logits(h).argmax(-1)`` without the float32 logits: an exact bfloat16-screened argmax on a CPU
        (``harness.systems.lens_top1``); an unembedding with a bias takes the plain path."""
        from harness.systems.lens_top1 import exact_top1

        w = self.unembedding.weight
        if getattr(self.unembedding, "bias", None) is not None:
            return self.lens_logits(h).argmax(-1)
        return exact_top1(self.final_norm(h.to(w.device, w.dtype)), w)
