"""``python -m harness.probes lens|leace MODEL --task T``: the probes on one registry model, written to --out.

lens  → lens.json (per-layer precision, control, difference with CIs; readings at the best layer), lens.png,
        and the implicit cascade's κ with the explicit cascade at the best layer (implicit.json).
leace → leace.json: accuracy under no / text / random / energy erasure and fresh linear probes after erasure,
        trained on half the evaluation items or on the fitting items (fitting items from the task's training
        split, evaluation items from its evaluation split).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.probes")
    parser.add_argument("probe", choices=("lens", "leace"))
    parser.add_argument("model", help="registry id (e.g. ref-cascade)")
    parser.add_argument("--task", default="topic")
    parser.add_argument("--items", type=int, default=80, help="evaluation items (label-balanced)")
    parser.add_argument("--fit", type=int, default=64, help="leace: fitting items from the training split")
    parser.add_argument("--no-probes", action="store_true", help="leace: skip the after-erasure linear probes")
    parser.add_argument("--out", default="reports/probes")
    args = parser.parse_args(argv)

    from harness.audio import Condition
    from harness.evidence import Evidence

    ev = Evidence(items=args.items, fit_items=args.fit)
    out = Path(args.out) / args.model / args.task
    out.mkdir(parents=True, exist_ok=True)
    task, items = ev.task(args.task), ev.task_items(args.model, args.task)
    if args.probe == "lens":
        from harness.probes.implicit import implicit_cascade_agreement
        from harness.probes.lens import plot_lens

        result = ev.lens(args.model, args.task)
        d = result.to_dict()
        (out / "lens.json").write_text(json.dumps(d, indent=2, default=str) + "\n")
        plot_lens(result, out / "lens.png")
        imp = implicit_cascade_agreement(ev.runner, ev._probe_target(args.model), ev.cascade(args.model), task,
                                         items, d["best_layer"])
        (out / "implicit.json").write_text(json.dumps(imp.to_dict(), indent=2, default=str) + "\n")
        print(json.dumps({"best_layer": d["best_layer"], "best_precision": d["best_precision"],
                          "best_control": d["best_control"], "implicit": imp.to_dict()["kappa_implicit_vs_cascade"]["text"]}, default=str))
    else:
        from harness.probes.leace import leace_experiment

        fit = task.train[: args.fit]
        res = leace_experiment(ev.runner, ev._probe_target(args.model), task, fit, items, probes=not args.no_probes)
        d = res.to_dict()
        (out / "leace.json").write_text(json.dumps(d, indent=2, default=str) + "\n")
        print(json.dumps({"accuracy": d["accuracy"], "probes": d["probes"], "fit_probes": d["fit_probes"]},
                         default=str)[:6000])
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
