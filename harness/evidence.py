"""Evidence for the claims, gathered once per session and shared by every test that needs it.

The equivalence tests ask this object for a Verdict; it hands the expectation to its claim's module
(:mod:`harness.claims`), which takes what it needs from here: the models (each loaded once), answers from one
:class:`~harness.runner.Runner` (so one (system, item, condition) is inferred once per run, however many claims
use it), lens readings and LEACE erasures, each computed once per session. Nothing here knows a claim's rule.
No pytest here: the pytest layer only turns options and the registry into parameters.

Model ids are registry ids. ``mutations`` ({id: share}) swaps a model for its flip mutant — the same model with
a seeded share of its answers replaced (the wrapped model's cached answers, no extra inference): the suite's
stand-in for "a new release broke equivalence".
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from harness.audio import Condition
from harness.claims.registry import claim
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
    memos: dict = field(default_factory=dict, repr=False)   # what claims derive from the evidence (``memo``)

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

    def claim_items(self, exp) -> int | None:
        """Items for one expectation: its own ``items`` (a control sized from the effect it must show; 0 or absent:
        the model's default, ``n_items``), capped by ``items`` (``--items``). Every claim sizes its items here."""
        own = exp.thresholds.get("items") or None
        if own is None:
            return self.n_items(exp.model)
        return min(own, self.items) if self.items is not None else own

    def task_items(self, model_id: str, name: str, items: int | None = None):
        """The label-balanced first ``items`` of the task (default: the model's, ``n_items``); subsets are nested,
        so a smaller one shares every answer with a larger one."""
        return self.task(name).subset(items or self.n_items(model_id))

    # -- answers -------------------------------------------------------------------------------------------
    def answers(self, model_id: str, task_name: str, condition: str = "clean", items: int | None = None):
        """(speech-LLM answers, matched-cascade answers) on the same items under ``condition`` (``items``: see
        ``task_items``)."""
        task = self.task(task_name)
        items = self.task_items(model_id, task_name, items)
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

    def oracle_answers(self, model_id: str, task_name: str, items: int | None = None):
        """The matched backbone reading the gold text: the ceiling's second cascade (perfect ASR)."""
        from harness.systems.cascade import Cascade

        casc = self.cascade(model_id)
        oracle = Cascade(None, casc.backbone, oracle=True, name=f"oracle[{model_id}]")
        return self.runner.answers(oracle, self.task(task_name), self.task_items(model_id, task_name, items))

    # -- claims --------------------------------------------------------------------------------------------
    def verdict(self, exp, *, peers: list | None = None) -> Verdict:
        """The Verdict for one expectation (``harness.claims.expectations.Expectation``), decided by its claim's
        module. ``peers``: the model's expectations of the same claim (or their task names), e.g. agreement's
        FDR family; default the expectation alone."""
        return claim(exp.claim).verdict(self, exp, list(peers or [exp]))

    def memo(self, key, compute):
        """``compute()`` once per session per ``key``: what a claim derives from the evidence (e.g. a task's κ
        and McNemar test, which every task of the model's FDR family needs) is shared like the answers."""
        if key not in self.memos:
            self.memos[key] = compute()
        return self.memos[key]

    def curve(self, model_id: str, claim: str) -> dict:
        """The model's report curves of ``claim``, by task (``harness.report.record``'s MODEL_CURVES)."""
        return self.curves.setdefault(model_id, {}).setdefault(claim, {})

    # -- probes (harness.probes) -------------------------------------------------------------------------
    def _probe_target(self, model_id: str):
        """Probes read the backbone of the real model (a flip mutant only changes final answers)."""
        llm = self.speech_llm(model_id)
        return getattr(llm, "inner", llm)

    def lens(self, model_id: str, task_name: str, items: int | None = None):
        """Logit-lens precision per layer vs the mismatched-transcript control, on the claim's items (once per
        session)."""
        items = items or self.n_items(model_id)
        return self.memo(("lens", model_id, task_name, items), lambda: self._lens(model_id, task_name, items))

    def _lens(self, model_id: str, task_name: str, items: int | None):
        from harness.probes.lens import logit_lens

        task, items = self.task(task_name), self.task_items(model_id, task_name, items)
        audios = [self.runner.audio(task, it, Condition()) for it in items]
        return logit_lens(self._probe_target(model_id), task, items, audios, seed=self.seed,
                          cache=self.runner.disk_cache)

    def erasure(self, model_id: str, task_name: str, layers: str = "paper", words: str = "frequent",
                guarded: bool = False, items: int | None = None, concept_at: str = "span", moments: str = "central"):
        """LEACE text/random/energy erasure: erasers fitted on training-split items, evaluated on the claim's items
        (disjoint by construction); baseline answers are the runner's cached plain answers. ``layers``: "paper"
        (``probes.leace.paper_layers``) or "input" (entry 0 only); ``words``, ``concept_at``: the text concept's
        words and the positions they label (``probes.leace.text_concept``); ``moments``: central or raw
        (``probes.leace.fit_erasers``); ``guarded``: also the damage-matched control. Once per session."""
        items = items or self.n_items(model_id)
        key = ("erasure", model_id, task_name, layers, words, guarded, items, concept_at, moments)
        return self.memo(key, lambda: self._erasure(model_id, task_name, layers, words, guarded, items, concept_at,
                                                    moments))

    def _erasure(self, model_id: str, task_name: str, layers: str, words: str, guarded: bool, items: int | None,
                 concept_at: str, moments: str):
        from harness.probes.leace import leace_experiment

        task, items = self.task(task_name), self.task_items(model_id, task_name, items)
        fit = task.train[: self.fit_items] if task.train else ()
        if not fit:
            raise ValueError(f"{task_name}: LEACE needs fitting items disjoint from the evaluation items; "
                             "this task has no training split")
        if layers not in LEACE_LAYERS:
            raise ValueError(f"{model_id}/{task_name}: collapse layers {layers!r}: expected one of {LEACE_LAYERS}")
        from harness.probes.leace import CONCEPT_AT, MOMENTS

        for what, value, allowed in (("concept_at", concept_at, CONCEPT_AT), ("moments", moments, MOMENTS)):
            if value not in allowed:
                raise ValueError(f"{model_id}/{task_name}: collapse {what} {value!r}: expected one of {allowed}")
        system = self._probe_target(model_id)
        top_k = max(1, round(system.model.get_input_embeddings().weight.shape[1] * CONCEPT_RANK_SHARE)) \
            if words == "informative" else None
        return leace_experiment(self.runner, system, task, fit, items, seed=self.seed, probes=False,
                                layers=[0] if layers == "input" else None, choose=words, concept_at=concept_at,
                                moments=moments,
                                **({"top_k": top_k} if top_k else {}), damage_matched=guarded,
                                noop_text=self.mutations.get(model_id) == "noerase")

    def deleted_words_answers(self, model_id: str, task_name: str, words: tuple[str, ...], items: int | None = None):
        """The matched cascade reading its transcripts with ``words`` deleted (the collapse claim's text level)."""
        from harness.systems.deleted_words import WordsDeletedCascade

        system = WordsDeletedCascade(self.cascade(model_id), words)
        return self.runner.answers(system, self.task(task_name), self.task_items(model_id, task_name, items))
