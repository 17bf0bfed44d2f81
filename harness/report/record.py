"""RunRecord: one JSON file per pytest session — what ran (provenance) and what it found (Verdicts + curves).

Why: a verdict is only worth comparing with last night's if we know what produced both — the model
revision, the harness commit, the package versions, the device, the seeds and the item counts. The record
is the one artifact every nightly job uploads; reports and baseline diffs are rendered from it alone.

Shape (``schema_version`` 2; ``SCHEMA`` below is the checked contract)::

    {"schema_version": 2, "created": "2026-11-20T03:12:00+00:00",
     "provenance": {"harness": {"version", "git_sha", "git_dirty"}, "python", "platform", "device",
                    "packages": {"torch": "2.13.0", "concept-erasure": null, ...},   # null: not installed
                    "models": [{"id", "family", "repo", "revision", "backbone", "backbone_revision", "asr"}],
                    "seeds": {...}, "items": {"requested": 160 | null, "observed": {"model/task": n}},
                    "options": {...}},                       # the session's options, as given
     "verdicts": [Verdict.to_dict(), ...],                    # non-finite numbers are written as null
     "curves": {MODEL_ID: MODEL_CURVES},                      # optional, for plots only
     "parts": [provenance, ...]}                              # only in merged records: each job's provenance

``MODEL_CURVES`` is keyed by claim name, each claim's curves by task (every part optional; the schema of one task's
curve is its claim module's ``CURVE_SCHEMA``, ``harness.claims``)::

    {"emergence": {TASK: {"layers": [0, 4, ...], "precision": [...], "control": [...],   # same lengths
                          "precision_ci": [[lo, hi], ...], "control_ci": [[lo, hi], ...]}},  # optional
     "collapse":  {TASK: {"accuracy": {"baseline": .83, "text": 0.0, "random": .79, "acoustic": .70},
                          "ci": {"baseline": [lo, hi], ...}, "chance": .25, "n": 160}},      # ci/chance/n optional
     "noise":     {TASK: {"white" | "babble" | "pink":
                          {"snr": ["clean", 20, 10, 5, 0], "speech_llm": [...], "cascade": [...],  # same lengths
                           "speech_llm_ci": [[lo, hi], ...], "cascade_ci": [[lo, hi], ...], "n": 160}}}}

Version 1 records (curves keyed "lens" and "erasure") are read as version 2: baselines written before the
claims had one name each still load and diff.
"""
from __future__ import annotations

from harness import paths

import importlib.metadata
import json
import math
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from harness.cache import atomic_write_bytes
from harness.claims.registry import NAMES as CLAIMS, claim
from harness.report.schema import CI as _ci, COUNT as _count, NUM as _num, STR as _str
from harness.verdict import Verdict

SCHEMA_VERSION = 2
V1_CURVES = {"lens": "emergence", "erasure": "collapse"}     # version 1's curve keys → the claims' names
RECORD_FILENAME = "record.json"
REPO_ROOT = paths.ROOT
PACKAGES = ("torch", "transformers", "faster-whisper", "ctranslate2", "concept-erasure", "huggingface_hub",
            "accelerate", "peft", "numpy", "scipy", "statsmodels", "scikit-learn", "piper-tts", "matplotlib",
            "pytest")


class RecordError(ValueError):
    """A record is malformed; the message names the file and the field (e.g. ``verdicts[2].passed``)."""


