"""Applying an eraser: forward hooks on the decoder layers, and a SpeechLLM answering under them.

:func:`erasing` registers the hooks with ``prepend=True`` so they run before transformers 5's own output-recording
hooks (``utils/output_capturing.py`` records ``hidden_states`` with forward hooks on the decoder layers; the first
entry from layer 0's input). Entry l ≥ 1 is erased in layer l−1's *output* (= layer l's input, and what
``output_hidden_states`` records); entry 0 in a forward *pre*-hook on layer 0. Only the prompt's audio positions
are erased (``scope="audio"``): a call whose sequence is at least the prompt long starts at position 0 (the prompt
pass of option scoring and of generation, ``residual_stream``); shorter calls are cached steps past the prompt (an
option's later tokens, generated tokens), left alone — they still attend to the erased keys/values cached by the
prompt pass. ``scope="all"`` erases every position of every call (generated tokens included), the paper's reading
of "during generation too".

:class:`ErasedSystem` answers like its SpeechLLM under an eraser; its fingerprint (the runner's cache key) holds
the eraser's, a digest of the projection matrices and the config. :func:`displacement` measures how much an eraser
moves the activations (the damage-matched control's rank).
"""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from harness import compute
from harness.audio import Audio
from harness.systems.base import Answer, answer_from_prefix
from harness.tasks import Item, Task

from .erasers import Eraser

SCOPES = ("audio", "all")


def _entries(system) -> int:
    return len(system.decoder_layers) + 1


def _check_layers(system, layers: Sequence[int]) -> tuple[int, ...]:
    layers = tuple(sorted({int(x) for x in layers}))
    bad = [x for x in layers if not 0 <= x < _entries(system)]
    if not layers or bad:
        raise ValueError(f"{system.name}: layers {list(layers)} must be residual entries in 0..{_entries(system) - 1}")
    return layers


def _stream_at_audio(system, task: Task, item: Item, audio: Audio):
    inputs = system.inputs_for(task, item, audio)
    positions = system.audio_positions(inputs)
    if len(positions) == 0:
        raise ValueError(f"item {item.id!r}: {system.name} put no audio positions in the prompt")
    return inputs, positions


@dataclass
class HookCounter:
    """How often the erasure hooks ran and how often they changed something (tests read it)."""

    calls: int = 0
    erasing: int = 0
    lengths: list = field(default_factory=list)   # sequence length of every hooked call
    energy: dict = field(default_factory=dict)    # layer → [Σ‖Δx‖², Σ‖x‖²] over the erased positions


