"""Evidence for the claims, gathered once per session and shared by every test that needs it.

The equivalence tests ask this object for a Verdict; it loads each model once, draws every answer from one
:class:`~harness.runner.Runner` (so one (system, item, condition) is inferred once per run, however many
claims use it), computes the statistics with :mod:`harness.stats` and the probes, and hands them to
:mod:`harness.claims`. No pytest here: the pytest layer only turns options and the registry into parameters.

Model ids are registry ids. ``mutations`` ({id: share}) swaps a model for its flip mutant — the same model with
a seeded share of its answers replaced (the wrapped model's cached answers, no extra inference): the suite's
stand-in for "a new release broke equivalence".
"""
from __future__ import annotations

import functools
import re
import dataclasses
from dataclasses import dataclass, field

from harness import claims, stats
from harness.audio import Condition
from harness.runner import Runner
from harness.tasks import Task, load_task
from harness.verdict import Verdict

MUTANT = re.compile(r"^(?P<base>[^~]+)~flip(?P<share>0?\.\d+|1(?:\.0+)?)$")
NOISE_GRID = (20, 10, 5, 0)        # dB, besides clean (the paper's range: clean down to 0 dB)
# Items per task for the reference models when --items is not given: the default CPU run (cold caches, 2 cores)
# must finish in ~15 min; 80 label-balanced items give κ CIs of about ±0.12 (stats.items_for_kappa_halfwidth).
REFERENCE_ITEMS = 80


def split_mutant(model_id: str) -> tuple[str, float | None]:
    """``"ref-cascade~flip0.3"`` → ("ref-cascade", 0.3); a plain id → (id, None)."""
    m = MUTANT.match(model_id)
    return (m["base"], float(m["share"])) if m else (model_id, None)


