"""Alignment warm start for the reference projector: regress each audio embedding onto the token spoken there.

Why: trained only end-to-end through the frozen backbone (repeat cross-entropy and/or distillation), the
projector learnt the gist of a sentence but never to *read* it — repeat cross-entropy sat at ~3 nats a token
for hundreds of steps, on the training clips themselves (issue 5's curves). The backbone copies text well
(given the transcript as text it repeats the 12 held-out statements at WER 0.21), so what is missing is
audio embeddings that look like the tokens being spoken. This stage gives the projector that start cheaply, without the backbone in the loop:

- ASR word timestamps (faster-whisper, ``word_timestamps=True``) place each transcript word in time (kept on
  disk: the 916 fit clips cost ~8 min of 2-core CPU the first time, seconds after);
- the backbone's tokens of a word go to the audio positions the word overlaps most
  (``harness.positions.position_tokens``), so a position's target is the *input embedding* of a token
  of the word spoken there — layout "spread" ("fire fire fl ies" for "fireflies" over four positions) or
  "onset" ("fire fl ies ␣", the rest of the word and the silences on a filler token; see
  ``harness.positions.LAYOUTS``);
- positions without a token of their own target the layout's filler with a smaller weight, so padding stays
  at the scale and place of an ordinary, uninformative token;
- the projector (and nothing else) is fitted by weighted mean squared error with Adam on the cached encoder rows.

The end-to-end objectives then start from embeddings near the spoken tokens. Only the "onset" layout is one
the frozen backbone can read if matched exactly (``harness.positions.LAYOUTS``); after 1,500 align steps on 916
clips neither layout reads yet on its own (held-out repeat WER 1.27 onset, 2.46 spread, 2026-11-25). End to end (align +
word salad + distillation, 2026-11-26) onset did not beat spread: level on the trainer's 12-sentence check at
~750 steps (0.78 vs 0.82), 0.73 on all 24 after 750 steps vs spread's 0.64 after 969.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import torch

from harness.positions import FILLER, position_tokens, seconds_per_position

SILENCE_WEIGHT = 0.1        # weight of the filler positions (no token of their own) in the regression


def align_projector(trainer, clips: Sequence, *, steps: int = 600, lr: float = 1e-3, rows_per_step: int = 4096,
                    seed: int = 0, layout: str = "spread", progress: Callable[[str], None] = print) -> dict:
    """Fit ``trainer``'s projector so each audio embedding ≈ the input embedding of the token spoken there.

    ``clips``: [(example, audio, transcript)] — the trainer's fit set. Returns a summary for the manifest
    (clips, rows, share of positions on a word, loss first/last, cosine to the target on word positions, seconds).
    """
    from harness.asr import load_asr

    if not clips:
        raise ValueError("align_projector: no clips to align (check --align-clips and the fit set)")
    t0 = time.time()
    bb, model = trainer.backbone, trainer.model
    emb = model.get_input_embeddings().weight.detach().float()
    silence = bb.reply_ids(FILLER[layout])[0]
    seconds = seconds_per_position(trainer.system)
    asr = load_asr()
    X, T, W = [], [], []
    for n, (ex, audio, _) in enumerate(clips):
        state = trainer._encoder_state(n, audio)          # the trainer's cache: reused by the fit that follows
        rows = state.reshape(-1, model.config.audio_config.intermediate_size)
        tokens, _ = position_tokens(bb, asr.transcribe(audio, cached=True).words, rows.shape[0], seconds, layout)
        X.append(rows)
        T.append(torch.tensor([silence if t is None else t for t in tokens]))
        W.append(torch.tensor([SILENCE_WEIGHT if t is None else 1.0 for t in tokens]))
        if (n + 1) % 100 == 0 or n + 1 == len(clips):
            progress(f"align: ASR word timestamps {n + 1}/{len(clips)} clips ({time.time() - t0:.0f} s)")
    X = torch.cat(X)
    T, W = torch.cat(T).to(X.device), torch.cat(W).to(X.device)
    target = emb[T]
    proj = model.model.multi_modal_projector
    params = list(proj.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    scale = float(emb.pow(2).mean())
    losses = []
    for step in range(steps):
        idx = torch.randint(0, X.shape[0], (min(rows_per_step, X.shape[0]),), generator=gen).to(X.device)
        with torch.enable_grad():
            out = proj(X[idx])
            loss = ((out - target[idx]).pow(2).mean(-1) * W[idx]).sum() / W[idx].sum() / scale
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 100 == 0 or step + 1 == steps:
            progress(f"align: step {step + 1}/{steps} relative MSE {sum(losses[-100:]) / len(losses[-100:]):.4f}")
    with torch.no_grad():
        words = W == 1.0
        cos = torch.nn.functional.cosine_similarity(proj(X[words][:20000]), target[words][:20000], dim=-1)
    return {"layout": layout, "clips": len(clips), "rows": int(X.shape[0]),
            "word_share": round(float(words.float().mean()), 4),
            "steps": steps, "lr": lr, "loss_first": round(sum(losses[:20]) / min(20, len(losses)), 4),
            "loss_last": round(sum(losses[-20:]) / min(20, len(losses)), 4),
            "cosine_on_words": round(float(cos.mean()), 4), "seconds": round(time.time() - t0)}
