"""pytest layer: command-line options and session fixtures. No statistics or model code lives here."""
from __future__ import annotations

import dataclasses
import json
import os
import time

import pytest

# Tests and CI never fetch from a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cascade-equivalence")
    # `--strict` itself is pytest's own flag (pytest 9: all strictness checks); we read it and also turn
    # skips into failures, so `pytest --strict` (nightly) never passes by skipping.
    group.addoption("--items", type=int, default=None, help="items per task (label-balanced subset)")
    group.addoption("--trust-remote-code", action="store_true", default=False,
                    help="allow models whose code comes from the hub (Ultravox); off unless asked for")
    group.addoption("--batch-size", type=int, default=1,
                    help="items answered per forward pass by speech-LLMs (GPU; default 1, one at a time)")
    _add_claim_options(group)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    _strict_skips_fail(item, report)
    _attach_verdict(item, call, report)


def _strict_skips_fail(item, report) -> None:
    """Under --strict a skip is a failure that keeps its reason."""
    if item.config.getoption("strict", False) and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"--strict: this test was skipped ({reason}); nightly runs must not skip"


# -- the claims: parametrization from the registry + fixtures/claims, one Evidence per session -----------------
# Which tasks a model is tested on comes from the tasks' own metadata (text_sufficient, kind): harness.tasks.sources.
# Each claim of harness.claims.registry is one fixture, "<claim>_claim", that its test in equivalence_tests/ takes.
def _claim_fixture(name: str) -> str:
    return f"{name}_claim"


def _add_claim_options(group) -> None:
    group.addoption("--tasks", action="append", default=[], metavar="TASK[,TASK...]",
                    help="tasks to test (default: every mini twin): mini twin names, paper datasets (ag_news, sst2, "
                         "csqa, triviaqa, meld, mustard: need the hub, skip offline) or paths to task folders of "
                         "your own (task.toml + items.jsonl, optional recordings)")
    group.addoption("--mutant", action="append", default=[], metavar="MODEL~MUTATION",
                    help="replace a registry model by a known-broken variant that the claim's tests must catch: "
                         "~flip<share> (agreement: a seeded share of answers replaced, e.g. ref-cascade~flip0.3), "
                         "~permuted (emergence, ref-transcriber: tokens written as other tokens), ~noerase "
                         "(collapse: the text eraser a no-op), ~fragile (noise: every answer replaced by another option under noise)")
    group.addoption("--known-issues", action="store_true", default=False,
                    help="run the expectations marked known_issue (strict xfails: each re-measures a documented "
                         "failure and alerts the day it is fixed); skipped otherwise, with the reason; --strict runs them")
    group.addoption("--report-dir", default=None,
                    help="write the RunRecord (record.json) and the Markdown/HTML reports here at session end")


def _claim_params(config) -> dict[str, list]:
    from harness.claims.expectations import expectations, user_task_expectations
    from harness.claims.registry import NAMES, variant
    from harness.evidence import split_mutant
    from harness.specs import load_specs
    from harness.tasks import claim_tasks

    tasks = config._tasks
    text_sufficient, text_insufficient = claim_tasks(list(tasks.values()))
    own = {kind: [t for t in names if tasks[t].origin == "folder"]
           for kind, names in (("text_sufficient", text_sufficient), ("text_insufficient", text_insufficient))}
    specs = load_specs()
    run_known = config.getoption("known_issues") or config.getoption("strict", False)
    out = {name: [] for name in NAMES}
    config._mutations = {}
    for mutant in config.getoption("mutant"):
        base, mutation = split_mutant(mutant)
        if mutation is None or base not in specs:
            raise pytest.UsageError(f"--mutant {mutant!r}: expected <registry id>~<mutation>, e.g. ref-cascade~flip0.3 "
                                    "(mutations: flip<share>, permuted, noerase, fragile)")
        config._mutations[base] = mutation
    for model_id, spec in specs.items():
        exps = expectations(model_id, text_sufficient=text_sufficient, text_insufficient=text_insufficient,
                            controls=[s for s, info in tasks.items() if info.control])
        exps += user_task_expectations(model_id, **own)
        marks = [getattr(pytest.mark, spec.family), pytest.mark.xdist_group(model_id)]
        if not spec.offline:
            marks.append(pytest.mark.gpu if spec.loader != "api" else pytest.mark.api)
        for exp in exps:
            tid = "/".join(part for part in (model_id, exp.task, variant(exp)) if part)
            known = [known_issue_mark(exp.known_issue, run=run_known)] if exp.known_issue else []
            if tasks[exp.task].unavailable():
                known.append(pytest.mark.skip(reason=tasks[exp.task].unavailable()))
            out[exp.claim].append(pytest.param(exp, id=tid, marks=marks + known))
    config._peers = {}         # (model, claim) → its expectations of that claim (agreement: the FDR family)
    for params in out.values():
        for param in params:
            exp = param.values[0]
            config._peers.setdefault((exp.model, exp.claim), []).append(exp)
    return out


