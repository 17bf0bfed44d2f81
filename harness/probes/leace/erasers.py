"""Erasers: per residual entry, the compact rank-r form x ↦ x − ((x − b) Rᵀ) Lᵀ of an erasing projection, and the
controls built to match one.

**Controls**: :func:`random_eraser` — a seeded orthogonal projection onto the complement of a random subspace with
the text eraser's rank at each of its layers; :func:`damage_matched_eraser` — a random subspace moving the
activations as much as the text eraser did; :func:`identity_eraser` — a no-op (the collapse claim's mutant).
An eraser's fingerprint (sha256 over its config and matrices) is part of the runner's cache key.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

RANK_TOL = 1e-6          # singular values of the erased part below this × the largest are numerical zeros


@dataclass(frozen=True, eq=False)
class Eraser:
    """Per residual entry: x ↦ x − ((x − bias) @ right.T) @ left.T, left [H, r], right [r, H] (float32, CPU)."""

    name: str
    left: Mapping[int, torch.Tensor] = field(repr=False)
    right: Mapping[int, torch.Tensor] = field(repr=False)
    bias: Mapping[int, torch.Tensor] = field(repr=False)     # empty when not affine
    config: Mapping = field(default_factory=dict)
    fingerprint: str = ""
    _moved: dict = field(default_factory=dict, repr=False)   # (layer, device) → (left, right, bias) copies

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(sorted(self.left))

    @property
    def ranks(self) -> dict[int, int]:
        return {layer: int(self.left[layer].shape[1]) for layer in self.layers}

    @property
    def dim(self) -> int:
        return int(next(iter(self.left.values())).shape[0])

    def erase(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """Apply the layer's eraser to [..., H] states (computed in float32, returned in ``h``'s dtype)."""
        key = (layer, str(h.device))
        if key not in self._moved:      # hooks run once per layer and decoding step: copy to the device once
            bias = self.bias.get(layer)
            self._moved[key] = (self.left[layer].to(h.device), self.right[layer].to(h.device),
                                None if bias is None else bias.to(h.device))
        left, right, bias = self._moved[key]
        x = h.float()
        delta = x - bias if bias is not None else x
        return (x - (delta @ right.T) @ left.T).to(h.dtype)

    def to_dict(self) -> dict:
        return {"name": self.name, "fingerprint": self.fingerprint, "layers": list(self.layers),
                "ranks": {str(k): v for k, v in self.ranks.items()}, **dict(self.config)}


def make_eraser(name: str, left: Mapping, right: Mapping, bias: Mapping | None = None,
                config: Mapping | None = None) -> Eraser:
    """An Eraser with its fingerprint: sha256 over the config and every matrix's float32 bytes."""
    left = {int(k): v.detach().float().cpu().contiguous() for k, v in left.items()}
    right = {int(k): v.detach().float().cpu().contiguous() for k, v in right.items()}
    bias = {int(k): v.detach().float().cpu().contiguous() for k, v in (bias or {}).items()}
    config = dict(config or {})
    h = hashlib.sha256(json.dumps([name, config], sort_keys=True, default=str).encode())
    for layer in sorted(left):
        for part in (left[layer], right[layer], bias.get(layer)):
            if part is not None:
                h.update(str(tuple(part.shape)).encode())
                h.update(part.numpy().tobytes())
    return Eraser(name, left, right, bias, config, h.hexdigest()[:16])


def _compact(proj_left: torch.Tensor, proj_right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The erased part L·R as its exact rank-r factors (U·S, Vh) — LEACE may hand back d×d factors."""
    u, s, vh = torch.linalg.svd(proj_left.double() @ proj_right.double())
    r = int((s > s[0] * RANK_TOL).sum()) if s.numel() and s[0] > 0 else 0
    return u[:, :r] * s[:r], vh[:r]


def random_eraser(like: Eraser, seed: int = 0, name: str = "random") -> Eraser:
    """Orthogonal projection removing a seeded random subspace of ``like``'s rank at each of its layers."""
    left, right = {}, {}
    for layer, r in like.ranks.items():
        gen = torch.Generator().manual_seed(int(seed) * 100_003 + int(layer))
        q, _ = torch.linalg.qr(torch.randn(like.dim, r, generator=gen, dtype=torch.float64))
        left[layer], right[layer] = q, q.T
    return make_eraser(name, left, right, None, {"kind": "random-orthogonal", "seed": seed,
                                                 "rank_matched_to": like.fingerprint})


def damage_matched_eraser(like: Eraser, displacement: Mapping[int, float], seed: int = 0,
                          name: str = "damage-matched") -> Eraser:
    """A seeded random orthogonal projection per layer whose rank r = round(d · f), f = the share of the
    activations' energy (‖Δx‖²/‖x‖² at the erased positions) that ``like`` removed there. A uniformly random
    rank-r subspace removes r/d of any vector's energy in expectation, so this control displaces the activations
    as much as the text eraser did — damage without the concept. (The rank-matched control removes far less when
    the text eraser moves a few directions a lot.)"""
    left, right, ranks = {}, {}, {}
    for layer in like.layers:
        r = int(min(like.dim - 1, max(1, round(like.dim * float(displacement[layer])))))
        gen = torch.Generator().manual_seed(int(seed) * 100_003 + int(layer) + 7_919)
        q, _ = torch.linalg.qr(torch.randn(like.dim, r, generator=gen, dtype=torch.float64))
        left[layer], right[layer], ranks[layer] = q, q.T, r
    return make_eraser(name, left, right, None, {
        "kind": "random-orthogonal, damage-matched", "seed": seed, "damage_matched_to": like.fingerprint,
        "displacement": {str(k): round(float(v), 6) for k, v in displacement.items()}})


def identity_eraser(like: Eraser, name: str = "no-op") -> Eraser:
    """Rank 0 at ``like``'s layers: erases nothing (the collapse claim's mutant)."""
    empty = torch.zeros(like.dim, 0, dtype=torch.float64)
    return make_eraser(name, {k: empty for k in like.layers}, {k: empty.T for k in like.layers}, None,
                       {"kind": "no-op", "replaces": like.fingerprint})
