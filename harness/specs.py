"""Model registry: ``fixtures/models/*.toml`` → validated, frozen ``ModelSpec``s.

A new release is one small TOML file. Validation fails loudly (``SpecError`` naming the file) on an unknown
loader or family (``harness.families``), a missing revision, or a backbone that contradicts the family; an
explicitly unpinned revision (``revision_pinned = false`` + a note) is allowed and shows up as a warning in
``models_table``.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from harness import families, paths

DEFAULT_ROOT = paths.MODELS
LOADERS = ("hf_native", "ultravox", "api", "reference", "disguised_cascade", "transcriber")
OFFLINE_LOADERS = ("reference", "disguised_cascade", "transcriber")   # run from packaged weights on a CPU
DTYPES = ("bfloat16", "float16", "float32")
# Which matched cascade the claims use. "self": the speech-LLM's own language model reading the transcript (same
# module, weights and chat template; exact for adapter-only designs, one model in memory). "separate": the
# [backbone] repo loaded on its own (the paper's cascade; jointly-trained models keep it).
CASCADE_KINDS = ("self", "separate")
SELF_CASCADE_LOADERS = ("ultravox", "hf_native")


class SpecError(ValueError):
    """A registry entry is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class Backbone:
    repo: str | None          # None only for API models (no matched cascade)
    revision: str | None


@dataclass(frozen=True)
class ModelSpec:
    id: str
    family: str
    loader: str
    repo: str
    revision: str
    backbone: Backbone
    hf_class: str | None = None
    asr: str = "large-v3"
    dtype: str = "bfloat16"
    gpu_memory_gb: float = 0.0
    trust_remote_code: bool = False
    matched_cascade: str = "separate"     # one of CASCADE_KINDS
    paper: bool = False
    revision_pinned: bool = True
    revision_note: str = ""
    notes: str = ""
    api_key_env: str | None = None
    path: str = field(default="", compare=False)

    @property
    def warnings(self) -> tuple[str, ...]:
        out = []
        if not self.revision_pinned:
            out.append(f"revision {self.revision!r} is not pinned: {self.revision_note or 'no note'}")
        if self.backbone.repo and self.backbone.revision in (None, "main"):
            out.append("backbone revision is not pinned")
        return tuple(out)

    @property
    def offline(self) -> bool:
        """Runs from packaged/committed weights on a CPU (the reference controls)."""
        return self.loader in OFFLINE_LOADERS

    @property
    def has_cascade(self) -> bool:
        return self.backbone.repo is not None


def _fail(path: Path, msg: str):
    raise SpecError(f"{path.name}: {msg}")


# The type each registry field must have (TOML gives them typed; a quoted number or "no" for false is an error here,
# not a crash far away in a report's format string).
_STR, _OPT_STR, _BOOL = (str,), (str, type(None)), (bool,)
FIELD_TYPES = {"id": _STR, "family": _STR, "loader": _STR, "repo": _STR, "revision": _STR, "hf_class": _OPT_STR,
               "asr": _STR, "dtype": _STR, "trust_remote_code": _BOOL, "paper": _BOOL, "revision_pinned": _BOOL,
               "revision_note": _STR, "notes": _STR, "api_key_env": _OPT_STR}


def _check_types(data: dict, path: Path) -> None:
    for key, types in FIELD_TYPES.items():
        if key in data and not isinstance(data[key], types):
            want = " or ".join("a string" if t is str else "true/false" if t is bool else "absent" for t in types)
            _fail(path, f"field {key!r} must be {want}, got {data[key]!r} ({type(data[key]).__name__})")
    if "gpu_memory_gb" in data:
        gb = data["gpu_memory_gb"]
        if isinstance(gb, bool) or not isinstance(gb, (int, float)) or not (0 <= gb < 10_000):
            _fail(path, f"field 'gpu_memory_gb' must be a number of GiB in [0, 10000), got {gb!r}")
    bb = data.get("backbone")
    if bb is not None and not isinstance(bb, dict):
        _fail(path, f"[backbone] must be a table, got {bb!r}")
    for key in ("repo", "revision"):
        if isinstance(bb, dict) and key in bb and not isinstance(bb[key], str):
            _fail(path, f"field 'backbone.{key}' must be a string, got {bb[key]!r} ({type(bb[key]).__name__})")
    if isinstance(bb, dict) and set(bb) - {"repo", "revision"}:
        _fail(path, f"[backbone]: unknown field(s) {sorted(set(bb) - {'repo', 'revision'})}; known: repo, revision")


