"""RunRecord: provenance, JSON round trip, schema errors that name the field, merge.

``sample_record`` (also used by the report, diff and workflow tests) builds Verdicts from real κ computed by
``harness.stats`` on synthetic answer lists, and curves shaped like the probes' and noise runs' output.
"""
import json
import math

import numpy as np
import pytest

from harness.report.record import RecordError, RunRecord, build_record, merge, validate
from harness.stats import agreement
from harness.verdict import Verdict

TASKS = {"topic": ["world", "sports", "business", "science"], "sentiment": ["positive", "negative"]}
PAPER_KAPPA = {("ultravox-v0_5-8b", "topic"): 0.93, ("ultravox-v0_5-8b", "sentiment"): 0.75,
               ("qwen2-audio-7b-instruct", "topic"): 0.85, ("qwen2-audio-7b-instruct", "sentiment"): 0.54}


def answers(labels, n, flip, seed):
    """A cascade's answers (8% wrong) and a speech-LLM's (a ``flip`` share of the cascade's replaced)."""
    rng = np.random.default_rng(seed)
    gold = [labels[i % len(labels)] for i in range(n)]
    cascade = [g if rng.random() > 0.08 else rng.choice(labels) for g in gold]
    speech = [c if rng.random() > flip else rng.choice([x for x in labels if x != c]) for c in cascade]
    return speech, cascade


def agreement_verdict(model, task, flip, *, seed=0, kappa_min=0.7, n=160):
    speech, cascade = answers(TASKS[task], n, flip, seed)
    a = agreement(speech, cascade, seed=0, n_resamples=500)
    equivalent = a.ci_low >= kappa_min
    return Verdict(model=model, task=task, claim="agreement", expected="equivalent",
                   observed="equivalent" if equivalent else "divergent", passed=equivalent, statistic="kappa",
                   value=a.kappa, ci=(a.ci_low, a.ci_high), n=a.n, p=0.41 if equivalent else 0.003,
                   p_method="McNemar exact, BH", thresholds={"kappa_min": kappa_min},
                   paper={"value": PAPER_KAPPA.get((model, task)), "tier": "notes"},
                   evidence={"raw": a.raw, "ac1": a.ac1, "ceiling_kappa": 0.95},
                   reason=f"κ lower bound {a.ci_low:.2f} {'≥' if equivalent else '<'} κ_min {kappa_min:.2f}")


def other_verdicts(model):
    return [
        Verdict(model=model, task="topic", claim="emergence", expected="emergent", observed="emergent", passed=True,
                statistic="lens_precision", value=0.34, ci=(0.30, 0.38), n=160, thresholds={"precision_min": 0.2},
                paper={"value": 0.342, "tier": "notes"}, evidence={"best_layer": 31, "control": 0.06},
                reason="best layer 31: 0.34 > control 0.06"),
        Verdict(model=model, task="topic", claim="collapse", expected="collapses", observed="collapses", passed=True,
                statistic="accuracy_erased", value=0.25, ci=(0.19, 0.32), n=160, thresholds={"floor": 0.3},
                evidence={"baseline": 0.83, "random": 0.79, "acoustic": 0.70}),
        Verdict(model=model, task="sentiment", claim="noise", expected="reverses", observed="reverses", passed=True,
                statistic="advantage_0db", value=-0.05, ci=(-0.09, -0.01), n=160, condition="babble",
                evidence={"advantage_clean": 0.02}),
    ]


def curves_for(model, shift=0.0):
    layers = list(range(0, 32, 4)) + [31]
    prec = [round(min(max(0.02 + 0.01 * layer ** 1.1 + shift * layer / 31, 0.01), 0.4), 3) for layer in layers]
    return {
        "emergence": {"topic": {"layers": layers, "precision": prec, "control": [0.05] * len(layers),
                           "precision_ci": [[p - 0.03, p + 0.03] for p in prec]},
                 "sentiment": {"layers": layers, "precision": [p * 0.8 for p in prec],
                               "control": [0.04] * len(layers)}},
        "collapse": {"topic": {"accuracy": {"baseline": 0.83, "text": 0.25, "random": 0.79, "acoustic": 0.70},
                              "ci": {"baseline": [0.77, 0.88], "text": [0.19, 0.32]}, "chance": 0.25, "n": 160},
                    "sentiment": {"accuracy": {"baseline": 0.86, "text": 0.5, "random": 0.85, "acoustic": 0.70},
                                  "chance": 0.5, "n": 160}},
        "noise": {"sentiment": {
            "white": {"snr": ["clean", 20, 10, 5, 0], "speech_llm": [0.88, 0.87, 0.83, 0.78, 0.70],
                      "cascade": [0.86, 0.86, 0.84, 0.81, 0.76], "n": 160},
            "babble": {"snr": ["clean", 20, 10, 5, 0], "speech_llm": [0.88, 0.86, 0.80, 0.72, 0.61],
                       "cascade": [0.86, 0.85, 0.83, 0.79, 0.74],
                       "speech_llm_ci": [[a - 0.05, a + 0.05] for a in (0.88, 0.86, 0.80, 0.72, 0.61)],
                       "cascade_ci": [[a - 0.05, a + 0.05] for a in (0.86, 0.85, 0.83, 0.79, 0.74)]}}},
    }


