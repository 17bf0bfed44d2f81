"""A RunRecord (and optionally its baseline diff) as Markdown and as one self-contained HTML file.

Why two: the Markdown is what a CI job summary or an issue shows — headline first, one line per verdict,
failures on top. The HTML adds the plots, embedded as base64 PNGs with inline CSS, so the single file reads
the same offline, attached to an artifact or mailed around: it loads nothing from anywhere.
"""
from __future__ import annotations

import html as _html
import re
from pathlib import Path

from harness.claims.registry import NAMES, claim
from harness.report import plots
from harness.report.diff import ORDER, Diff, baseline_for, compare
from harness.report.record import RECORD_FILENAME, RunRecord

CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#1f2328;padding:0 1em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left;
vertical-align:top}code{font-size:12px}.fail{background:#ffebe9}.pass{background:#dafbe1}.known{background:#fff8c5}.broke{color:#cf222e;
font-weight:600}figure{margin:1.2em 0}img{max-width:100%}.empty{color:#57606a;font-style:italic}"""


def known_issue(v) -> str | None:
    """The documented reason a failed verdict was expected (claims files' ``known_issue``), else None."""
    return None if v.passed else (v.evidence or {}).get("known_issue")


def status(v) -> tuple[str, str, str]:
    """(emoji for Markdown, word for HTML, CSS class): passed, a known (expected, documented) failure, or a new one."""
    if v.passed:
        return "✅", "passed", "pass"
    return ("⚠️", "known issue", "known") if known_issue(v) else ("❌", "FAILED", "fail")


def headline(record: RunRecord, diff: Diff | None = None) -> str:
    failed = sum(not v.passed for v in record.verdicts)
    known = sum(bool(known_issue(v)) for v in record.verdicts)
    models = sorted({v.model for v in record.verdicts})
    text = (f"{len(models)} model(s), {len(record.verdicts)} verdict(s): {len(record.verdicts) - failed} passed, "
            f"{failed} failed" + (f" ({known} of them known issues)" if known else ""))
    if diff is not None:
        text += (f"; {len(diff.broke)} broke against the baseline" if diff.broke
                 else "; nothing broke against the baseline")
    return text


def _sorted(record: RunRecord):
    """New failures first, then known issues, then passes."""
    return sorted(record.verdicts, key=lambda v: (v.passed, bool(known_issue(v)), v.model, v.task, v.claim,
                                                  v.condition))


def _model_rows(record: RunRecord) -> list[list[str]]:
    return [[m["id"], f"{m.get('repo') or '—'} @ {(m.get('revision') or '—')[:10]}",
             f"{m.get('backbone') or '—'} @ {(m.get('backbone_revision') or '—')[:10]}"]
            for m in record.models.values()]


def _provenance_pairs(record: RunRecord) -> list[tuple[str, str]]:
    p = record.provenance
    h = p.get("harness", {})
    pkgs = ", ".join(f"{k} {v}" for k, v in sorted(p.get("packages", {}).items()) if v)
    return [("created", record.created),
            ("harness", f"{h.get('version')} @ {(h.get('git_sha') or 'no git')[:12]}"
                        + (" (uncommitted changes)" if h.get("git_dirty") is True else "")),
            ("device", str(p.get("device", "?"))), ("python", f"{p.get('python', '?')} on {p.get('platform', '?')}"),
            ("items", str(p.get("items", {}).get("requested"))), ("seeds", str(p.get("seeds", {}))),
            ("options", str(p.get("options", {}))), ("packages", pkgs)] + \
        ([("merged from", f"{len(record.parts)} records (one per job)")] if record.parts else [])


_HTML_START = re.compile(r"<(?=[A-Za-z/!?])")       # what Markdown would pass through as a tag or comment
_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")        # what it would read as a character reference


def _md_cell(text: str) -> str:
    """Text for one Markdown table cell: no raw HTML (Markdown passes tags through, and reasons, ids and notes come
    from files), pipes escaped, one line. A plain comparison such as "0.62 < κ_max" stays readable as it is."""
    text = _HTML_START.sub("&lt;", _ENTITY.sub("&amp;", str(text)))
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(record: RunRecord, diff: Diff | None = None, note: str = "") -> str:
    """Headline, diff headlines (or ``note``, e.g. why there is no diff), a table of every verdict's one-line
    rendering (failures first), models, and provenance folded in a <details> block."""
    out = [f"# Cascade equivalence: {headline(record, diff)}", ""]
    if diff is not None:
        out += [diff.markdown(), ""]
    if note:
        out += [f"_{note}_", ""]
    out += ["## Verdicts", "", "| | claim | verdict |", "|---|---|---|"]
    out += [f"| {status(v)[0]} | {v.claim} | {_md_cell(v.line())}"
            + (f" — known issue: {_md_cell(known_issue(v))}" if known_issue(v) else "") + " |" for v in _sorted(record)]
    out += ["", "## Models", "", "| id | model @ revision | matched backbone @ revision |", "|---|---|---|"]
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in _model_rows(record)]
    out += ["", "<details><summary>Provenance</summary>", ""]
    out += [f"- **{k}**: {_md_cell(v)}" for k, v in _provenance_pairs(record)]
    out += ["", "</details>", ""]
    return "\n".join(out)