def parse_spec(data: dict, path: Path = Path("<inline>.toml")) -> ModelSpec:
    """Validate one TOML table and build its ModelSpec."""
    known = {f.name for f in fields(ModelSpec)} - {"path"}
    unknown = set(data) - known
    if unknown:
        _fail(path, f"unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
    _check_types(data, path)
    for key in ("id", "family", "loader", "repo"):
        if not data.get(key):
            _fail(path, f"missing required field {key!r}")
    sid, loader, family = data["id"], data["loader"], data["family"]
    if path.stem != "<inline>" and path.stem != sid:
        _fail(path, f"file name must be the id ({sid}.toml)")
    if loader not in LOADERS:
        _fail(path, f"unknown loader {loader!r}; known loaders: {', '.join(LOADERS)}")
    if family not in families.FAMILIES:
        _fail(path, f"unknown family {family!r}; known families: {', '.join(families.FAMILIES)} "
                    "(a new family is one entry in harness/families.py)")
    if loader != "api" and not data.get("revision"):
        _fail(path, "missing revision: pin a commit sha, or set revision = \"main\" with revision_pinned = false "
                    "and a revision_note saying why")
    pinned = data.get("revision_pinned", True)
    if pinned and data.get("revision") == "main":
        _fail(path, "revision 'main' is not a pin: set revision_pinned = false and a revision_note")
    if not pinned and not data.get("revision_note"):
        _fail(path, "revision_pinned = false needs a revision_note")
    if loader == "hf_native" and not data.get("hf_class"):
        _fail(path, "loader 'hf_native' needs hf_class (the transformers class name)")
    if data.get("dtype", "bfloat16") not in DTYPES:
        _fail(path, f"dtype {data['dtype']!r} is not one of {DTYPES}")
    kind = data.get("matched_cascade", "separate")
    if kind not in CASCADE_KINDS:
        _fail(path, f"matched_cascade {kind!r} is not one of {CASCADE_KINDS}")
    if "matched_cascade" in data and loader == "api":
        _fail(path, "an API model has no matched cascade (remove matched_cascade)")
    if kind == "self" and loader not in SELF_CASCADE_LOADERS:
        _fail(path, f"matched_cascade = \"self\" needs a loaded language model (loaders {SELF_CASCADE_LOADERS}), "
                    f"not loader {loader!r}")
    bb = data.get("backbone")
    if loader == "api":
        if bb:
            _fail(path, "an API model has no matched backbone (remove [backbone])")
        backbone = Backbone(None, None)
        if not data.get("api_key_env"):
            _fail(path, "loader 'api' needs api_key_env (the environment variable holding the key)")
    else:
        if not isinstance(bb, dict) or not bb.get("repo"):
            _fail(path, "missing [backbone] repo: the matched cascade's text LLM")
        if not bb.get("revision"):
            _fail(path, "missing [backbone] revision")
        expected = families.FAMILIES[family].backbones   # the backbone repo must contain one (case-insensitive)
        if expected and not any(tag in bb["repo"].lower() for tag in expected):
            _fail(path, f"backbone mismatch: family {family!r} uses a {'/'.join(expected)} backbone, "
                        f"got {bb['repo']!r}")
        backbone = Backbone(bb["repo"], bb["revision"])
    values = {k: v for k, v in data.items() if k != "backbone"}
    values.setdefault("revision", "")
    return ModelSpec(**values, backbone=backbone, path=str(path))


def load_specs(root: Path | str = DEFAULT_ROOT) -> dict[str, ModelSpec]:
    """Every ``*.toml`` under ``root``, validated; duplicate ids are an error."""
    specs: dict[str, ModelSpec] = {}
    for path in sorted(Path(root).glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise SpecError(f"{path.name}: not valid TOML ({e})") from e
        spec = parse_spec(data, path)
        if spec.id in specs:
            raise SpecError(f"{path.name}: duplicate id {spec.id!r} (also in {Path(specs[spec.id].path).name})")
        specs[spec.id] = spec
    return specs


def get_spec(spec_id: str, root: Path | str = DEFAULT_ROOT) -> ModelSpec:
    specs = load_specs(root)
    if spec_id not in specs:
        raise KeyError(f"unknown model {spec_id!r}; known: {', '.join(sorted(specs))}")
    return specs[spec_id]


def models_table(specs, **availability) -> list[dict]:
    """One row per spec for ``python -m harness models``; ``availability`` goes to ``why_unavailable``."""
    from harness.availability import why_unavailable

    rows = []
    for spec in (specs.values() if isinstance(specs, dict) else specs):
        why = why_unavailable(spec, **availability)
        rows.append({
            "id": spec.id, "family": spec.family, "loader": spec.loader,
            "backbone": f"{spec.backbone.repo}@{spec.backbone.revision}" if spec.has_cascade else "(none)",
            "asr": spec.asr if spec.has_cascade else "(none)", "memory_gb": spec.gpu_memory_gb,
            "runnable": why is None, "why_not": why or "", "warnings": "; ".join(spec.warnings),
        })
    return rows


def markdown_table(specs, **availability) -> str:
    rows = models_table(specs, **availability)
    head = "| id | family | loader | backbone | ASR | GPU GB | runnable here |\n|---|---|---|---|---|---|---|"
    lines = [f"| `{r['id']}` | {r['family']} | {r['loader']} | {r['backbone']} | {r['asr']} | {r['memory_gb']:g} | "
             f"{'yes' if r['runnable'] else 'no: ' + r['why_not']} |" for r in rows]
    return "\n".join([head, *lines])


def registry_markdown(specs) -> str:
    """The machine-independent registry table the README carries (a test keeps the two in step)."""
    def short(rev: str) -> str:
        return rev[:10] if len(rev) == 40 else rev

    head = ("| id | family | loader | model @ revision | matched cascade: ASR → backbone @ revision | GPU GB |\n"
            "|---|---|---|---|---|---|")
    lines = []
    for spec in sorted((specs.values() if isinstance(specs, dict) else specs), key=lambda s: s.id):
        cascade = (f"{spec.asr} → {spec.backbone.repo} @ {short(spec.backbone.revision)}"
                   if spec.has_cascade else "(none: behaviour only)")
        lines.append(f"| `{spec.id}` | {spec.family} | {spec.loader} | {spec.repo} @ {short(spec.revision)} | "
                     f"{cascade} | {spec.gpu_memory_gb:g} |")
    return "\n".join([head, *lines])