@dataclass(eq=False)       # hashable by identity: its methods are memoised per session
class Evidence:
    items: int | None = None                  # items per task (label-balanced subset); None = all
    trust_remote_code: bool = False
    runner: Runner = field(default_factory=lambda: Runner(progress=True))
    seed: int = 0
    noise_grid: tuple[int, ...] = NOISE_GRID
    fit_items: int = 64                       # LEACE fitting items (from the task's training split)
    mutations: dict = field(default_factory=dict)   # model id → flip share
    curves: dict = field(default_factory=dict)  # model → report curves (harness.report.record's MODEL_CURVES)

    # -- systems -----------------------------------------------------------------------------------------
    def speech_llm(self, model_id: str):
        from harness.systems.load import speech_llm
        from harness.systems.mutant import FlipMutant

        system = speech_llm(model_id, self.trust_remote_code)
        share = self.mutations.get(model_id)
        return FlipMutant(system, share, seed=self.seed) if share else system

    def cascade(self, model_id: str):
        from harness.systems.load import cascade

        return cascade(model_id)

    @functools.cache
    def task(self, name: str) -> Task:
        return load_task(name)

    def n_items(self, model_id: str) -> int | None:
        """``items`` if given; else the CPU budget for reference models (see ``REFERENCE_ITEMS``), all for others."""
        if self.items is not None:
            return self.items
        from harness.specs import get_spec

        return REFERENCE_ITEMS if get_spec(model_id).offline else None

    def task_items(self, model_id: str, name: str):
        return self.task(name).subset(self.n_items(model_id))

    # -- answers -------------------------------------------------------------------------------------------
    def answers(self, model_id: str, task_name: str, condition: str = "clean"):
        """(speech-LLM answers, matched-cascade answers) on the same items under ``condition``."""
        task, items = self.task(task_name), self.task_items(model_id, task_name)
        llm = self.speech_llm(model_id)
        if hasattr(llm, "flip"):      # the mutant reuses the wrapped model's answers
            inner = self.runner.answers(llm.inner, task, items, condition)
            llm_answers = [llm.flip(task, it, a) for it, a in zip(items, inner)]
        else:
            llm_answers = self.runner.answers(llm, task, items, condition)
        return llm_answers, self.runner.answers(self.cascade(model_id), task, items, condition)

    def oracle_answers(self, model_id: str, task_name: str):
        """The matched backbone reading the gold text: the ceiling's second cascade (perfect ASR)."""
        from harness.systems.cascade import Cascade

        casc = self.cascade(model_id)
        oracle = Cascade(None, casc.backbone, oracle=True, name=f"oracle[{model_id}]")
        return self.runner.answers(oracle, self.task(task_name), self.task_items(model_id, task_name))

    # -- claims --------------------------------------------------------------------------------------------
    def verdict(self, exp: claims.Expectation, *, all_tasks: list[str] | None = None) -> Verdict:
        """The Verdict for one expectation; ``all_tasks``: the model's agreement tasks (the FDR family)."""
        if exp.claim == "agreement":
            return self.agreement_verdict(exp, all_tasks or [exp.task])
        if exp.claim == "noise":
            return self.noise_verdict(exp)
        if exp.claim == "emergence":
            return claims.emergence(exp, self.lens(exp.model, exp.task))
        if exp.claim == "collapse":
            return self.collapse_verdict(exp)
        raise ValueError(f"unknown claim {exp.claim!r}")

    @functools.cache
    def _agreement_stats(self, model_id: str, task_name: str):
        task = self.task(task_name)
        llm, casc = self.answers(model_id, task_name)
        a, b = [x.choice for x in llm], [x.choice for x in casc]
        k = len(task.labels) if task.kind == "classification" else len(task.items[0].options)
        kappa = stats.agreement(a, b, seed=self.seed, n_categories=k)
        test = stats.mcnemar([x.correct for x in llm], [x.correct for x in casc])
        overlap = stats.error_overlap(a, b, [it.label for it in self.task_items(model_id, task_name)])
        oracle = [x.choice for x in self.oracle_answers(model_id, task_name)]
        ceil = stats.ceiling(a, b, oracle, seed=self.seed)
        return kappa, test, overlap, ceil

    def agreement_verdict(self, exp: claims.Expectation, family: list[str]) -> Verdict:
        family = sorted(set(family) | {exp.task})
        tests = {t: self._agreement_stats(exp.model, t)[1] for t in family}
        adjusted = dict(zip(family, stats.adjust_pvalues([tests[t].p_value for t in family], "fdr_bh")))
        kappa, test, overlap, ceil = self._agreement_stats(exp.model, exp.task)
        verdict = claims.agreement(exp, kappa, float(adjusted[exp.task]), test, ceiling=ceil, overlap=overlap,
                                   p_method=f"McNemar exact, BH over {len(family)} task(s)")
        if kappa.constant_rater:        # a = the speech-LLM's answers, b = the cascade's (see _agreement_stats)
            who = {"a": "speech-LLM", "b": "cascade"}[kappa.constant_rater]
            verdict = dataclasses.replace(verdict, evidence={**verdict.evidence, "constant_rater": who})
        return verdict

    def noise_curve(self, model_id: str, task_name: str, kind: str) -> dict:
        """Per condition: per-item correctness of both systems (clean + the SNR grid of ``kind`` noise)."""
        out = {"llm": {}, "cascade": {}}
        for cond in ["clean", *(f"{kind}@{snr}#{self.seed}" for snr in self.noise_grid)]:
            llm, casc = self.answers(model_id, task_name, cond)
            key = "clean" if cond == "clean" else f"{Condition.parse(cond).snr_db:g} dB"
            out["llm"][key] = [x.correct for x in llm]
            out["cascade"][key] = [x.correct for x in casc]
        return out

    def noise_verdict(self, exp: claims.Expectation) -> Verdict:
        kind = exp.thresholds["kind"]
        curve = self.noise_curve(exp.model, exp.task, kind)
        low = f"{min(self.noise_grid):g} dB"
        self._curve(exp.model, "noise").setdefault(exp.task, {})[kind] = {
            "snr": ["clean", *self.noise_grid], "n": len(curve["llm"]["clean"]),
            "speech_llm": [sum(v) / len(v) for v in curve["llm"].values()],
            "cascade": [sum(v) / len(v) for v in curve["cascade"].values()]}
        return claims.noise(exp, llm=curve["llm"], cascade=curve["cascade"], low=low, seed=self.seed)

    # -- probes (harness.probes) -------------------------------------------------------------------------
    def _probe_target(self, model_id: str):
        """Probes read the backbone of the real model (a flip mutant only changes final answers)."""
        llm = self.speech_llm(model_id)
        return getattr(llm, "inner", llm)

    @functools.cache
    def lens(self, model_id: str, task_name: str):
        """Logit-lens precision per layer vs the mismatched-transcript control, on the claim's items."""
        from harness.probes.lens import logit_lens

        task, items = self.task(task_name), self.task_items(model_id, task_name)
        audios = [self.runner.audio(task, it, Condition()) for it in items]
        result = logit_lens(self._probe_target(model_id), task, items, audios, seed=self.seed)
        d = result.to_dict()
        self._curve(model_id, "lens")[task_name] = {
            "layers": d["layers"], "precision": d["precision"]["mean"], "control": d["control"]["mean"],
            "precision_ci": [list(x) for x in zip(d["precision"]["ci_low"], d["precision"]["ci_high"])],
            "control_ci": [list(x) for x in zip(d["control"]["ci_low"], d["control"]["ci_high"])]}
        return result

    def _curve(self, model_id: str, kind: str) -> dict:
        return self.curves.setdefault(model_id, {}).setdefault(kind, {})

    @functools.cache
    def erasure(self, model_id: str, task_name: str):
        """LEACE text/random/energy erasure: erasers fitted on training-split items, evaluated on the claim's items
        (disjoint by construction); baseline answers are the runner's cached plain answers."""
        from harness.probes.leace import leace_experiment

        task, items = self.task(task_name), self.task_items(model_id, task_name)
        fit = task.train[: self.fit_items] if task.train else ()
        if not fit:
            raise ValueError(f"{task_name}: LEACE needs fitting items disjoint from the evaluation items; "
                             "this task has no training split")
        return leace_experiment(self.runner, self._probe_target(model_id), task, fit, items, seed=self.seed,
                                probes=False)

    def collapse_verdict(self, exp: claims.Expectation) -> Verdict:
        res = self.erasure(exp.model, exp.task)
        items = {it.id: it for it in self.task_items(exp.model, exp.task)}
        gold = [items[i].label for i in res.split["eval"]]
        correct = {k: [c == g for c, g in zip(v, gold)] for k, v in res.choices.items()}
        self._curve(exp.model, "erasure")[exp.task] = {
            "accuracy": {("baseline" if k == "none" else "acoustic" if k == "energy" else k): sum(c) / len(c)
                         for k, c in correct.items()},
            "chance": self.task(exp.task).chance, "n": len(gold)}
        v = claims.collapse(exp, baseline=correct["none"], text_erased=correct["text"],
                            random_erased=correct["random"], acoustic_erased=correct.get("energy"),
                            chance=self.task(exp.task).chance)
        return dataclasses.replace(v, evidence={**v.evidence, "fit_items": len(res.split["fit"]),
                                                "layers_erased": len(res.layers),
                                                "max_rank": {k: max(e["ranks"].values(), default=0)
                                                             for k, e in res.erasers.items()}})
