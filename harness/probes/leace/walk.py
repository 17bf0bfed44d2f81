"""One prompt's forward walked through the decoder layer by layer, so it can pause at a residual entry, have an
eraser applied there, and go on — the sequential LEACE fit in one pass per item and concept instead of one pass
per erased layer (:func:`.fit.fit_erasers`).

How: one forward of the backbone (cache off) records every decoder layer's call — the other arguments the model
passed besides the hidden states (attention mask, rotary position embeddings…: functions of the prompt alone, not
of the states) — with layers 1.. standing in as the identity, so the recording costs one layer, not the whole
decoder. From there each layer is called with those same arguments on the walked (and edited) state.
With the cache off a layer called again appends nothing anywhere, so a walk computes what the hooked forward
(:func:`.hooks.erased_stream`) computes; ``tests/test_leace.py`` checks that on every native class.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .erasers import Eraser


class _Recorded(Exception):
    """Raised from the hook on the layer past the last one needed: the calls wanted are recorded."""


def erase_positions(eraser: Eraser, layer: int, h: torch.Tensor, positions: torch.Tensor, scope: str) -> torch.Tensor:
    """``h`` [T, H] with ``eraser``'s layer applied at ``positions`` (``scope="audio"``) or everywhere ("all") —
    what the erasure hooks do to the prompt pass."""
    if scope == "all":
        return eraser.erase(layer, h)
    out = h.clone()
    idx = positions.to(h.device)
    out[idx] = eraser.erase(layer, h[idx])
    return out


class LayerWalk:
    """The recorded calls of decoder layers 0..upto−1 for one prompt, and the state entering layer 0."""

    @torch.no_grad()
    def __init__(self, system, inputs: dict, upto: int):
        layers = system.decoder_layers
        if not 0 <= upto <= len(layers):
            raise ValueError(f"{system.name}: upto={upto} is not a residual entry in 0..{len(layers)}")
        self.system, self.upto = system, int(upto)
        self.calls: list[tuple[tuple, dict]] = []
        self.entry0: torch.Tensor | None = None
        template: list = []         # layer 0's real output: the shape every stand-in returns

        def record(i):
            def hook(module, args, kwargs):
                if i == 0:
                    self.entry0 = (args[0] if args else kwargs["hidden_states"]).detach()[0]
                if i == self.upto:
                    raise _Recorded
                self.calls.append((tuple(args[1:]), {k: v for k, v in kwargs.items() if k != "hidden_states"}))
            return hook

        def stand_in(*args, **kwargs):
            """Layers 1.. are only recorded here, not run (the walk runs them): hand the input on unchanged."""
            h = args[0] if args else kwargs["hidden_states"]
            out = template[0]
            return (h, *out[1:]) if isinstance(out, tuple) else h

        handles = [layer.register_forward_pre_hook(record(i), with_kwargs=True) for i, layer in enumerate(layers)]
        handles.append(layers[0].register_forward_hook(lambda module, args, output: template.append(output)))
        own = [layer.__dict__.get("forward") for layer in layers[1:]]   # accelerate's device hooks live there
        for layer in layers[1:]:
            layer.forward = stand_in            # an instance attribute: nn.Module.__call__ finds it first
        try:
            embeds = system.prefix_embeds(inputs)
            system.backbone.model(inputs_embeds=embeds.unsqueeze(0), use_cache=False,
                                  attention_mask=torch.ones(1, embeds.shape[0], dtype=torch.long, device=embeds.device))
        except _Recorded:
            pass
        finally:
            for handle in handles:
                handle.remove()
            for layer, forward in zip(layers[1:], own):
                if forward is None:
                    del layer.forward
                else:
                    layer.forward = forward
        if len(self.calls) != self.upto or self.entry0 is None:
            raise RuntimeError(f"{system.name}: recorded {len(self.calls)} decoder layer calls, expected {self.upto}")

    def cursor(self) -> Cursor:
        """A state to walk on from entry 0."""
        return Cursor(self, 0, self.entry0)


class Cursor:
    """A walk's state at one residual entry; :meth:`advance` runs the layers up to another entry."""

    def __init__(self, walk: LayerWalk, at: int, state: torch.Tensor):
        self.walk, self.at, self.state = walk, int(at), state

    @torch.no_grad()
    def advance(self, to: int) -> torch.Tensor:
        """Run layers ``at``..``to``−1 on the state; return the state at entry ``to`` [T, H]."""
        if not self.at <= to <= self.walk.upto:
            raise ValueError(f"cannot walk from entry {self.at} to {to} (recorded up to {self.walk.upto})")
        h = self.state.unsqueeze(0)
        for i in range(self.at, to):
            args, kwargs = self.walk.calls[i]
            out = self.walk.system.decoder_layers[i](h, *args, **kwargs)
            h = out[0] if isinstance(out, tuple) else out
        self.at, self.state = int(to), h[0]
        return self.state

    def erase(self, eraser: Eraser, positions: torch.Tensor, scope: str) -> None:
        """Apply ``eraser``'s layer at the current entry (as its hook would) before walking on."""
        self.state = erase_positions(eraser, self.at, self.state, positions, scope)
