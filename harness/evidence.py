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

MUTANT = re.compile(r"^(?P<base>[^~]+)~(?P<mutation>flip(?:0?\.\d+|1(?:\.0+)?)|permuted|noerase|fragile)$")
MUTATIONS = {    # the known-bad variant of a positive control, one per claim: each must flip that control's verdict
    "flip<share>": "agreement: a seeded share of the answers replaced by another option",
    "permuted": "emergence (ref-transcriber only): every token written as a fixed other token's embedding",
    "noerase": "collapse: the fitted text eraser replaced by a no-op",
    "fragile": "noise: under any noise condition, every answer replaced by another option (seeded)",
}
NOISE_FLIP_SHARE = 1.0     # the fragile mutant: every answer under noise replaced by another option
NOISE_GRID = (20, 10, 5, 0)        # dB, besides clean (the paper's range: clean down to 0 dB); claims may narrow it
# Items per task for the reference models when --items is not given: the default CPU run (cold caches, 2 cores)
# must finish in ~15 min; 80 label-balanced items give κ CIs of about ±0.12 (stats.items_for_kappa_halfwidth).
REFERENCE_ITEMS = 80
LEACE_LAYERS = ("paper", "input")
# The "informative" text concept names at most this share of the hidden width (9 words at 576, 64 at 4096): a rank
# far below the width, so a rank-matched random erasure is no damage by itself.
CONCEPT_RANK_SHARE = 1 / 64


def split_mutant(model_id: str) -> tuple[str, str | None]:
    """``"ref-cascade~flip0.3"`` → ("ref-cascade", "flip0.3"); a plain id → (id, None)."""
    m = MUTANT.match(model_id)
    return (m["base"], m["mutation"]) if m else (model_id, None)


