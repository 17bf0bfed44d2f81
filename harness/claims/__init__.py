"""The paper's claims, one module each; :mod:`harness.claims.registry` is the only list of them (the tests, the
report, the record's schema and the plots read it).

A claim module owns everything about its claim, so a new claim is one new module plus its line in the registry:
- ``OUTCOMES``: the outcome words a claims file may expect;
- ``THRESHOLDS``: its ``[thresholds.<claim>]`` keys with their checks (``checks.number`` …);
- ``verdict(evidence, exp, peers)``: gather what it needs from the session's shared
  :class:`~harness.evidence.Evidence`, record its report curve, and decide (``decide``) → Verdict;
- ``CURVE_SCHEMA`` (optional): the JSON schema of one task's report curve under ``curves[model][<claim>]``, with
  ``SAME_LENGTH`` (series that must be as long as each other) and ``series(curve)`` where a curve holds several;
- ``FIGURE_TITLE`` and ``figure(verdicts, curves)``: its plot in the HTML report (None: nothing to draw);
- ``expand(exp)`` / ``variant(exp)`` (optional): one expectation per variant (noise: per kind) and its name,
  which ends the test id (``test_noise[model/task/white]``) and the verdict's condition.

A claim module imports neither the registry nor :mod:`~harness.claims.expectations` (it receives the expectation,
whose ``verdict()`` builds its Verdict), so the registry can import every claim and no import runs in a circle.
"""
