"""Command line: ``python -m harness answer --system cascade --task sentiment --items 20``.

Also ``models`` (the registry), ``report`` (a run record → Markdown + HTML, diffed against a baseline) and
``watch`` (new hub releases → a run plan for the nightly).
"""
from __future__ import annotations

import argparse
import json
import sys

from harness.audio import Condition


def positive_int(text: str) -> int:
    """argparse type for --items: an integer ≥ 1 (0 or a negative count would score nothing and print nan)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _answer(args: argparse.Namespace) -> int:
    from harness.asr import load_asr, word_error_rate
    from harness.lm import load_backbone
    from harness.runner import Runner, accuracy, check_condition
    from harness.systems.cascade import Cascade
    from harness.tasks import load_task

    condition = check_condition(Condition.parse(args.condition))   # fails before any task or model loads
    task = load_task(args.task)
    items = task.subset(args.items)
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


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness.report.diff import save_baselines
    from harness.report.record import RecordError, RunRecord, merge
    from harness.report.render import write_reports

    try:
        record = merge(RunRecord.load(p) for p in args.records)
        md, html, status = write_reports(record, args.out, baseline=args.baseline)
        saved = save_baselines(record, args.save_baselines) if args.save_baselines else []
    except RecordError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(Path(md).read_text())
    print(f"wrote {md}, {html} and {Path(args.out) / 'record.json'}"
          + (f"; saved {len(saved)} baseline(s) under {args.save_baselines}" if saved else ""), file=sys.stderr)
    return status


def _watch(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness import watch

    try:
        for item in args.pin:
            model, sep, revision = item.partition("=")
            if not sep or not revision:
                print(f"error: --pin takes MODEL=REVISION, got {item!r}", file=sys.stderr)
                return 2
            print(f"pinned {model} to {revision} in {watch.pin(model, revision)}")
        if args.pin:
            return 0
        api = watch.RecordedHub.load(args.hub_fixture) if args.hub_fixture else watch.live_api()
        recorder = watch.RecordingHub(api) if args.record else None
        plan = watch.make_plan(recorder or api, include_all=args.all)
    except watch.HubUnreachable as e:
        print(f"{e}; no plan written", file=sys.stderr)
        return watch.EXIT_UNREACHABLE
    except (KeyError, ValueError, LookupError, FileNotFoundError) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    if recorder:
        recorder.save(args.record)
    print("\n".join(watch.summary_lines(plan)))
    if args.out:
        Path(args.out).write_text(json.dumps(plan, indent=1) + "\n")
    if args.github_output:
        with open(args.github_output, "a") as f:
            f.write(f"matrix={json.dumps(plan['matrix'], separators=(',', ':'))}\n"
                    f"count={len(plan['matrix']['include'])}\nnew_members={len(plan['new_family_members'])}\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from harness.lm import OFFLINE_ID

    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    ans = sub.add_parser("answer", help="answer spoken task items with a system and print a table")
    ans.add_argument("--system", choices=["cascade", "oracle"], default="cascade")
    ans.add_argument("--task", required=True)
    ans.add_argument("--items", type=positive_int, default=None, help="label-balanced subset size (default: all)")
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
    rep = sub.add_parser("report", help="render run record(s) as report.md + report.html; exit 1 if anything broke",
                         description="Several records (one per nightly job) are merged into one. Exit status: 0 "
                                     "nothing broke, 1 something broke (see harness.report.diff), 2 bad input.")
    rep.add_argument("records", nargs="+", metavar="RECORD.json")
    rep.add_argument("--baseline", default=None,
                     help="a baseline record, or a directory of <model>/<revision>.json (e.g. fixtures/baselines)")
    rep.add_argument("--out", default="reports/latest",
                     help="directory for record.json, report.md, report.html (default: reports/latest, git-ignored)")
    rep.add_argument("--save-baselines", metavar="DIR", default=None,
                     help="also store each model's part as DIR/<model>/<revision>.json")
    rep.set_defaults(func=_report)
    wat = sub.add_parser("watch", help="ask the hub for new commits and new family members; write a run plan",
                         description="Exit status: 0 plan written, 3 hub unreachable (or HF_HUB_OFFLINE=1), "
                                     "2 bad input.")
    wat.add_argument("--out", default=None, help="write the plan as JSON here")
    wat.add_argument("--all", action="store_true", help="test every model, not only the changed ones")
    wat.add_argument("--hub-fixture", default=None, help="answer from recorded hub responses (fixtures/hub/*.json)")
    wat.add_argument("--record", metavar="PATH", default=None, help="save the live hub's answers in fixture format")
    wat.add_argument("--github-output", metavar="PATH", default=None,
                     help="append matrix=..., count=..., new_members=... (GitHub Actions step outputs)")
    wat.add_argument("--pin", action="append", default=[], metavar="MODEL=REVISION",
                     help="rewrite the model's registry revision instead of asking the hub (repeatable)")
    wat.set_defaults(func=_watch)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