@dataclass(eq=False)       # hashable by identity: its methods are memoised per session
class Evidence:
    items: int | None = None                  # items per task (label-balanced subset); None = all
    trust_remote_code: bool = False
    runner: Runner = field(default_factory=lambda: Runner(progress=True))
    seed: int = 0
    noise_grid: tuple[int, ...] | None = None   # a run-wide SNR grid; None: each expectation's own (``grid``)
    fit_items: int = 64                       # LEACE fitting items (from the task's training split)
    mutations: dict = field(default_factory=dict)   # model id → mutation ("flip0.4", "permuted", … : MUTATIONS)
    curves: dict = field(default_factory=dict)  # model → report curves (harness.report.record's MODEL_CURVES)

    # -- systems -----------------------------------------------------------------------------------------
    def speech_llm(self, model_id: str):
        from harness.systems.load import speech_llm
        from harness.systems.mutant import FlipMutant

        mutation = self.mutations.get(model_id) or ""
        if mutation == "permuted":
            from harness.systems.load import permuted_transcriber

            return permuted_transcriber(model_id, seed=self.seed)
        system = speech_llm(model_id, self.trust_remote_code)
        if mutation.startswith("flip"):
            return FlipMutant(system, float(mutation.removeprefix("flip")), seed=self.seed)
        return system

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
    def answers(self, model_id: str, task_name: str, condition: str = "clean", items: int | None = None):
        """(speech-LLM answers, matched-cascade answers) on the same items under ``condition`` (``items``: a
        smaller label-balanced subset than the model's default; subsets are nested, so answers are shared)."""
        task = self.task(task_name)
        items = task.subset(items) if items else self.task_items(model_id, task_name)
        llm = self.speech_llm(model_id)
        if hasattr(llm, "flip"):      # the mutant reuses the wrapped model's answers
            inner = self.runner.answers(llm.inner, task, items, condition)
            llm_answers = [llm.flip(task, it, a) for it, a in zip(items, inner)]
        else:
            llm_answers = self.runner.answers(llm, task, items, condition)
        if self.mutations.get(model_id) == "fragile" and Condition.parse(condition).kind != "clean":
            from harness.systems.mutant import FlipMutant

            fragile = FlipMutant(llm, NOISE_FLIP_SHARE, seed=self.seed)
            llm_answers = [fragile.flip(task, it, a) for it, a in zip(items, llm_answers)]
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

    def noise_curve(self, model_id: str, task_name: str, kind: str, grid: tuple[int, ...] | None = None,
                    items: int | None = None) -> dict:
        """Per condition: per-item correctness of both systems (clean + the SNR grid of ``kind`` noise)."""
        out = {"llm": {}, "cascade": {}}
        for cond in ["clean", *(f"{kind}@{snr}#{self.seed}" for snr in (grid or self.noise_grid or NOISE_GRID))]:
            llm, casc = self.answers(model_id, task_name, cond, items=items)
            key = "clean" if cond == "clean" else f"{Condition.parse(cond).snr_db:g} dB"
            out["llm"][key] = [x.correct for x in llm]
            out["cascade"][key] = [x.correct for x in casc]
        return out

    def noise_verdict(self, exp: claims.Expectation) -> Verdict:
        """The expectation may narrow the SNR grid (``grid``; a run-wide ``noise_grid`` overrides it) and the items
        (``items``: a control sized from the effect it must show); ``--items`` still caps them."""
        kind = exp.thresholds["kind"]
        grid = tuple(self.noise_grid or exp.thresholds.get("grid") or NOISE_GRID)
        items = exp.thresholds.get("items")
        if self.items is not None:
            items = min(items, self.items) if items else self.items
        curve = self.noise_curve(exp.model, exp.task, kind, grid, items)
        low = f"{min(grid):g} dB"
        self._curve(exp.model, "noise").setdefault(exp.task, {})[kind] = {
            "snr": ["clean", *grid], "n": len(curve["llm"]["clean"]),
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
    def erasure(self, model_id: str, task_name: str, layers: str = "paper", words: str = "frequent",
                guarded: bool = False):
        """LEACE text/random/energy erasure: erasers fitted on training-split items, evaluated on the claim's items
        (disjoint by construction); baseline answers are the runner's cached plain answers. ``layers``: "paper"
        (``probes.leace.paper_layers``) or "input" (entry 0 only); ``words``: the text concept's words
        (``probes.leace.text_concept``); ``guarded``: also the damage-matched control."""
        from harness.probes.leace import leace_experiment

        task, items = self.task(task_name), self.task_items(model_id, task_name)
        fit = task.train[: self.fit_items] if task.train else ()
        if not fit:
            raise ValueError(f"{task_name}: LEACE needs fitting items disjoint from the evaluation items; "
                             "this task has no training split")
        if layers not in LEACE_LAYERS:
            raise ValueError(f"{model_id}/{task_name}: collapse layers {layers!r}: expected one of {LEACE_LAYERS}")
        system = self._probe_target(model_id)
        top_k = max(1, round(system.model.get_input_embeddings().weight.shape[1] * CONCEPT_RANK_SHARE)) \
            if words == "informative" else None
        return leace_experiment(self.runner, system, task, fit, items, seed=self.seed, probes=False,
                                layers=[0] if layers == "input" else None, choose=words,
                                **({"top_k": top_k} if top_k else {}), damage_matched=guarded,
                                noop_text=self.mutations.get(model_id) == "noerase")

    def deleted_words_answers(self, model_id: str, task_name: str, words: tuple[str, ...]):
        """The matched cascade reading its transcripts with ``words`` deleted (the collapse claim's text level)."""
        from harness.systems.deleted_words import WordsDeletedCascade

        system = WordsDeletedCascade(self.cascade(model_id), words)
        return self.runner.answers(system, self.task(task_name), self.task_items(model_id, task_name))

    def collapse_verdict(self, exp: claims.Expectation) -> Verdict:
        guarded = bool(exp.thresholds.get("guarded", False))
        res = self.erasure(exp.model, exp.task, exp.thresholds.get("layers", "paper"),
                           exp.thresholds.get("words", "frequent"), guarded)
        task = self.task(exp.task)
        items = {it.id: it for it in self.task_items(exp.model, exp.task)}
        gold = [items[i].label for i in res.split["eval"]]
        correct = {k: [c == g for c, g in zip(v, gold)] for k, v in res.choices.items()}
        names = {"none": "baseline", "energy": "acoustic", "damage": "damage-matched"}   # report.record.ERASURES
        self._curve(exp.model, "erasure")[exp.task] = {
            "accuracy": {names.get(k, k): sum(c) / len(c) for k, c in correct.items()},
            "chance": task.chance, "n": len(gold)}
        extra = {}
        if guarded:
            concept = [w for w in res.settings["concept_classes"] if w != "<other>"]
            deleted = self.deleted_words_answers(exp.model, exp.task, tuple(concept))
            extra = dict(damage_erased=correct["damage"], text_deleted=[a.correct for a in deleted],
                         erased_choices=res.choices["text"], reference_choices=[a.choice for a in deleted])
            self._curve(exp.model, "erasure")[exp.task]["accuracy"]["text-deleted"] = \
                sum(extra["text_deleted"]) / len(gold)
        v = claims.collapse(exp, baseline=correct["none"], text_erased=correct["text"],
                            random_erased=correct["random"], acoustic_erased=correct.get("energy"),
                            chance=task.chance, **extra)
        return dataclasses.replace(v, evidence={**v.evidence, "fit_items": len(res.split["fit"]),
                                                "layers_erased": list(res.layers),
                                                "concept": res.settings["text_concept"],
                                                "max_rank": {k: max(e["ranks"].values(), default=0)
                                                             for k, e in res.erasers.items()}})
