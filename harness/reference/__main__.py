"""``python -m harness.reference tune-backbone | train ref-cascade|ref-acoustic``: rebuild the committed
reference weights from scratch (seeded, with progress output)."""
from __future__ import annotations

import argparse
import json
import sys

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.reference")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("tune-backbone", help="LoRA-tune the packaged SmolLM2 on the tasks' training splits")
    from harness.positions import LAYOUTS
    from harness.reference import train as T

    tr = sub.add_parser("train", help="train a reference speech-LLM's projector (Ultravox-style distillation)")
    tr.add_argument("mode", choices=T.MODES)
    tr.add_argument("--steps", type=int, default=T.DEFAULT_STEPS,
                    help=f"optimizer steps (default {T.DEFAULT_STEPS}: ~{T.BUDGET_MINUTES} min at the measured "
                         f"~{T.MEASURED_SECONDS_PER_STEP:g} s/step on 2 CPU cores)")
    tr.add_argument("--out", default=None, help="output folder (default fixtures/reference/<mode>)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--batch", type=int, default=None)
    tr.add_argument("--lr", type=float, default=None)
    tr.add_argument("--max-minutes", type=float, default=None,
                    help="stop early (and save) once this much wall time is spent; the schedule still assumes --steps")
    tr.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's choice; use 1 when another heavy job shares 2 cores)")
    tr.add_argument("--device", default="cpu",
                    help="torch device for training, e.g. cuda (default cpu; the committed recipes are CPU budgets)")
    tr.add_argument("--unfreeze-encoder-layers", type=int, default=0,
                    help="ref-acoustic: also train the top K Whisper encoder layers (default 0: projector only)")
    tr.add_argument("--rate-extra", type=int, default=None,
                    help="ref-acoustic: extra speaking-rate clips re-spoken from other tasks' training sentences")
    tr.add_argument("--precision", choices=("bf16", "fp32"), default=None,
                    help="bf16 autocast (default; ~2x faster on CPUs with AVX512-BF16/AMX) or fp32")
    tr.add_argument("--check-every", type=int, default=None, help="steps between held-out checks")
    tr.add_argument("--repeat-share", type=float, default=None,
                    help="share of repeat samples in a batch; the rest keep their relative shares")
    tr.add_argument("--mix", default=None, metavar="repeat=0.2,own=0.2,other=0.1,rate=0.5",
                    help="objective shares in a batch (overrides the mode's default mix)")
    tr.add_argument("--init-from", default=None,
                    help="start from another trained reference folder (e.g. ref-acoustic from ref-cascade)")
    tr.add_argument("--match-text-scale", action="store_true", default=None,
                    help="hold the audio embeddings at the token embeddings' RMS (Trainer.rescale_to_text; "
                         "experimental, off by default)")
    tr.add_argument("--align-steps", type=int, default=None,
                    help="first regress the projector's audio embeddings onto the tokens spoken there (ASR word "
                         "timestamps; harness.reference.align) for this many steps (default 0: off)")
    tr.add_argument("--align-clips", type=int, default=None, help="fit clips used by --align-steps (default 400)")
    tr.add_argument("--align-layout", choices=LAYOUTS, default=None,
                    help="alignment targets: a word's tokens spread over its positions, or once from its onset "
                         "with a filler elsewhere (default spread; see harness.positions.LAYOUTS)")
    tr.add_argument("--scrambled", type=int, default=None,
                    help="add this many word-salad sentences (fit vocabulary, seeded) for the repeat objective only "
                         "(harness.reference.data.scrambled; default 0)")
    fp = sub.add_parser("fit-prosody", help="fit ref-prosody's energy read-out (logistic regression; seconds)")
    fp.add_argument("--rate-extra", type=int, default=240,
                    help="other training sentences re-spoken at the two rates, besides speaking_rate's own")
    fp.add_argument("--out", default=None, help="output folder (default fixtures/reference/ref-prosody)")
    ev = sub.add_parser("evaluate", help="repeat WER on held-out sentences + task accuracy vs the matched cascade")
    ev.add_argument("model", help="registry id of a reference model (ref-cascade, ref-acoustic)")
    ev.add_argument("--items", type=int, default=80, help="items per task (label-balanced; default 80)")
    ev.add_argument("--tasks", nargs="+", default=["topic", "sentiment", "commonsense", "speaking_rate"])
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    if args.command == "tune-backbone":
        from harness.reference.backbone import train

        print(json.dumps(train(progress=lambda m: print(m, flush=True)), indent=2))
    elif args.command == "evaluate":
        from harness.reference.evaluate import evaluate

        print(json.dumps(evaluate(args.model, args.tasks, args.items, progress=lambda m: print(m, flush=True)),
                         indent=2))
    elif args.command == "fit-prosody":
        from harness.reference.prosody import build_prosody

        build_prosody(args.out, rate_extra=args.rate_extra)
    elif args.command == "train":
        if args.threads:
            torch.set_num_threads(args.threads)
        hyper = {k: v for k, v in (("batch", args.batch), ("lr", args.lr), ("rate_extra", args.rate_extra),
                                   ("unfreeze_encoder_layers", args.unfreeze_encoder_layers),
                                   ("precision", args.precision), ("check_every", args.check_every),
                                   ("init_from", args.init_from), ("match_text_scale", args.match_text_scale),
                                   ("align_steps", args.align_steps), ("align_clips", args.align_clips),
                                   ("align_layout", args.align_layout),
                                   ("scrambled", args.scrambled))
                 if v is not None}
        if args.mix:
            try:
                hyper["mix"] = {k.strip(): float(v) for k, v in (p.split("=") for p in args.mix.split(","))}
            except ValueError:
                parser.error(f"--mix {args.mix!r}: expected name=share pairs, e.g. repeat=0.5,own=0.3,other=0.2")
            unknown = set(hyper["mix"]) - {"repeat", "own", "other", "rate"}
            if unknown:
                parser.error(f"--mix: unknown objective(s) {sorted(unknown)}; known: repeat, own, other, rate")
        if args.repeat_share is not None:
            hyper["mix"] = T.with_repeat_share(T.HYPER[args.mode]["mix"], args.repeat_share)
        if args.mode == "ref-cascade" and hyper.get("unfreeze_encoder_layers"):
            parser.error("--unfreeze-encoder-layers is for ref-acoustic (ref-cascade keeps the encoder frozen)")
        print(f"{args.mode}: {args.steps} steps; budget ~{T.BUDGET_MINUTES} min at ~{T.MEASURED_SECONDS_PER_STEP:g} "
              f"s/step → ETA ~{args.steps * T.MEASURED_SECONDS_PER_STEP / 60:.0f} min (live ETA in the step lines)",
              flush=True)
        manifest = T.train(args.mode, args.steps, seed=args.seed, out_dir=args.out, hyper=hyper,
                           max_minutes=args.max_minutes, device=args.device,
                           progress=lambda m: print(m, flush=True))
        manifest.pop("_trainer", None)
        print(json.dumps({k: manifest[k] for k in ("mode", "steps", "seconds", "seconds_per_step", "checks")},
                         indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