def pytest_generate_tests(metafunc) -> None:
    if not any(f.endswith("_claim") for f in metafunc.fixturenames):
        return                          # not a claim's test: the claims stay unimported
    from harness.claims.registry import NAMES

    for name in NAMES:
        if _claim_fixture(name) in metafunc.fixturenames:
            if not hasattr(metafunc.config, "_claim_params"):
                metafunc.config._claim_params = _claim_params(metafunc.config)
            metafunc.parametrize(_claim_fixture(name), metafunc.config._claim_params[name])


@pytest.fixture(scope="session")
def evidence(request):
    from harness.evidence import Evidence

    if not hasattr(request.config, "_mutations"):
        request.config._mutations = {}
    from harness.runner import Runner

    request.config._evidence = Evidence(items=request.config.getoption("items"),
                                        runner=Runner(batch_size=request.config.getoption("batch_size")),
                                        mutations=dict(request.config._mutations),
                                        trust_remote_code=request.config.getoption("trust_remote_code"))
    return request.config._evidence


@pytest.fixture
def judge(request, evidence, record_property):
    """judge(expectation) → the Verdict, asserted; skips (with the reason) when the model cannot run here."""
    from harness.availability import why_unavailable
    from harness.specs import get_spec

    def run(exp):
        spec = get_spec(exp.model)
        reason = why_unavailable(spec, trust_remote_code=request.config.getoption("trust_remote_code"))
        if reason is None and not spec.has_cascade:
            reason = f"{spec.id} is an API model: it has no matched cascade to compare with"
        if reason:
            pytest.skip(reason)
        peers = getattr(request.config, "_peers", {}).get((exp.model, exp.claim), [exp])
        verdict = evidence.verdict(exp, peers=peers)
        if exp.known_issue:       # reports can tell an expected failure from a new one
            verdict = dataclasses.replace(verdict, evidence={**verdict.evidence, "known_issue": exp.known_issue})
        request.node._cascade_verdict = (verdict, evidence.curves.get(exp.model, {}))
        record_property("verdict", verdict.line())
        for name, value in (("statistic", verdict.value), ("ci", verdict.ci), ("n", verdict.n), ("p", verdict.p),
                            ("observed", verdict.observed), ("expected", verdict.expected)):
            record_property(name, value)
        if not verdict.passed:
            raise VerdictNotMet(verdict.line())
        return verdict

    return run


# -- known issues: a documented failure of the *verdict*, never of the run --------------------------------------
class VerdictNotMet(AssertionError):
    """The claim's verdict did not meet its expectation (the only failure a known issue may excuse)."""


