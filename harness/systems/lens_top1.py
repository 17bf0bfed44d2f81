"""The logit lens's top-1 token per row, exactly, for about half the CPU cost of a float32 unembedding.

Why: on a CPU the lens's whole cost is the unembedding — rows × vocabulary × width multiply-adds — and the lens keeps
only each row's top-1 token. A bfloat16 product (AVX512-BF16) runs ~1.7× faster than float32 but is not exact, so it
only *screens*: its error is bounded per row, and the float32 winner is provably among the screen's best few.

Bound, for a row ``h`` and vocabulary rows ``w_v`` (``u = 2⁻⁸``: bfloat16 rounding; ``γ = Hε/(1−Hε)``, ``ε = 2⁻²⁴``,
``H`` the width: float32 accumulation), with ``ẑ_v`` the screen's logit and ``z_v`` the float32 one:

    |ẑ_v − z_v| ≤ E = (2u + u² + 3γ)·‖h‖·max_v ‖w_v‖ + 1.01·u·max_v |ẑ_v|

(inputs rounded to bfloat16; the sum accumulated in float32; the output rounded to bfloat16; the float32 logit's own
accumulation error; Cauchy–Schwarz for Σ|h_i||w_vi|). The float32 argmax ``v*`` has ``ẑ_v* ≥ max ẑ − 2E``. So when the
screen's ``CANDIDATES``-th best lies below that line, ``v*`` is among its top ``CANDIDATES``, whose float32 logits
(one dot product each) decide; any other row is computed in full float32. Ties go to the lowest token id, as
``torch.argmax`` does. ``tests/test_lens.py`` checks equality with the float32 argmax on a real model's lens rows.
"""
from __future__ import annotations

import torch

BF16_ROUNDING = 2.0 ** -8
FP32_ROUNDING = 2.0 ** -24
CANDIDATES = 16
ROWS = 512          # rows per screening pass (bounds the screen held at once: rows × vocabulary bfloat16 values)


def screen_pays() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16, or AMX); elsewhere the screen would be slower."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def screen_error(h: torch.Tensor, weight_norm_max: torch.Tensor, screen_abs_max: torch.Tensor) -> torch.Tensor:
    """Per row, the most the bfloat16 screen's logit can differ from the float32 one (see the module docstring)."""
    u = BF16_ROUNDING
    width = h.shape[-1]
    gamma = width * FP32_ROUNDING / (1 - width * FP32_ROUNDING)
    return (2 * u + u * u + 3 * gamma) * h.norm(dim=-1) * weight_norm_max + 1.01 * u * screen_abs_max


@torch.no_grad()
def exact_top1(h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``argmax_v h @ weight[v]`` per row of ``h`` [R, H] (float32 ``weight`` [V, H], no bias): [R] token ids.

    A CPU float32 weight takes the bfloat16 screen where the CPU has native bfloat16 (``screen_pays``); anything else
    (a GPU, a bfloat16 model, an older CPU) is computed as is."""
    if weight.device.type != "cpu" or weight.dtype != torch.float32 or h.shape[0] == 0 or not screen_pays():
        return (h.to(weight.dtype) @ weight.T).argmax(-1)
    h = h.float()
    screen_weight = weight.bfloat16()
    weight_norm_max = weight.norm(dim=-1).max()
    out = []
    for rows in h.split(ROWS):
        screen = rows.bfloat16() @ screen_weight.T
        best, idx = screen.topk(min(CANDIDATES, weight.shape[0]), dim=-1)
        best = best.float()
        error = screen_error(rows, weight_norm_max, screen.abs().amax(-1).float())
        enough = best[:, -1] < best[:, 0] - 2 * error
        exact = torch.einsum("rkh,rh->rk", weight[idx], rows)
        lowest_of_ties = torch.where(exact == exact.amax(-1, keepdim=True), idx, weight.shape[0]).amin(-1)
        top = torch.where(enough, lowest_of_ties, 0)
        if not bool(enough.all()):
            top[~enough] = (rows[~enough] @ weight.T).argmax(-1)
        out.append(top)
    return torch.cat(out)
