"""The paper's real datasets behind the same Task interface, read with the `datasets` library.

From the Hugging Face hub when it is reachable; offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE), without
`datasets`, or on any download failure, `load_hub_task` raises HubUnavailable with the reason, so callers
(tests) can skip with that message instead of failing. `local=` reads a folder laid out like the hub
repository (its README's `configs:` and its parquet files) through the very same `load_dataset` call:
that is how the tests exercise every loader offline (fixtures/hub-datasets/).

Text-sufficient datasets reuse the instruction of their mini twin so hub and mini results are asked
the same question; their items are spoken by the offline TTS (the paper used Edge-TTS). MELD and MUStARD
are real speech: each item carries the dataset's own recording (decoded with soundfile, not torchcodec:
the audio column is read undecoded), written once to the cache under its content hash.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from .mini import DEFAULT_ROOT, read_meta
from .types import MC_OPTIONS, Item, Task


class HubUnavailable(RuntimeError):
    """The hub dataset cannot be used here; str(e) says why (offline, no `datasets`, download error)."""


Row = dict
Mapped = tuple[str, str, tuple[str, ...], tuple[str, ...]] | None  # text, label, options, aliases


@dataclass(frozen=True)
class HubSpec:
    dataset: str
    config: str | None
    split: str  # a labelled split (test sets of SST-2 / CSQA have no public labels)
    kind: str
    text_sufficient: bool
    paper_task: str
    labels: tuple[str, ...]
    mapper: Callable[[Row, "HubSpec", object], Mapped]
    mini_twin: str | None = None  # instruction comes from this mini task's toml
    instruction: str = ""
    revision: str | None = None   # branch or commit read by default (the resolved commit goes into Task.source)
    data_dir: str | None = None   # folder inside the repository (parquet-converted branches)
    audio_column: str | None = None  # the dataset's own recordings (text-insufficient tasks)


def _class_label(row: Row, key: str, spec: HubSpec, features) -> str | None:
    """Label name for an int ClassLabel (by our label order) or a string label."""
    v = row.get(key)
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, int):
        return spec.labels[v] if 0 <= v < len(spec.labels) else None
    if isinstance(v, str):
        v = v.strip().lower()
        return v if v in spec.labels else None
    return None


def _ag_news(row, spec, features) -> Mapped:
    label = _class_label(row, "label", spec, features)  # 0 World, 1 Sports, 2 Business, 3 Sci/Tech
    return (row["text"].strip(), label, spec.labels, ()) if label else None


def _sst2(row, spec, features) -> Mapped:
    label = _class_label(row, "label", spec, features)  # 0 negative, 1 positive
    return (row["sentence"].strip(), label, spec.labels, ()) if label else None


def _csqa(row, spec, features) -> Mapped:
    keys, texts = row["choices"]["label"], [t.strip() for t in row["choices"]["text"]]
    if row.get("answerKey") not in keys or len(set(texts)) != MC_OPTIONS:
        return None
    return row["question"].strip(), texts[keys.index(row["answerKey"])], tuple(texts), ()


def _triviaqa(row, spec, features) -> Mapped:
    ans = row["answer"]
    aliases = tuple(dict.fromkeys(a for a in ans.get("aliases", []) if a and a != ans["value"]))
    return row["question"].strip(), ans["value"], (), aliases


def _meld(row, spec, features) -> Mapped:
    # ajyy/MELD_audio: emotion is a ClassLabel whose names are in the dataset's own order
    v = row.get("emotion")
    if isinstance(v, int) and features is not None and hasattr(features.get("emotion"), "int2str"):
        v = features["emotion"].int2str(v)
    label = str(v).strip().lower() if v is not None else None
    return (row["text"].strip(), label, spec.labels, ()) if label in spec.labels else None


_TRUE = {"true", "yes", "1", "sarcastic", "sarcasm"}
_FALSE = {"false", "no", "0", "not sarcastic", "non-sarcastic", "not_sarcastic", "literal"}


def _mustard(row, spec, features) -> Mapped:
    # Field names differ between hub copies of MUStARD; take the first that is present. Dynamic-SUPERB's copy
    # (file, audio, instruction, label) has no transcript: the item then has empty text and is its recording only.
    text = next((row[k] for k in ("utterance", "text", "transcription", "sentence") if row.get(k)), "")
    raw = next((row[k] for k in ("sarcasm", "label", "answer") if k in row), None)
    if isinstance(raw, int) and features is not None and hasattr(features.get("label"), "int2str"):
        raw = features["label"].int2str(raw)
    v = str(raw).strip().lower()
    label = "sarcastic" if v in _TRUE else "not sarcastic" if v in _FALSE else None
    return (str(text).strip(), label, spec.labels, ()) if label else None


HUB_TASKS: dict[str, HubSpec] = {
    "ag_news": HubSpec("fancyzhx/ag_news", None, "test", "classification", True, "AG News",
                       ("world", "sports", "business", "sci-tech"), _ag_news, mini_twin="topic"),
    "sst2": HubSpec("stanfordnlp/sst2", None, "validation", "classification", True, "SST-2",
                    ("negative", "positive"), _sst2, mini_twin="sentiment"),
    "csqa": HubSpec("tau/commonsense_qa", None, "validation", "multiple_choice", True, "CSQA",
                    (), _csqa, mini_twin="commonsense"),
    "triviaqa": HubSpec("mandarjoshi/trivia_qa", "rc.nocontext", "validation", "open_qa", True, "TriviaQA",
                        (), _triviaqa, mini_twin="trivia"),
    # MELD with its audio: the repository's main branch is a loading script (refused by datasets >= 4), so
    # the hub's own parquet conversion of it is read (branch refs/convert/parquet, folder default/<split>/;
    # columns text, path, audio, emotion (ClassLabel), sentiment). Seen at commit 5720737 (2026-03).
    "meld": HubSpec("ajyy/MELD_audio", None, "test", "classification", False, "MELD",
                    ("neutral", "joy", "sadness", "anger", "fear", "disgust", "surprise"), _meld,
                    instruction="Which emotion does the speaker express?", revision="refs/convert/parquet",
                    data_dir="default", audio_column="audio"),
    # MUStARD's 690 utterances with audio, as Dynamic-SUPERB's parquet (data/test-*.parquet). Seen at 0e17424.
    "mustard": HubSpec("DynamicSuperb/SarcasmDetection_Mustard", None, "test", "classification", False,
                       "MUStARD", ("sarcastic", "not sarcastic"), _mustard,
                       instruction="Is the speaker being sarcastic?", audio_column="audio"),
}


def hub_task_names() -> list[str]:
    return list(HUB_TASKS)


def _offline_reason() -> str | None:
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}:
            return f"{var}={os.environ[var]} (hub access disabled)"
    return None


def hub_unavailable_reason(name: str) -> str | None:
    """Why `name` cannot be read from the hub here, without downloading anything (None: try it)."""
    spec = HUB_TASKS[name]
    reason = _offline_reason()
    if reason:
        twin = f", or use its mini twin {spec.mini_twin!r}" if spec.mini_twin else ""
        return f"{name} ({spec.dataset}): {reason}; run with hub access{twin}"
    if not _has_datasets():
        return f"{name} ({spec.dataset}): the 'datasets' library is not installed (pip install -e '.[hub]')"
    return None


def _has_datasets() -> bool:
    if "datasets" in sys.modules:          # imported already (or blocked with None)
        return sys.modules["datasets"] is not None
    return importlib.util.find_spec("datasets") is not None


def load_hub_task(name: str, n: int | None = None, revision: str | None = None, *,
                  local: str | Path | None = None) -> Task:
    """Real dataset `name` as a Task (label-balanced first n items if n is given).

    ``local``: a folder laid out like the hub repository, read by the same `load_dataset` call (no network).
    Raises HubUnavailable when the hub cannot be used, KeyError for an unknown name.
    """
    if name not in HUB_TASKS:
        raise KeyError(f"unknown hub task {name!r}; known: {', '.join(HUB_TASKS)}")
    spec = HUB_TASKS[name]
    revision = revision or spec.revision
    if local is None:
        reason = hub_unavailable_reason(name)
        if reason:
            raise HubUnavailable(reason)
    try:
        import datasets  # heavy and optional: imported only here
    except ImportError as e:
        raise HubUnavailable(f"{name} ({spec.dataset}): the 'datasets' library is not installed ({e})") from e
    where = str(local) if local is not None else spec.dataset
    options = {"data_dir": spec.data_dir} if spec.data_dir else {}
    try:
        if local is not None:   # a local copy: its Arrow cache goes to the suite's cache, not ~/.cache/huggingface
            from harness.cache import cache_dir

            ds = datasets.load_dataset(where, spec.config, split=spec.split, cache_dir=str(cache_dir("hub-datasets")),
                                       **options)
        else:
            ds = datasets.load_dataset(where, spec.config, split=spec.split, revision=revision, **options)
    except Exception as e:  # network, auth, missing revision, script datasets refused ...
        raise HubUnavailable(f"{name} ({where}): {'loading' if local is not None else 'download'} failed: "
                             f"{type(e).__name__}: {e}") from e
    if spec.audio_column:
        if spec.audio_column not in ds.column_names:
            raise HubUnavailable(f"{name} ({where}): no {spec.audio_column!r} column, so no recordings "
                                 f"(columns: {ds.column_names})")
        ds = ds.cast_column(spec.audio_column, datasets.Audio(decode=False))  # bytes; soundfile decodes

    features = getattr(ds, "features", None)
    items = []
    for i, row in enumerate(ds):
        mapped = spec.mapper(row, spec, features)
        if mapped is None or not (mapped[0] or spec.audio_column):   # a recording may stand without text
            continue
        text, label, options, aliases = mapped
        item = Item(id=f"{name}-{i:05d}", task=name, text=text, label=label, options=options, aliases=aliases)
        if spec.audio_column:
            item = replace(item, audio=_stored_recording(row[spec.audio_column], item.id, where))
        items.append(item)
    if not items:
        raise HubUnavailable(f"{name} ({where}): no usable rows (unexpected fields: {list(features or [])})")

    instruction = spec.instruction or read_meta(DEFAULT_ROOT / f"{spec.mini_twin}.toml")["instruction"]
    source = f"local:{Path(where).resolve()}" if local is not None else \
        f"hub:{spec.dataset}@{_resolved_commit(spec.dataset, revision) or revision or 'main'}"
    task = Task(
        name=name,
        kind=spec.kind,
        text_sufficient=spec.text_sufficient,
        instruction=instruction,
        labels=spec.labels,
        items=tuple(items),
        train=(),
        source=source,
        paper_task=spec.paper_task,
    )
    if n is not None:
        task = replace(task, items=task.subset(n))
    return task


def _resolved_commit(repo: str, revision: str | None) -> str | None:
    """The commit the revision pointed to when `datasets` downloaded it (from the local hub cache's refs; no
    network call). Recorded in Task.source so a run says exactly which data it read."""
    try:
        from huggingface_hub.constants import HF_HUB_CACHE

        ref = Path(HF_HUB_CACHE) / f"datasets--{repo.replace('/', '--')}" / "refs" / (revision or "main")
        return ref.read_text().strip() if ref.is_file() else None
    except Exception:  # informational only: the data itself loaded
        return None


def _stored_recording(cell, item_id: str, where: str) -> str:
    """Write the row's encoded audio once to the cache, named by its content hash; return the file's path."""
    from harness.cache import atomic_write_bytes, cache_dir

    data = cell.get("bytes") if isinstance(cell, dict) else None
    if not data and isinstance(cell, dict) and cell.get("path") and Path(cell["path"]).is_file():
        data = Path(cell["path"]).read_bytes()
    if not data:
        raise HubUnavailable(f"{where}: item {item_id}: the audio cell has no bytes ({type(cell).__name__})")
    digest = hashlib.sha256(data).hexdigest()
    suffix = Path((cell.get("path") or "")).suffix.lower() or ".wav"
    path = cache_dir("recordings") / digest[:2] / f"{digest}{suffix}"
    if not path.exists():
        atomic_write_bytes(path, data)
    return str(path)