def known_issue_mark(why: str, run: bool = True):
    """A strict xfail that catches only :class:`VerdictNotMet`: a load error, a bad revision or any other exception
    raised while gathering the evidence still errors, and a verdict that now passes is an XPASS(strict) failure.
    ``run=False`` (the default run): a skip that says why — re-measuring a documented failure costs minutes of
    inference and changes nothing until the model or its construction changes; ``--known-issues`` and ``--strict``
    (nightly) run it."""
    if not run:
        return pytest.mark.skip(reason=f"known issue: {why} (not re-measured; --known-issues runs it as a strict xfail)")
    return pytest.mark.xfail(reason=f"known issue: {why}", raises=VerdictNotMet, strict=True)


# -- verdicts travel on the test reports, so the reports are written once, by the controller -------------------
# A worker (pytest-xdist) attaches each verdict and its model's curves to the call report; the controller (or the
# one process of a serial run) collects them in pytest_runtest_logreport and writes the reports at session end.
def pytest_configure(config) -> None:
    _register_family_markers(config)
    config._started = time.perf_counter()
    config._verdicts = []
    config._curves = {}
    config._workers = {}           # model → xdist workers its verdicts came from (one, under --dist loadgroup)
    config.pluginmanager.register(_VerdictCollector(config), "cascade-equivalence-verdicts")
    _check_items_option(config)
    from harness.tasks import describe, parse_sources

    try:     # --tasks: each source's metadata (no items, no download); a bad one stops the run before collection
        config._tasks = {s: describe(s) for s in parse_sources(config.getoption("tasks", None))}
    except (LookupError, OSError, ValueError) as e:
        raise pytest.UsageError(f"--tasks: {e}") from None


def _register_family_markers(config) -> None:
    """One marker per model family (``-m ultravox``), from the family table: --strict-markers then accepts every
    family a registry entry may name, and a new family needs no line in pytest.ini."""
    from harness.families import FAMILIES

    for family in FAMILIES.values():
        config.addinivalue_line("markers", f"{family.name}: {family.description}")


def _check_items_option(config) -> None:
    items = config.getoption("items", None)
    if items is not None and items < 1:
        raise pytest.UsageError(f"--items {items}: expected a positive number of items per task")


def _attach_verdict(item, call, report) -> None:
    attached = getattr(item, "_cascade_verdict", None)
    if call.when == "call" and attached is not None:
        verdict, curves = attached
        data = {"verdict": verdict.to_dict(), "model": verdict.model, "curves": curves}
        # plain JSON types only: xdist ships the report through execnet, which refuses numpy scalars
        report.cascade_verdict = json.loads(json.dumps(data))


class _VerdictCollector:
    """Gathers the verdicts (and curves) from every test report this process sees: its own in a serial run, all
    workers' in an xdist controller (xdist ships a report's extra attributes with it)."""

    def __init__(self, config):
        self.config = config

    def pytest_runtest_logreport(self, report) -> None:
        data = getattr(report, "cascade_verdict", None)
        if not data:
            return
        from harness.verdict import Verdict

        self.config._verdicts.append(Verdict.from_dict(data["verdict"]))
        worker = getattr(getattr(getattr(report, "node", None), "gateway", None), "id", None)   # xdist: "gw0", …
        if worker:
            self.config._workers.setdefault(data["model"], set()).add(worker)
        for kind, per_task in data.get("curves", {}).items():
            self.config._curves.setdefault(data["model"], {}).setdefault(kind, {}).update(per_task)


def _is_xdist_worker(config) -> bool:
    return hasattr(config, "workerinput")


