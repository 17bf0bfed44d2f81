"""Command line: ``python -m harness answer --system cascade --task sentiment --items 20``.

Also ``models`` (the registry), ``report`` (a run record → Markdown + HTML, diffed against a baseline) and
``watch`` (new hub releases → a run plan for the nightly).
"""
from __future__ import annotations

import argparse
import json
import sys



def positive_int(text: str) -> int:
    """argparse type for --items: an integer ≥ 1 (0 or a negative count would score nothing and print nan)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _system(args: argparse.Namespace):
    """``cascade`` / ``oracle`` (tiny.en or no ASR → ``--backbone``), a registry id (its speech-LLM, e.g. a reference
    model or the disguised cascade), ``ID:cascade`` (its matched cascade) or ``ID:oracle`` (its backbone reading
    the gold text). Returns (system, error message)."""
    if args.system in ("cascade", "oracle"):
        from harness.asr import load_asr
        from harness.lm import load_backbone
        from harness.systems.cascade import Cascade

        backbone = load_backbone(args.backbone, args.revision)
        if args.system == "oracle":
            return Cascade(None, backbone, oracle=True), None
        return Cascade(load_asr(args.asr, args.device), backbone), None
    from harness.availability import why_unavailable
    from harness.specs import load_specs
    from harness.systems import load

    model_id, _, part = args.system.partition(":")
    specs = load_specs()
    if model_id not in specs or part not in ("", "cascade", "oracle"):
        return None, (f"unknown system {args.system!r}: use cascade, oracle, a registry id, ID:cascade or ID:oracle; "
                      f"registry ids: {', '.join(sorted(specs))}")
    spec = specs[model_id]
    why = why_unavailable(spec, trust_remote_code=args.trust_remote_code)
    if why is None and part and not spec.has_cascade:
        why = f"{model_id} has no matched cascade (no backbone)"
    if why:
        return None, f"{args.system} cannot run here: {why}"
    if part == "cascade":
        return load.cascade(model_id), None
    if part == "oracle":
        from harness.systems.cascade import Cascade

        return Cascade(None, load.cascade(model_id).backbone, oracle=True, name=f"oracle[{model_id}]"), None
    return load.speech_llm(model_id, args.trust_remote_code), None


def _answer(args: argparse.Namespace) -> int:
    from harness.asr import word_error_rate
    from harness.runner import Runner, accuracy, check_condition
    from harness.tasks import HubUnavailable, TaskSchemaError, load_task

    condition = check_condition(args.condition)      # a bad condition fails before any task or model loads
    try:
        task = load_task(args.task)
    except (LookupError, OSError, TaskSchemaError, HubUnavailable) as e:
        print(f"error: --task {args.task}: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    items = task.subset(args.items)
    system, error = _system(args)
    if error:
        print(f"error: --system {error}", file=sys.stderr)
        return 2
    runner = Runner(disk_cache=not args.no_cache, progress=not args.quiet, batch_size=args.batch_size)
    answers = runner.answers(system, task, items, condition)
    acc = accuracy(answers)
    heard = [(i.text, a.transcript) for i, a in zip(items, answers) if a.transcript is not None]
    wer = word_error_rate([r for r, _ in heard], [h for _, h in heard]) if heard else None
    summary = {"summary": True, "system": system.fingerprint, "task": task.name, "source": task.source,
               "condition": str(condition), "n": len(answers), "accuracy": acc, "chance": task.chance,
               "asr_wer": wer, "inferred": runner.inferences[system.name]}
    if args.format == "json":
        for item, a in zip(items, answers):
            print(json.dumps({"item": item.id, "text": item.text, "gold": item.label, **a.to_json()}))
        print(json.dumps(summary))
        return 0
    width, idw = 48, max([18, *(len(i.id) for i in items)])
    print(f"{'item':<{idw}} {'transcript':<{width}} {'answer':<14} {'gold':<14} ok")
    for item, a in zip(items, answers):
        said = a.transcript if a.transcript is not None else "—"   # speech-LLMs have no transcript
        said = said if len(said) <= width else said[: width - 1] + "…"
        print(f"{item.id:<{idw}} {said:<{width}} {a.choice[:14]:<14} {item.label[:14]:<14} {'✓' if a.correct else '✗'}")
    print(f"\n{system.name} on {task.name} [{condition}]: accuracy {acc:.3f} over {len(answers)} items "
          f"(chance {task.chance:.3f}), ASR WER {'n/a' if wer is None else f'{wer:.3f}'}; "
          f"{summary['inferred']} inferred, {len(answers) - summary['inferred']} cached")
    return 0


def _models(args: argparse.Namespace) -> int:
    from harness.specs import SpecError, load_specs, markdown_table, models_table, registry_markdown

    try:
        specs = load_specs(args.registry)
    except SpecError as e:         # a bad entry: the file and the field, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not specs:
        print(f"error: --registry {args.registry}: no model entries (*.toml) there", file=sys.stderr)
        return 2
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
    from harness import paths
    from harness.lm import OFFLINE_ID

    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    ans = sub.add_parser("answer", help="answer spoken task items with a system and print a table")
    ans.add_argument("--system", default="cascade", metavar="SYSTEM",
                     help="cascade (default: --asr → --backbone), oracle (--backbone reads the gold text), any registry "
                          "id (`python -m harness models`: its speech-LLM, e.g. ref-cascade), ID:cascade (its matched "
                          "cascade) or ID:oracle")
    ans.add_argument("--task", required=True, metavar="TASK",
                     help="a mini twin (topic, sentiment, ...), a paper dataset (ag_news, sst2, csqa, triviaqa, meld, "
                          "mustard; needs the hub) or a path to a task folder of your own (see README)")
    ans.add_argument("--trust-remote-code", action="store_true", help="allow registry models whose code is on the hub")
    ans.add_argument("--batch-size", type=int, default=1, help="items per forward pass for speech-LLMs (GPU)")
    ans.add_argument("--items", type=positive_int, default=None, help="label-balanced subset size (default: all)")
    ans.add_argument("--condition", default="clean", type=_condition, help="clean | white@0 | babble@10 | pink@5#SEED")
    ans.add_argument("--asr", default="tiny.en", help="faster-whisper model name or directory (--system cascade)")
    ans.add_argument("--backbone", default=OFFLINE_ID, help="text LLM of --system cascade/oracle")
    ans.add_argument("--revision", default=None, help="revision of --backbone")
    ans.add_argument("--device", default="cpu")
    ans.add_argument("--format", choices=["table", "json"], default="table")
    ans.add_argument("--no-cache", action="store_true", help="ignore and do not write the answer cache")
    ans.add_argument("--quiet", action="store_true", help="no progress bars")
    ans.set_defaults(func=_answer)
    mod = sub.add_parser("models", help="list the model registry and whether each can run here")
    mod.add_argument("--format", choices=["markdown", "json", "readme"], default="markdown",
                     help="readme: the static table README.md carries")
    mod.add_argument("--trust-remote-code", action="store_true", help="count opted-in remote-code models")
    mod.add_argument("--registry", default=str(paths.MODELS), metavar="DIR",
                     help="folder of model entries (*.toml; default: fixtures/models)")
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
    __import__("harness.doctor", fromlist=["add_parser"]).add_parser(sub)   # `doctor MODEL`: harness/doctor.py
    return parser


def _condition(text: str):
    """--condition as argparse's own usage error (e.g. an SNR float32 audio cannot hold), not a traceback."""
    from harness.runner import check_condition

    try:
        return check_condition(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