def sample_verdicts(flip_sentiment=0.03):
    """Two registry models; ultravox is equivalent on both tasks unless ``flip_sentiment`` is raised."""
    out = [agreement_verdict("ultravox-v0_5-8b", "topic", 0.02, seed=1),
           agreement_verdict("ultravox-v0_5-8b", "sentiment", flip_sentiment, seed=2),
           agreement_verdict("qwen2-audio-7b-instruct", "topic", 0.05, seed=3),
           agreement_verdict("qwen2-audio-7b-instruct", "sentiment", 0.30, seed=4)]
    return out + other_verdicts("ultravox-v0_5-8b")


def sample_record(flip_sentiment=0.03, **options):
    curves = {"ultravox-v0_5-8b": curves_for("ultravox-v0_5-8b"),
              "qwen2-audio-7b-instruct": curves_for("qwen2-audio-7b-instruct", shift=-0.1)}
    return build_record(sample_verdicts(flip_sentiment), curves,
                        {"items": 160, "strict": True, "device": "cuda:0 (NVIDIA H100)", "seeds": {"bootstrap": 0},
                         **options})


@pytest.fixture(scope="module")
def record():
    return sample_record()


def test_sample_verdicts_are_what_the_tests_assume(record):
    by_key = {v.key: v for v in record.verdicts}
    assert by_key["ultravox-v0_5-8b/sentiment/agreement"].passed
    assert not by_key["qwen2-audio-7b-instruct/sentiment/agreement"].passed
    assert 0.8 < by_key["ultravox-v0_5-8b/topic/agreement"].value < 1


def test_provenance_names_what_ran(record):
    p = record.provenance
    assert p["harness"]["version"] and len(p["harness"]["git_sha"] or "x" * 40) == 40
    assert {"torch", "transformers", "faster-whisper", "concept-erasure"} <= set(p["packages"])
    assert p["packages"]["numpy"] == np.__version__
    ultravox = record.models["ultravox-v0_5-8b"]
    assert ultravox["repo"] == "fixie-ai/ultravox-v0_5-llama-3_1-8b" and len(ultravox["revision"]) == 40
    assert ultravox["backbone"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert p["device"] == "cuda:0 (NVIDIA H100)" and p["seeds"] == {"bootstrap": 0}
    assert p["items"]["requested"] == 160 and p["items"]["observed"]["ultravox-v0_5-8b/topic"] == 160
    assert p["options"]["strict"] is True


def test_unknown_models_keep_their_id_and_odd_options_become_strings():
    v = agreement_verdict("my-local-system", "sentiment", 0.02)
    r = build_record([v], None, {"report_dir": __import__("pathlib").Path("/tmp/x")})
    assert r.models == {"my-local-system": {"id": "my-local-system"}}
    assert r.provenance["options"]["report_dir"] == "/tmp/x"
    assert r.provenance["device"] == "cpu"


def test_round_trip(record, tmp_path):
    path = record.write(tmp_path / "r" / "record.json")
    again = RunRecord.load(path)
    assert again.verdicts == record.verdicts
    assert again.curves == record.curves and again.provenance == record.provenance
    assert again.to_dict() == record.to_dict()
    assert [v.line() for v in again.verdicts] == [v.line() for v in record.verdicts]


def test_nan_is_written_as_null_and_read_back(tmp_path):
    v = Verdict(model="m", task="t", claim="agreement", expected="equivalent", observed="undefined", passed=False,
                statistic="kappa", value=math.nan, ci=(math.nan, math.nan), n=10)
    path = build_record([v]).write(tmp_path / "r.json")
    assert "NaN" not in path.read_text()
    back = RunRecord.load(path).verdicts[0]
    assert math.isnan(back.value) and all(math.isnan(x) for x in back.ci)


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d["verdicts"][1].__setitem__("passed", "yes"), r"verdicts\[1\]\.passed"),
    (lambda d: d["verdicts"][0].pop("statistic"), r"verdicts\[0\].*'statistic' is a required property"),
    (lambda d: d["verdicts"][0].__setitem__("claim", "vibes"), r"verdicts\[0\]\.claim"),
    (lambda d: d["verdicts"][2].__setitem__("colour", "red"), r"verdicts\[2\].*'colour' was unexpected"),
    (lambda d: d["provenance"]["harness"].pop("git_sha"), r"provenance\.harness.*git_sha"),
    (lambda d: d["curves"]["ultravox-v0_5-8b"]["collapse"]["topic"]["accuracy"].__setitem__("loud", 1),
     r"curves\.ultravox-v0_5-8b\.collapse\.topic\.accuracy"),
    (lambda d: d["curves"]["ultravox-v0_5-8b"]["emergence"]["topic"]["control"].pop(),
     r"curves\.ultravox-v0_5-8b\.emergence\.topic: series of different lengths"),
    (lambda d: d["curves"]["ultravox-v0_5-8b"]["noise"]["sentiment"]["white"]["snr"].__setitem__(0, "quiet"),
     r"curves\.ultravox-v0_5-8b\.noise\.sentiment\.white\.snr\[0\]"),
    (lambda d: d.__setitem__("schema_version", 99), r"schema_version"),
])
def test_schema_rejects_a_bad_record_naming_the_field(record, tmp_path, mutate, field):
    data = record.to_dict()
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError, match=rf"bad\.json: {field}"):
        RunRecord.load(path)


