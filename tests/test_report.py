"""Markdown and HTML reports: every verdict's line, failures first, plots embedded, nothing loaded from outside."""
import base64
import re

import pytest

from harness.__main__ import main
from harness.claims import agreement, emergence, noise
from harness.claims.registry import NAMES
from harness.report.record import RunRecord, build_record
from harness.report.render import markdown, write_reports
from tests.test_record import agreement_verdict, sample_record

PLOTS = NAMES             # one figure per claim


@pytest.fixture(scope="module")
def record():
    return sample_record()


@pytest.fixture(scope="module")
def written(record, tmp_path_factory):
    return write_reports(record, tmp_path_factory.mktemp("report"))


def test_markdown_has_the_headline_and_every_verdict_line(record):
    md = markdown(record)
    assert md.startswith("# Cascade equivalence: 2 model(s), 7 verdict(s): 6 passed, 1 failed")
    for v in record.verdicts:
        assert v.line() in md
    rows = [line for line in md.splitlines() if line.startswith("| ✅") or line.startswith("| ❌")]
    assert rows[0].startswith("| ❌") and "NOT equivalent" in rows[0]      # failures first
    assert "fixie-ai/ultravox-v0_5-llama-3_1-8b @ 779bcda5ad" in md
    assert "<details><summary>Provenance</summary>" in md and "torch" in md


def test_markdown_escapes_table_pipes():
    v = agreement_verdict("m|x", "sentiment", 0.02)
    md = markdown(build_record([v]))
    assert "m\\|x/sentiment" in md


def test_markdown_passes_no_raw_html_from_ids_reasons_or_known_issues():
    import dataclasses

    v = agreement_verdict("<img src=x onerror=alert(1)>", "sentiment", 0.3)
    v = dataclasses.replace(v, reason="<script>alert(1)</script> &amp; <!-- hidden -->",
                            evidence={**v.evidence, "known_issue": "</td><b>bold</b>"})
    md = markdown(build_record([v]))
    verdict_rows = [line for line in md.splitlines() if line.startswith("| ❌") or line.startswith("| ⚠️")]
    assert verdict_rows and not re.search(r"<(?=[A-Za-z/!?])", "\n".join(verdict_rows))
    assert "&lt;script>alert(1)&lt;/script> &amp;amp; &lt;!-- hidden -->" in md
    assert "&lt;/td>&lt;b>bold&lt;/b>" in md


def test_html_is_self_contained_and_has_every_plot(written):
    page = written[1].read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert not re.search(r"@import|url\(|<script|<link", page, re.I)
    images = re.findall(r"<img [^>]*src=\"([^\"]+)\"", page)
    assert len(images) == len(PLOTS) and all(src.startswith("data:image/png;base64,") for src in images)
    for src in images:
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    for name in PLOTS:
        figure = re.search(rf"<figure id=\"plot-{name}\">(.*?)</figure>", page, re.S)
        assert figure and "<img " in figure.group(1), name


def test_html_carries_every_verdict_line_escaped(record, written):
    import html as h
    page = written[1].read_text()
    for v in record.verdicts:
        assert h.escape(v.line()) in page


def test_write_reports_writes_record_markdown_html_and_a_status(record, written):
    md_path, html_path, status = written
    assert md_path.name == "report.md" and html_path.name == "report.html"
    assert status == 1                                   # one verdict failed and there is no baseline
    assert RunRecord.load(md_path.parent / "record.json").to_dict() == record.to_dict()
    assert md_path.read_text() == markdown(record)


def test_all_passing_record_exits_zero_and_missing_curves_say_so(tmp_path):
    record = build_record([agreement_verdict("ultravox-v0_5-8b", "topic", 0.02, seed=1)])
    _, html_path, status = write_reports(record, tmp_path)
    assert status == 0
    page = html_path.read_text()
    assert page.count("<img ") == 1 and "No emergence data in this record." in page


def test_figures_are_none_without_data():
    assert emergence.figure([], {}) is None and noise.figure([], {"m": {"emergence": {}}}) is None
    assert agreement.figure([], {}) is None


def test_cli_report_prints_the_markdown_and_exits_with_the_status(record, tmp_path, capsys):
    path = record.write(tmp_path / "in.json")
    assert main(["report", str(path), "--out", str(tmp_path / "out")]) == 1
    out = capsys.readouterr()
    assert out.out.startswith("# Cascade equivalence:") and "report.html" in out.err
    assert (tmp_path / "out" / "report.html").is_file()


def test_cli_report_merges_several_records(record, tmp_path, capsys):
    a = record.for_model("ultravox-v0_5-8b").write(tmp_path / "a.json")
    b = record.for_model("qwen2-audio-7b-instruct").write(tmp_path / "b.json")
    main(["report", str(a), str(b), "--out", str(tmp_path / "out")])
    merged = RunRecord.load(tmp_path / "out" / "record.json")
    assert len(merged.verdicts) == len(record.verdicts) and len(merged.parts) == 2
    assert "2 model(s), 7 verdict(s)" in capsys.readouterr().out


def test_cli_report_on_a_bad_record_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "bad.json").write_text('{"schema_version": 1}')
    assert main(["report", str(tmp_path / "bad.json"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "bad.json" in err and "required property" in err
    assert len(err.strip().splitlines()) == 1


def test_a_known_issue_is_told_apart_from_a_new_failure():
    import dataclasses

    from harness.report.render import html

    new = agreement_verdict("ref-x", "topic", 0.30)
    known = dataclasses.replace(agreement_verdict("ref-y", "topic", 0.35),
                                evidence={**agreement_verdict("ref-y", "topic", 0.35).evidence,
                                          "known_issue": "under-trained projector (issue 5)"})
    rec = build_record([known, new, agreement_verdict("ref-z", "topic", 0.02)])
    md = markdown(rec)
    assert "2 failed (1 of them known issues)" in md
    rows = [line for line in md.splitlines() if line[:3] in ("| ✅", "| ❌", "| ⚠")]
    assert rows[0].startswith("| ❌") and "ref-x" in rows[0]                 # the new failure on top
    assert rows[1].startswith("| ⚠️") and "known issue: under-trained projector (issue 5)" in rows[1]
    assert rows[2].startswith("| ✅")
    page = html(rec)
    assert 'class="known"' in page and "known issue: under-trained projector" in page and "FAILED" in page