# ----------------------------------------------------------------------------- schema
VERDICT_SCHEMA = {
    "type": "object",
    "required": ["model", "task", "claim", "expected", "observed", "passed", "statistic", "value"],
    "additionalProperties": False,
    "properties": {"model": _str, "task": _str, "claim": {"enum": list(CLAIMS)}, "expected": _str,
                   "observed": _str, "passed": {"type": "boolean"}, "statistic": _str, "value": _num, "ci": _ci,
                   "n": _count, "p": _num, "p_method": {"type": ["string", "null"]}, "thresholds": {"type": "object"},
                   "paper": {"type": "object"}, "evidence": {"type": "object"}, "condition": _str, "reason": _str,
                   "key": _str},
}
MODEL_CURVES_SCHEMA = {      # each claim's curves by task, in its module's CURVE_SCHEMA
    "type": "object", "additionalProperties": False,
    "properties": {name: {"type": "object", "additionalProperties": claim(name).CURVE_SCHEMA}
                   for name in CLAIMS if hasattr(claim(name), "CURVE_SCHEMA")},
}
PROVENANCE_SCHEMA = {
    "type": "object", "required": ["harness", "packages", "models"],
    "properties": {"harness": {"type": "object", "required": ["version", "git_sha"],
                               "properties": {"version": _str, "git_sha": {"type": ["string", "null"]}}},
                   "packages": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
                   "models": {"type": "array", "items": {"type": "object", "required": ["id"],
                                                         "properties": {"id": _str}}},
                   "device": _str, "seeds": {"type": "object"}, "items": {"type": "object"},
                   "options": {"type": "object"}},
}
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "cascade-equivalence RunRecord",
    "type": "object", "required": ["schema_version", "created", "provenance", "verdicts"],
    "additionalProperties": False,
    "properties": {"schema_version": {"const": SCHEMA_VERSION}, "created": _str, "provenance": PROVENANCE_SCHEMA,
                   "verdicts": {"type": "array", "items": VERDICT_SCHEMA},
                   "curves": {"type": "object", "additionalProperties": MODEL_CURVES_SCHEMA},
                   "parts": {"type": "array", "items": PROVENANCE_SCHEMA}},
}


def _where(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validate(data: dict, source: str = "record") -> None:
    """Raise RecordError naming ``source`` and the first offending field; checks the schema, then lengths."""
    import jsonschema

    errors = sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise RecordError(f"{source}: {_where(e.absolute_path)}: {e.message}{more}")
    for model, curves in data.get("curves", {}).items():
        for name, per_task in curves.items():      # the schema admits only claims with a CURVE_SCHEMA
            module = claim(name)
            for task, curve in per_task.items():
                for where, s in getattr(module, "series", lambda c: [("", c)])(curve):
                    lengths = {k: len(s[k]) for k in getattr(module, "SAME_LENGTH", ()) if k in s}
                    if len(set(lengths.values())) > 1:
                        raise RecordError(f"{source}: curves.{model}.{name}.{task}{where}: series of different "
                                          f"lengths {lengths}")


# ----------------------------------------------------------------------------- the record
@dataclass
class RunRecord:
    """Provenance + verdicts + optional curves. ``parts`` holds each job's provenance in a merged record."""

    provenance: dict
    verdicts: list[Verdict]
    curves: dict = field(default_factory=dict)
    created: str = ""
    parts: list[dict] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self):
        self.created = self.created or datetime.now(timezone.utc).isoformat(timespec="seconds")

    @property
    def models(self) -> dict[str, dict]:
        """Model id → its provenance entry (repo, revision, ...); ids seen only in verdicts get ``{"id": ...}``."""
        out = {m["id"]: m for m in self.provenance.get("models", [])}
        for v in self.verdicts:
            out.setdefault(v.model, {"id": v.model})
        return out

    def revision(self, model: str) -> str | None:
        return self.models.get(model, {}).get("revision")

    def for_model(self, model: str) -> "RunRecord":
        """The part of this record about one model (what a per-revision baseline keeps)."""
        prov = {**self.provenance, "models": [m for m in self.provenance.get("models", []) if m["id"] == model]}
        return RunRecord(prov, [v for v in self.verdicts if v.model == model],
                         {k: v for k, v in self.curves.items() if k == model}, self.created)

    def to_dict(self) -> dict:
        d = {"schema_version": self.schema_version, "created": self.created, "provenance": self.provenance,
             "verdicts": [v.to_dict() for v in self.verdicts], "curves": self.curves}
        if self.parts:
            d["parts"] = self.parts
        return _finite(d)

    @classmethod
    def from_dict(cls, data: dict, source: str = "record") -> "RunRecord":
        data = _upgrade(data)
        validate(data, source)
        verdicts = []
        for i, d in enumerate(data["verdicts"]):
            d = dict(d, value=_nan(d["value"]))
            if d.get("ci") is not None:
                d["ci"] = [_nan(x) for x in d["ci"]]
            try:
                verdicts.append(Verdict.from_dict(d))
            except (TypeError, ValueError) as e:
                raise RecordError(f"{source}: verdicts[{i}]: {e}") from None
        return cls(data["provenance"], verdicts, data.get("curves", {}), data["created"], data.get("parts", []),
                   data["schema_version"])

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False, allow_nan=False)

    def write(self, path: Path | str) -> Path:
        """Validate, then write atomically (a crashed session never leaves half a record)."""
        path = Path(path)
        validate(self.to_dict(), str(path))
        atomic_write_bytes(path, self.to_json().encode("utf-8"))
        path.chmod(0o644)               # readable by whoever uploads or serves it (mkstemp makes it 0600)
        return path

    @classmethod
    def load(cls, path: Path | str) -> "RunRecord":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RecordError(f"{path}: no such record file") from None
        except json.JSONDecodeError as e:
            raise RecordError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(data, dict):
            raise RecordError(f"{path}: (top level): a record is a JSON object, got {type(data).__name__}")
        return cls.from_dict(data, str(path))