def test_unreadable_files_are_clear_errors(tmp_path):
    with pytest.raises(RecordError, match="no such record file"):
        RunRecord.load(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(RecordError, match="x.json: not valid JSON"):
        RunRecord.load(tmp_path / "x.json")


def test_build_record_rejects_malformed_curves_at_once():
    with pytest.raises(RecordError, match=r"build_record: curves\.m\.emergence\.topic.*'control'"):
        build_record([], {"m": {"emergence": {"topic": {"layers": [1], "precision": [0.1]}}}})


def test_merge_keeps_every_verdict_and_each_jobs_provenance(record):
    a, b = record.for_model("ultravox-v0_5-8b"), record.for_model("qwen2-audio-7b-instruct")
    b.provenance = {**b.provenance, "device": "cuda:0 (NVIDIA A100)"}
    merged = merge([a, b])
    validate(merged.to_dict())
    assert sorted(v.key for v in merged.verdicts) == sorted(v.key for v in record.verdicts)
    assert set(merged.curves) == set(record.curves)
    assert [m["id"] for m in merged.provenance["models"]] == ["qwen2-audio-7b-instruct", "ultravox-v0_5-8b"]
    assert merged.provenance["device"] == "mixed" and len(merged.parts) == 2
    assert merged.provenance["packages"] == record.provenance["packages"]
    assert merged.provenance["items"]["observed"] == record.provenance["items"]["observed"]


def test_merge_refuses_the_same_verdict_twice(record):
    with pytest.raises(RecordError, match="ultravox-v0_5-8b/topic/agreement"):
        merge([record.for_model("ultravox-v0_5-8b"), record.for_model("ultravox-v0_5-8b")])


def test_a_version_1_record_reads_with_its_curves_under_the_claims_names(record, tmp_path):
    """Baselines written before the claims had one name each (curves "lens", "erasure") still load and diff."""
    data = record.to_dict()
    data["schema_version"] = 1
    for curves in data["curves"].values():
        curves["lens"], curves["erasure"] = curves.pop("emergence"), curves.pop("collapse")
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(data))
    old = RunRecord.load(path)
    assert old.schema_version == 2 and old.curves == record.curves and old.verdicts == record.verdicts
    data["schema_version"] = 2                     # a version 2 record knows only the claims' names
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError,
                       match=r"curves\.[^:]+: Additional properties are not allowed \('erasure', 'lens' were"):
        RunRecord.load(path)


def test_the_committed_baselines_still_load():
    from harness.report.diff import BASELINES

    paths = sorted(BASELINES.glob("*/*.json"))
    assert paths and all(RunRecord.load(p).schema_version == 2 for p in paths)
