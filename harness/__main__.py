"""Command line: ``python -m harness answer --system cascade --task sentiment --items 20``."""
from __future__ import annotations

import argparse
import json
import sys

from harness.audio import Condition


def _answer(args: argparse.Namespace) -> int:
    from harness.asr import load_asr, word_error_rate
    from harness.lm import load_backbone
    from harness.runner import Runner, accuracy
    from harness.systems.cascade import Cascade
    from harness.tasks import load_task

    task = load_task(args.task)
    items = task.subset(args.items)
    condition = Condition.parse(args.condition)
    backbone = load_backbone(args.backbone, args.revision)
    if args.system == "cascade":
        system = Cascade(load_asr(args.asr, args.device), backbone)
    elif args.system == "oracle":
        system = Cascade(None, backbone, oracle=True)
    else:  # argparse restricts choices; kept for clarity
        raise SystemExit(f"unknown system {args.system!r}")
    runner = Runner(disk_cache=not args.no_cache, progress=not args.quiet)
    answers = runner.answers(system, task, items, condition)
    acc = accuracy(answers)
    wer = word_error_rate([i.text for i in items], [a.transcript or "" for a in answers])
    summary = {"summary": True, "system": system.fingerprint, "task": task.name, "condition": str(condition),
               "n": len(answers), "accuracy": acc, "chance": task.chance, "asr_wer": wer,
               "inferred": runner.inferences[system.name]}
    if args.format == "json":
        for item, a in zip(items, answers):
            print(json.dumps({"item": item.id, "text": item.text, "gold": item.label, **a.to_json()}))
        print(json.dumps(summary))
        return 0
    width = 48
    print(f"{'item':<18} {'transcript':<{width}} {'answer':<14} {'gold':<14} ok")
    for item, a in zip(items, answers):
        heard = (a.transcript if a.transcript is not None else item.text)
        heard = heard if len(heard) <= width else heard[: width - 1] + "…"
        print(f"{item.id:<18} {heard:<{width}} {a.choice[:14]:<14} {item.label[:14]:<14} {'✓' if a.correct else '✗'}")
    print(f"\n{system.name} on {task.name} [{condition}]: accuracy {acc:.3f} over {len(answers)} items "
          f"(chance {task.chance:.3f}), ASR WER {wer:.3f}; "
          f"{summary['inferred']} inferred, {len(answers) - summary['inferred']} cached")
    return 0


def _models(args: argparse.Namespace) -> int:
    from harness.specs import load_specs, markdown_table, models_table, registry_markdown

    specs = load_specs()
    if args.format == "readme":
        print(registry_markdown(specs))
    elif args.format == "markdown":
        print(markdown_table(specs, trust_remote_code=args.trust_remote_code))
    else:
        for row in models_table(specs, trust_remote_code=args.trust_remote_code):
            print(json.dumps(row))
    return 0


def main(argv: list[str] | None = None) -> int:
    from harness.lm import OFFLINE_ID

    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ans = sub.add_parser("answer", help="answer spoken task items with a system and print a table")
    ans.add_argument("--system", choices=["cascade", "oracle"], default="cascade")
    ans.add_argument("--task", required=True)
    ans.add_argument("--items", type=int, default=None, help="label-balanced subset size (default: all)")
    ans.add_argument("--condition", default="clean", help="clean | white@0 | babble@10 | pink@5#SEED")
    ans.add_argument("--asr", default="tiny.en", help="faster-whisper model name or directory")
    ans.add_argument("--backbone", default=OFFLINE_ID)
    ans.add_argument("--revision", default=None)
    ans.add_argument("--device", default="cpu")
    ans.add_argument("--format", choices=["table", "json"], default="table")
    ans.add_argument("--no-cache", action="store_true", help="ignore and do not write the answer cache")
    ans.add_argument("--quiet", action="store_true", help="no progress bars")
    ans.set_defaults(func=_answer)
    mod = sub.add_parser("models", help="list the model registry and whether each can run here")
    mod.add_argument("--format", choices=["markdown", "json", "readme"], default="markdown",
                     help="readme: the static table README.md carries")
    mod.add_argument("--trust-remote-code", action="store_true", help="count opted-in remote-code models")
    mod.set_defaults(func=_models)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
