"""The paper's real datasets behind the same Task interface, fetched from the Hugging Face hub.

Only used when the hub is reachable: offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE), without the
`datasets` library, or on any download failure, `load_hub_task` raises HubUnavailable with the reason,
so callers (tests) can skip with that message instead of failing.

Text-sufficient datasets reuse the instruction of their mini twin so hub and mini results are asked
the same question. MELD and MUStARD are real speech: for now the loader yields their transcripts and
labels only, with `Item.speech` empty; their audio is the dataset's own (wired up by harness.audio in
a later step, keyed by the item id, which is the dataset row index).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace

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
    # Field names differ between hub copies of MUStARD; take the first that is present.
    text = next((row[k] for k in ("utterance", "text", "transcription", "sentence") if row.get(k)), None)
    raw = next((row[k] for k in ("sarcasm", "label", "answer") if k in row), None)
    if isinstance(raw, int) and features is not None and hasattr(features.get("label"), "int2str"):
        raw = features["label"].int2str(raw)
    v = str(raw).strip().lower()
    label = "sarcastic" if v in _TRUE else "not sarcastic" if v in _FALSE else None
    return (str(text).strip(), label, spec.labels, ()) if text and label else None


HUB_TASKS: dict[str, HubSpec] = {
    "ag_news": HubSpec("fancyzhx/ag_news", None, "test", "classification", True, "AG News",
                       ("world", "sports", "business", "sci-tech"), _ag_news, mini_twin="topic"),
    "sst2": HubSpec("stanfordnlp/sst2", None, "validation", "classification", True, "SST-2",
                    ("negative", "positive"), _sst2, mini_twin="sentiment"),
    "csqa": HubSpec("tau/commonsense_qa", None, "validation", "multiple_choice", True, "CSQA",
                    (), _csqa, mini_twin="commonsense"),
    "triviaqa": HubSpec("mandarjoshi/trivia_qa", "rc.nocontext", "validation", "open_qa", True, "TriviaQA",
                        (), _triviaqa, mini_twin="trivia"),
    "meld": HubSpec("ajyy/MELD_audio", "MELD_Audio", "test", "classification", False, "MELD/MUStARD",
                    ("neutral", "joy", "sadness", "anger", "fear", "disgust", "surprise"), _meld,
                    instruction="Which emotion does the speaker express?"),
    "mustard": HubSpec("DynamicSuperb/SarcasmDetection_Mustard", None, "test", "classification", False,
                       "MELD/MUStARD", ("sarcastic", "not sarcastic"), _mustard,
                       instruction="Is the speaker being sarcastic?"),
}


def hub_task_names() -> list[str]:
    return list(HUB_TASKS)


def _offline_reason() -> str | None:
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}:
            return f"{var}={os.environ[var]} (hub access disabled)"
    return None


def load_hub_task(name: str, n: int | None = None, revision: str | None = None) -> Task:
    """Real dataset `name` as a Task (label-balanced first n items if n is given).

    Raises HubUnavailable when the hub cannot be used, KeyError for an unknown name.
    """
    if name not in HUB_TASKS:
        raise KeyError(f"unknown hub task {name!r}; known: {', '.join(HUB_TASKS)}")
    spec = HUB_TASKS[name]
    reason = _offline_reason()
    if reason:
        raise HubUnavailable(f"{name} ({spec.dataset}): {reason}")
    try:
        import datasets  # heavy and optional: imported only here
    except ImportError as e:
        raise HubUnavailable(f"{name} ({spec.dataset}): the 'datasets' library is not installed ({e})") from e
    try:
        ds = datasets.load_dataset(spec.dataset, spec.config, split=spec.split, revision=revision)
    except Exception as e:  # network, auth, missing revision, script datasets refused ...
        raise HubUnavailable(f"{name} ({spec.dataset}): download failed: {type(e).__name__}: {e}") from e

    features = getattr(ds, "features", None)
    items = []
    for i, row in enumerate(ds):
        mapped = spec.mapper(row, spec, features)
        if mapped is None or not mapped[0]:
            continue
        text, label, options, aliases = mapped
        items.append(Item(id=f"{name}-{i:05d}", task=name, text=text, label=label, options=options, aliases=aliases))
    if not items:
        raise HubUnavailable(f"{name} ({spec.dataset}): no usable rows (unexpected fields: {list(features or [])})")

    instruction = spec.instruction or read_meta(DEFAULT_ROOT / f"{spec.mini_twin}.toml")["instruction"]
    task = Task(
        name=name,
        kind=spec.kind,
        text_sufficient=spec.text_sufficient,
        instruction=instruction,
        labels=spec.labels,
        items=tuple(items),
        train=(),
        source=f"hub:{spec.dataset}" + (f"@{revision}" if revision else ""),
        paper_task=spec.paper_task,
    )
    if n is not None:
        task = replace(task, items=task.subset(n))
    return task