def write(record: RunRecord, path: Path | str) -> Path:
    return record.write(path)


def load(path: Path | str) -> RunRecord:
    return RunRecord.load(path)


def _agree(parts: list[dict]) -> dict:
    """Per field (one level into dicts such as ``packages``): the common value, or "mixed"."""
    out = {}
    for key in dict.fromkeys(k for p in parts for k in p):
        values = [p.get(key) for p in parts]
        if all(isinstance(v, dict) for v in values):
            out[key] = {k: vs[0] if all(v == vs[0] for v in vs) else "mixed"
                        for k in dict.fromkeys(k for v in values for k in v) for vs in [[v.get(k) for v in values]]}
        else:
            out[key] = values[0] if all(v == values[0] for v in values) else "mixed"
    return out


def _upgrade(data: dict) -> dict:
    """A version 1 record as version 2 (its curves under the claims' names); any other record as it is."""
    if not isinstance(data, dict) or data.get("schema_version") != 1:
        return data
    out = {**data, "schema_version": SCHEMA_VERSION}
    if isinstance(data.get("curves"), dict):
        out["curves"] = {model: {V1_CURVES.get(k, k): v for k, v in c.items()} if isinstance(c, dict) else c
                         for model, c in data["curves"].items()}
    return out


def _finite(x):
    """NaN/inf → null: records are strict JSON (readable by jq and browsers); ``load`` turns null values back."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def _nan(x):
    return math.nan if x is None else x


# ----------------------------------------------------------------------------- building and merging
def package_versions(names=PACKAGES) -> dict[str, str | None]:
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def harness_version() -> dict:
    """The package version and the git commit it ran from (``git_dirty``: uncommitted changes in the tree)."""
    try:
        version = importlib.metadata.version("cascade-equivalence")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    sha, dirty = None, None
    try:
        run = dict(cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        head = subprocess.run(["git", "rev-parse", "HEAD"], **run)
        if head.returncode == 0:
            sha = head.stdout.strip()
            dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], **run).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return {"version": version, "git_sha": sha, "git_dirty": dirty}


def detect_device() -> str:
    """The CUDA device's name when torch is already loaded and sees one, else "cpu" (never imports torch)."""
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available():
            return f"cuda:{torch.cuda.current_device()} ({torch.cuda.get_device_name()})"
    except Exception:  # a broken CUDA setup must not lose the record
        pass
    return "cpu"