@contextmanager
def erasing(system, eraser: Eraser, positions: torch.Tensor, prompt_len: int, *, scope: str = "audio",
            counter: HookCounter | None = None):
    """Erase ``eraser``'s concept at ``positions`` of the prompt (or everywhere: ``scope="all"``) while inside."""
    if scope not in SCOPES:
        raise ValueError(f"scope {scope!r} is not one of {SCOPES}")
    layers = _check_layers(system, eraser.layers)
    positions = torch.as_tensor(positions, dtype=torch.long)
    if positions.numel() and int(positions.max()) >= prompt_len:
        raise ValueError(f"{system.name}: audio positions reach {int(positions.max())}, past the prompt "
                         f"({prompt_len} positions)")
    counter = counter if counter is not None else HookCounter()

    def apply(layer: int, h: torch.Tensor) -> torch.Tensor | None:
        counter.calls += 1
        counter.lengths.append(int(h.shape[1]))
        if scope == "all":
            counter.erasing += 1
            return eraser.erase(layer, h)
        if h.shape[1] < prompt_len:        # a cached generation step: positions ≥ prompt_len, nothing to erase
            return None
        idx = positions.to(h.device)
        out = h.clone()
        out[:, idx] = eraser.erase(layer, h[:, idx])
        counter.erasing += 1
        acc = counter.energy.setdefault(layer, [0.0, 0.0])
        acc[0] += float((out[:, idx] - h[:, idx]).float().pow(2).sum())
        acc[1] += float(h[:, idx].float().pow(2).sum())
        return out

    def post(layer):
        def hook(module, args, output):
            h = output[0] if isinstance(output, tuple) else output
            new = apply(layer, h)
            if new is None:
                return None
            return (new,) + tuple(output[1:]) if isinstance(output, tuple) else new
        return hook

    def pre(layer):
        def hook(module, args, kwargs):
            if args:
                new = apply(layer, args[0])
                return None if new is None else ((new,) + tuple(args[1:]), kwargs)
            new = apply(layer, kwargs["hidden_states"])
            return None if new is None else (args, {**kwargs, "hidden_states": new})
        return hook

    decoder = system.decoder_layers
    handles = []
    try:
        for layer in layers:
            if layer == 0:
                handles.append(decoder[0].register_forward_pre_hook(pre(0), with_kwargs=True, prepend=True))
            else:
                handles.append(decoder[layer - 1].register_forward_hook(post(layer), prepend=True))
        yield counter
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def erased_stream(system, eraser: Eraser | None, inputs: dict, *, scope: str = "audio",
                  upto: int | None = None) -> torch.Tensor:
    """``residual_stream(inputs, upto=upto)`` [L+1 or upto+1, T, H] with ``eraser`` hooked in (plain when None)."""
    if eraser is None:
        return system.residual_stream(inputs, upto=upto)
    with erasing(system, eraser, system.audio_positions(inputs), inputs["input_ids"].shape[-1], scope=scope):
        return system.residual_stream(inputs, upto=upto)


class ErasedSystem:
    """A SpeechLLM answering with ``eraser`` hooked into its decoder (scoring and generation alike)."""

    needs_audio = True

    def __init__(self, system, eraser: Eraser, *, scope: str = "audio", name: str | None = None):
        if scope not in SCOPES:
            raise ValueError(f"scope {scope!r} is not one of {SCOPES}")
        _check_layers(system, eraser.layers)
        hidden = system.model.get_input_embeddings().weight.shape[1]
        if eraser.dim != hidden:
            raise ValueError(f"eraser {eraser.name!r} is for width {eraser.dim}, {system.name} has {hidden}")
        self.system, self.eraser, self.scope = system, eraser, scope
        self.name = name or f"{system.name}-erased[{eraser.name}]"
        self.fingerprint = f"erased[{system.fingerprint}|eraser:{eraser.fingerprint}|scope:{scope}]"
        self.counter = HookCounter()

    def answer(self, task: Task, item: Item, audio: Audio | None) -> Answer:
        if audio is None:
            raise ValueError(f"item {item.id!r}: {self.name} needs audio (got none)")
        inputs, positions = _stream_at_audio(self.system, task, item, audio)
        embeds = self.system.prefix_embeds(inputs)
        with erasing(self.system, self.eraser, positions, embeds.shape[0], scope=self.scope, counter=self.counter):
            return answer_from_prefix(self.system.backbone, task, item, embeds)


@torch.no_grad()
def displacement(system, task: Task, items: Sequence[Item], audios: Sequence[Audio], eraser: Eraser, *,
                 scope: str = "audio") -> dict[int, float]:
    """Per erased layer: Σ‖Δx‖² / Σ‖x‖² over the audio positions of ``items`` with ``eraser`` hooked in (the
    share of the activations' energy it moves)."""
    counter = HookCounter()
    for item, audio in zip(items, audios):
        inputs, positions = _stream_at_audio(system, task, item, audio)
        with erasing(system, eraser, positions, inputs["input_ids"].shape[-1], scope=scope, counter=counter):
            with compute.timed("leace-displacement"):
                system.residual_stream(inputs, upto=max(eraser.layers))
    return {layer: moved / max(total, 1e-30) for layer, (moved, total) in sorted(counter.energy.items())}