def pytest_terminal_summary(terminalreporter, config) -> None:
    """Where the session's time went: the answers actually inferred (not read from the cache) per system, against
    the session's wall time — the first number to look at when a run is slow (benchmarks/ has the per-stage costs);
    then every model computation by stage (``harness.compute``) and the overhead ratio, wall time / model compute."""
    from harness import compute

    wall = time.perf_counter() - config._started
    evidence = getattr(config, "_evidence", None)
    if evidence is not None and evidence.runner.inferences:
        runner = evidence.runner
        terminalreporter.section("answers inferred (the rest came from the cache)")
        for name, n in sorted(runner.inferences.items(), key=lambda kv: -runner.inference_seconds[kv[0]]):
            seconds = runner.inference_seconds[name]
            terminalreporter.write_line(f"{name:<48} {n:5d} items {seconds:8.1f} s  ({seconds / n:.2f} s/item)")
        total = sum(runner.inference_seconds.values())
        terminalreporter.write_line(f"{'all':<48} {sum(runner.inferences.values()):5d} items {total:8.1f} s of "
                                    f"{wall:.0f} s session wall ({total / wall:.0%}; the other model stages are in the "
                                    "next section, pytester's subprocess runs in neither)")
    ledger = compute.snapshot()
    if not ledger.counts:
        return
    terminalreporter.section("model compute by stage (this session only: pytester subprocess runs report their own)")
    for stage, seconds in sorted(ledger.seconds.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{stage:<48} {ledger.counts[stage]:5d} calls {seconds:8.1f} s")
    ratio = f"{wall / ledger.total:.2f}" if ledger.total > 0 else "n/a"
    terminalreporter.write_line(f"{'compute (outermost blocks: nested stages once)':<48} {ledger.outermost:5d} calls "
                                f"{ledger.total:8.1f} s of {wall:.1f} s session wall; overhead ratio wall / compute "
                                f"{ratio}")


def pytest_sessionfinish(session, exitstatus) -> None:
    _hint_when_nothing_selected(session, exitstatus)
    _warn_split_models(session.config)
    out = session.config.getoption("report_dir", None)
    if not out or _is_xdist_worker(session.config) or not session.config._verdicts:
        return
    from harness.report.record import build_record
    from harness.report.render import write_reports

    mutations = getattr(session.config, "_mutations", {})
    if not mutations and session.config.getoption("mutant"):     # an xdist controller collects nothing itself
        from harness.evidence import split_mutant
        mutations = {split_mutant(m)[0]: split_mutant(m)[1] for m in session.config.getoption("mutant")}
    verdicts = sorted(session.config._verdicts, key=lambda v: v.key)
    record = build_record(verdicts, session.config._curves,
                          {"items": session.config.getoption("items"), "strict": session.config.getoption("strict"),
                           "mutations": mutations, "keyword": session.config.getoption("keyword")})
    for model in record.provenance["models"]:       # a mutant is reported as a new revision of its model
        if model["id"] in mutations:
            model["revision"] = f"{model.get('revision')}~{mutations[model['id']]}"
    md, html, status = write_reports(record, out)
    session.config._report_paths = (md, html, status)
    print(f"\ncascade-equivalence report: {md} · {html}")


def _hint_when_nothing_selected(session, exitstatus) -> None:
    """`-k` that matches no test exits 5 with "N deselected": say which model ids and tasks -k can name."""
    if exitstatus != pytest.ExitCode.NO_TESTS_COLLECTED or not session.config.getoption("keyword"):
        return
    try:
        from harness.specs import load_specs
        models = ", ".join(sorted(load_specs()))
    except Exception:                  # the hint must never hide the real outcome
        return
    print(f"\ncascade-equivalence: -k {session.config.getoption('keyword')!r} selected no test. Test ids read "
          f"test_<claim>[<model id>/<task>(/<noise kind>)]; model ids: {models}; tasks: "
          f"{', '.join(getattr(session.config, '_tasks', {}))}; family names also match (e.g. -k ultravox).")


def _warn_split_models(config) -> None:
    """Under --dist loadgroup each model's tests must run on one worker (one model per GPU); say so when they did not
    (pytest 9.2 with pytest-xdist ≤ 3.8 drops the group: pytest-dev/pytest-xdist#1386)."""
    split = {m: sorted(w) for m, w in config._workers.items() if len(w) > 1}
    if split and config.getoption("dist", "no") == "loadgroup":
        for model, workers in sorted(split.items()):
            print(f"\ncascade-equivalence WARNING: {model}'s tests ran on {', '.join(workers)}: --dist loadgroup did "
                  f"not keep the model on one worker (pytest {pytest.__version__}; see pytest-dev/pytest-xdist#1386)")