def model_provenance(model_ids) -> list[dict]:
    """Registry facts for each id (repo, revision, backbone); ids not in the registry (reference systems,
    mutants) are kept with their id only."""
    try:
        from harness.specs import load_specs
        specs = load_specs()
    except Exception:  # an invalid registry is reported by its own tests; the record still gets written
        specs = {}
    out = []
    for mid in sorted(model_ids):
        s = specs.get(mid)
        out.append({"id": mid} if s is None else
                   {"id": mid, "family": s.family, "repo": s.repo, "revision": s.revision,
                    "revision_pinned": s.revision_pinned, "backbone": s.backbone.repo,
                    "backbone_revision": s.backbone.revision, "asr": s.asr if s.has_cascade else None,
                    "dtype": s.dtype})
    return out


def build_record(verdicts, curves: dict | None = None, options: dict | None = None) -> RunRecord:
    """The record for one pytest session; what the root conftest calls at session end.

    ``verdicts``: every Verdict the session produced. ``curves``: ``{model_id: MODEL_CURVES}`` (see the module
    docstring; may be None). ``options``: the session's options as a dict (e.g. ``{"items": 160, "strict": True,
    "device": "cuda", "seeds": {"bootstrap": 0, "noise": 0}, "models": [...]}``); ``device``, ``seeds`` and
    ``items`` are lifted into provenance, everything is kept under ``provenance.options`` (values that are not
    JSON become strings). The record is validated here, so a malformed verdict or curve fails at once with the
    field named, not when tomorrow's report is rendered.
    """
    verdicts, curves, options = list(verdicts), dict(curves or {}), dict(options or {})
    observed: dict[str, int] = {}
    for v in verdicts:
        observed[f"{v.model}/{v.task}"] = max(observed.get(f"{v.model}/{v.task}", 0), v.n)
    plain = json.loads(json.dumps(_finite(options), default=str))
    provenance = {
        "harness": harness_version(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(options.get("device") or detect_device()),
        "packages": package_versions(),
        "models": model_provenance({v.model for v in verdicts} | set(curves)),
        "seeds": plain.get("seeds") if isinstance(plain.get("seeds"), dict) else {"seed": plain.get("seeds")},
        "items": {"requested": plain.get("items"), "observed": observed},
        "options": plain,
    }
    record = RunRecord(provenance, verdicts, curves)
    validate(record.to_dict(), "build_record")
    return record


def merge(records) -> RunRecord:
    """One record from several (the nightly's final job: one record per model job).

    Verdicts and curves are concatenated; the same verdict key or the same model's curves in two records is an
    error (two jobs tested the same thing — which one is right?). Provenance keeps each field that all parts agree
    on and says "mixed" otherwise (per-job details stay in ``parts``); ``models`` and observed item counts are
    unions.
    """
    records = list(records)
    if not records:
        raise RecordError("merge: no records given")
    if len(records) == 1:
        return records[0]
    seen: dict[str, int] = {}
    verdicts, curves, parts = [], {}, []
    for i, r in enumerate(records):
        for v in r.verdicts:
            if v.key in seen:
                raise RecordError(f"merge: verdict {v.key!r} is in record {seen[v.key]} and record {i}")
            seen[v.key] = i
            verdicts.append(v)
        for model, c in r.curves.items():
            if model in curves:
                raise RecordError(f"merge: curves for {model!r} are in two records")
            curves[model] = c
        parts.extend(r.parts or [r.provenance])
    provenance = _agree(parts)
    models = {m["id"]: m for p in parts for m in p.get("models", [])}
    provenance["models"] = [models[k] for k in sorted(models)]
    requested = {str(p.get("items", {}).get("requested")) for p in parts}
    provenance["items"] = {"requested": parts[0].get("items", {}).get("requested") if len(requested) == 1 else "mixed",
                           "observed": {k: n for p in parts for k, n in p.get("items", {}).get("observed", {}).items()}}
    created = max(r.created for r in records)
    return RunRecord(provenance, verdicts, curves, created, parts)
