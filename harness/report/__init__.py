"""Run records, reports and baseline diffs: what a nightly run found, readable in 30 seconds.

- ``record``  RunRecord JSON (provenance + every Verdict + curves for plots), schema-checked; merge.
- ``render``  Markdown summary (fits a CI job summary) and one self-contained HTML file with plots.
- ``plots``   the matplotlib figures the HTML embeds.
- ``diff``    a record against a baseline record: BROKE / REACHED EQUIVALENCE headlines, exit status;
              baselines kept per model and revision under ``fixtures/baselines/<model>/<revision>.json``.
"""