def _table(head: list[str] | None, rows: list[list[str]], classes: list[str] | None = None) -> str:
    e = _html.escape
    body = "".join(f"<tr class=\"{c}\">" + "".join(f"<td>{e(x)}</td>" for x in row) + "</tr>"
                   for row, c in zip(rows, classes or [""] * len(rows)))
    top = f"<tr>{''.join(f'<th>{e(h)}</th>' for h in head)}</tr>" if head else ""
    return f"<table>{top}{body}</table>"


def html(record: RunRecord, diff: Diff | None = None, note: str = "") -> str:
    """One self-contained page: the Markdown's content plus the four figures as data: URIs."""
    e = _html.escape
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Cascade equivalence report"
             f"</title><style>{CSS}</style></head><body>",
             f"<h1>Cascade equivalence</h1><p>{e(headline(record, diff))}</p>"]
    if diff is not None:
        parts.append(f"<h2>Against the baseline</h2><p>{e(diff.summary())}</p><ul>"
                     + "".join(f"<li class=\"{'broke' if c.broke else ''}\">{e(c.text)}</li>"
                               for c in sorted(diff.changes, key=lambda c: (ORDER.index(c.kind), c.key)))
                     + "</ul>")
    if note:
        parts.append(f"<p class=\"empty\">{e(note)}</p>")
    verdicts = _sorted(record)
    # words, not emoji: a machine without an emoji font shows the page the same
    parts.append("<h2>Verdicts</h2>" + _table(["", "claim", "verdict"],
                                               [[status(v)[1], v.claim, v.line()
                                                 + (f" — known issue: {known_issue(v)}" if known_issue(v) else "")]
                                                for v in verdicts],
                                               [status(v)[2] for v in verdicts]))
    parts.append("<h2>Plots</h2>")
    for name in NAMES:                   # each claim draws its own figure
        title, fig = claim(name).FIGURE_TITLE, claim(name).figure(record.verdicts, record.curves)
        body = (f"<img alt=\"{e(title)}\" src=\"data:image/png;base64,{plots.png_base64(fig)}\">" if fig is not None
                else f"<p class=\"empty\">No {name} data in this record.</p>")
        parts.append(f"<figure id=\"plot-{name}\"><figcaption><b>{e(title)}</b></figcaption>{body}</figure>")
    parts.append("<h2>Models</h2>" + _table(["id", "model @ revision", "matched backbone @ revision"],
                                            _model_rows(record)))
    parts.append("<h2>Provenance</h2>" + _table(None, [list(p) for p in _provenance_pairs(record)]))
    parts.append("</body></html>")
    return "\n".join(parts)


def _baseline(baseline, record: RunRecord) -> RunRecord | None:
    if baseline is None or isinstance(baseline, RunRecord):
        return baseline
    path = Path(baseline)
    if path.suffix != ".json":          # a baselines directory; a missing one simply holds no baselines yet
        return baseline_for(record, path) if path.is_dir() else None
    return RunRecord.load(path)         # a named file must exist


def write_reports(record: RunRecord, out_dir, baseline=None) -> tuple[Path, Path, int]:
    """Write ``record.json``, ``report.md`` and ``report.html`` into ``out_dir``; what the root conftest calls at
    session end (and ``python -m harness report``).

    ``baseline``: None, a RunRecord, a record file (``*.json``, must exist), or a baselines directory laid out
    ``<model>/<revision>.json`` (e.g. ``fixtures/baselines``; each model's baseline is found with
    ``diff.find_baseline``; a missing directory holds none). Returns
    ``(md_path, html_path, exit_status)``: with a baseline, 1 when anything broke against it (see
    ``harness.report.diff``) else 0; without one, 1 when any verdict failed else 0.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = _baseline(baseline, record)
    diff = compare(record, base) if base is not None else None
    note = f"No baseline found under {baseline} for these models." if baseline is not None and base is None else ""
    record.write(out / RECORD_FILENAME)
    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(markdown(record, diff, note), encoding="utf-8")
    html_path.write_text(html(record, diff, note), encoding="utf-8")
    status = diff.exit_status if diff is not None else int(any(not v.passed for v in record.verdicts))
    return md_path, html_path, status
