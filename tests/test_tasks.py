"""Unit tests of harness.tasks: mini-twin fixtures (schema, balance, disjointness) and the loaders."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import tomllib
import types
from collections import Counter
from pathlib import Path

import pytest

from harness.tasks import (
    DEFAULT_ROOT,
    HUB_TASKS,
    HubUnavailable,
    Item,
    Task,
    TaskSchemaError,
    UnknownTaskError,
    load_hub_task,
    load_task,
    mini_task_names,
    normalize_answer,
    tts_problems,
)
from harness.tasks.corpus import number_aliases, trivia_records

MINI = ["topic", "sentiment", "commonsense", "trivia", "speaking_rate", "keyword_topic"]
CLASSIFICATION = ["topic", "sentiment", "speaking_rate", "keyword_topic"]
WITH_TRAIN = ["topic", "sentiment", "commonsense", "speaking_rate"]
SPEED_WORDS = {
    "quick", "quickly", "quicker", "slow", "slowly", "slower", "hurry", "hurried", "rush", "rushed",
    "fast", "faster", "wait", "waiting", "waited", "speed", "pace", "rapid", "rapidly", "swift",
    "brisk", "race", "run", "runs", "running", "late", "early", "soon", "delay", "moment", "instant",
    "minute", "minutes", "second", "seconds", "immediately", "sudden", "suddenly", "dash", "sprint",
    "crawl", "steady", "leisurely", "gradually", "zoom", "haste", "hasty", "linger", "pause",
}


@pytest.fixture(scope="module")
def tasks() -> dict[str, Task]:
    out = {}
    for name in MINI:
        try:
            out[name] = load_task(name)
        except Exception as e:  # reported by the per-task test that needs it
            out[name] = e
    return out


def _get(tasks, name) -> Task:
    t = tasks[name]
    if isinstance(t, Exception):
        raise t
    return t


# --- the shipped mini twins ------------------------------------------------------------------------


def test_mini_task_names():
    assert sorted(mini_task_names()) == sorted(MINI)


@pytest.mark.parametrize("name", MINI)
def test_mini_task_loads_with_enough_items(tasks, name):
    t = _get(tasks, name)
    assert t.name == name and t.source == "mini"
    assert len(t.items) >= 150
    assert t.paper_task in {"AG News", "SST-2", "CSQA", "TriviaQA", "MELD/MUStARD",
                            "none (control task for the collapse claim)"}
    assert t.instruction.strip()
    assert all(it.task == name and it.id.startswith(f"{name}-") for it in t.items + t.train)


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_label_balance(tasks, name):
    t = _get(tasks, name)
    for split in (t.items, t.train):
        if not split:
            continue
        counts = Counter(it.label for it in split)
        assert set(counts) == set(t.labels), counts
        assert max(counts.values()) / min(counts.values()) <= 1.1, counts
        assert all(it.options == t.labels for it in split)


def test_multiple_choice_answer_position_balanced(tasks):
    t = _get(tasks, "commonsense")
    assert t.kind == "multiple_choice" and t.chance == pytest.approx(0.2)
    for split in (t.items, t.train):
        if not split:
            continue
        pos = Counter(it.options.index(it.label) for it in split)
        assert set(pos) == {0, 1, 2, 3, 4}
        assert all(c >= 0.10 * len(split) for c in pos.values()), pos
        assert all(len(set(it.options)) == 5 for it in split)


@pytest.mark.parametrize("name", WITH_TRAIN)
def test_training_split_exists_and_is_disjoint(tasks, name):
    t = _get(tasks, name)
    assert t.train, f"fixtures/tasks/train/{name}.jsonl is missing or empty"
    assert all("-train-" in it.id for it in t.train)
    eval_texts = {normalize_answer(it.text) for it in t.items}
    assert not eval_texts & {normalize_answer(it.text) for it in t.train}


def test_ids_unique_across_tasks(tasks):
    ids = [it.id for name in MINI for it in _get(tasks, name).items + _get(tasks, name).train]
    dup = [i for i, c in Counter(ids).items() if c > 1]
    assert not dup


@pytest.mark.parametrize("name", MINI)
def test_texts_are_tts_friendly(tasks, name):
    t = _get(tasks, name)
    bad = {it.id: tts_problems(it.text) for it in t.items + t.train if tts_problems(it.text)}
    assert not bad, dict(list(bad.items())[:10])


@pytest.mark.parametrize("name", MINI)
def test_fingerprint_stable_across_loads(tasks, name):
    t = _get(tasks, name)
    assert re.fullmatch(r"[0-9a-f]{64}", t.fingerprint)
    assert load_task(name).fingerprint == t.fingerprint


# --- speaking rate: text-insufficient by construction ----------------------------------------------


def test_speaking_rate_words_carry_no_label(tasks):
    t = _get(tasks, "speaking_rate")
    assert not t.text_sufficient and t.labels == ("slow", "fast")
    assert len(t.items) >= 160
    per_text = {}
    for it in t.items:
        per_text.setdefault(it.text, []).append(it.label)
    assert all(sorted(labels) == ["fast", "slow"] for labels in per_text.values()), per_text
    for it in t.items + t.train:
        words = set(re.findall(r"[a-z']+", it.text.lower()))
        assert not words & SPEED_WORDS, (it.id, words & SPEED_WORDS)
        assert 6 <= len(it.text.split()) <= 14, it.text


def test_speaking_rate_speech_params_follow_label(tasks):
    t = _get(tasks, "speaking_rate")
    meta = tomllib.loads((DEFAULT_ROOT / "speaking_rate.toml").read_text())
    for it in t.items + t.train:
        assert dict(it.speech) == meta["speech"][it.label]
    slow = next(it for it in t.items if it.label == "slow").speech["length_scale"]
    fast = next(it for it in t.items if it.label == "fast").speech["length_scale"]
    assert slow > 1.0 > fast


def test_speaking_rate_train_has_other_sentences_once(tasks):
    t = _get(tasks, "speaking_rate")
    assert len(t.train) >= 120
    assert len({it.text for it in t.train}) == len(t.train)


def test_speaking_rate_even_subset_keeps_sentence_pairs(tasks):
    t = _get(tasks, "speaking_rate")
    sub = t.subset(20)
    per_text = Counter(it.text for it in sub)
    assert len(sub) == 20 and set(per_text.values()) == {2}


# --- trivia (open QA from chatterbot-corpus) --------------------------------------------------------


def test_trivia_items(tasks):
    t = _get(tasks, "trivia")
    assert t.kind == "open_qa" and t.labels == () and t.chance == 0.0 and t.train == ()
    assert len(t.items) >= 150
    for it in t.items:
        assert it.options == () and it.text.endswith("?")
        assert len(it.label.split()) <= 5
        assert not re.search(r"\d", it.text)


def test_trivia_ids_are_stable_hashes(tasks):
    t = _get(tasks, "trivia")
    assert all(re.fullmatch(r"trivia-[0-9a-f]{10}", it.id) for it in t.items)
    assert [it.id for it in load_task("trivia").items] == [it.id for it in t.items]


def test_trivia_curation_is_not_stale(tasks):
    t = _get(tasks, "trivia")
    cfg = tomllib.loads((DEFAULT_ROOT / "trivia.toml").read_text())["corpus"]
    _, unused = trivia_records("trivia", cfg)
    assert not unused, f"[corpus].exclude entries that match no corpus question: {unused}"
    labels = {normalize_answer(it.label) for it in t.items}
    stale = [k for k in cfg.get("aliases", {}) if normalize_answer(k) not in labels]
    assert not stale, f"[corpus.aliases] keys that are no item's label: {stale}"


def test_trivia_missing_package_names_it(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "chatterbot_corpus" else real(n, *a))
    (tmp_path / "trivia.toml").write_text((DEFAULT_ROOT / "trivia.toml").read_text())
    with pytest.raises(RuntimeError, match="pip install chatterbot-corpus"):
        load_task("trivia", root=tmp_path)


def test_number_aliases():
    assert number_aliases("12") == ["twelve"]
    assert number_aliases("Twenty-four") == ["24"]
    assert number_aliases("1989") == ["nineteen eighty-nine"]
    assert number_aliases("Paris") == []


# --- Task behaviour ---------------------------------------------------------------------------------


def _qa_task(*items: Item) -> Task:
    return Task("qa", "open_qa", True, "Answer.", (), items, (), "mini", "TriviaQA")


def test_is_correct_open_qa_normalisation():
    it = Item("qa-1", "qa", "Where is the tower?", "The Eiffel Tower", (), aliases=("Tour Eiffel",))
    t = _qa_task(it)
    assert t.is_correct(it, "eiffel tower")
    assert t.is_correct(it, "  The  EIFFEL-tower. ")
    assert t.is_correct(it, "tour eiffel!")
    assert t.is_correct(it, "I think it is the Eiffel Tower, in Paris.")  # whole-word containment
    assert not t.is_correct(it, "Eiffel")
    assert not t.is_correct(it, "")
    num = Item("qa-2", "qa", "How many?", "Seven", (), aliases=("7",))
    assert _qa_task(num).is_correct(num, "There are 7.")
    assert not _qa_task(num).is_correct(num, "77")
    acc = Item("qa-3", "qa", "Which company?", "Nestle", ())
    assert _qa_task(acc).is_correct(acc, "Nestlé")
    short = Item("qa-4", "qa", "Which letter?", "E", ())
    assert _qa_task(short).is_correct(short, "The letter E.")
    assert not _qa_task(short).is_correct(short, "Every letter")


def test_is_correct_closed_tasks_exact():
    it = Item("c-1", "c", "text", "sports", ("world", "sports"))
    t = Task("c", "classification", True, "Q?", ("world", "sports"), (it,))
    assert t.is_correct(it, "sports") and t.is_correct(it, " sports\n")
    assert not t.is_correct(it, "Sports") and not t.is_correct(it, "world")
    assert t.chance == 0.5


def test_fingerprint_changes_when_an_item_changes():
    items = tuple(Item(f"c-{i}", "c", f"text {i}", "a" if i % 2 else "b", ("a", "b")) for i in range(6))
    t = Task("c", "classification", True, "Q?", ("a", "b"), items)
    same = Task("c", "classification", True, "Q?", ("a", "b"), tuple(dataclasses.replace(x) for x in items))
    assert same.fingerprint == t.fingerprint
    changed = dataclasses.replace(items[3], text="text 3!")
    assert dataclasses.replace(t, items=items[:3] + (changed,) + items[4:]).fingerprint != t.fingerprint
    relabeled = dataclasses.replace(items[0], label="a")
    assert dataclasses.replace(t, items=(relabeled,) + items[1:]).fingerprint != t.fingerprint
    sped = dataclasses.replace(items[0], speech={"length_scale": 1.2})
    assert dataclasses.replace(t, items=(sped,) + items[1:]).fingerprint != t.fingerprint
    assert dataclasses.replace(t, instruction="Other?").fingerprint != t.fingerprint


def test_subset_balanced_deterministic_nested():
    labels = ("a", "b", "c")
    # skewed file order: all a's first
    items = tuple(Item(f"s-{i}", "s", f"t{i}", lab, labels) for i, lab in enumerate("aaaaaabbbbcccccc"))
    t = Task("s", "classification", True, "Q?", labels, items)
    sub = t.subset(9)
    assert Counter(it.label for it in sub) == {"a": 3, "b": 3, "c": 3}
    assert sub == t.subset(9)
    assert [it.id for it in sub] == sorted((it.id for it in sub), key=lambda s: int(s[2:]))  # file order
    assert set(t.subset(5)) <= set(t.subset(6)) <= set(sub)
    assert max(Counter(it.label for it in t.subset(13)).values()) - min(Counter(it.label for it in t.subset(13)).values()) <= 2
    assert t.subset(None) == items and t.subset(100) == items and t.subset(0) == ()


def test_subset_balances_mc_answer_position(tasks):
    t = _get(tasks, "commonsense")
    pos = Counter(it.options.index(it.label) for it in t.subset(25))
    assert pos == {0: 5, 1: 5, 2: 5, 3: 5, 4: 5}


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_subset_on_mini_tasks_is_balanced(tasks, name):
    t = _get(tasks, name)
    n = 10 * len(t.labels)
    assert Counter(it.label for it in t.subset(n)) == {lab: 10 for lab in t.labels}


def test_item_is_frozen_and_hashable():
    it = Item("x-1", "x", "t", "a", ["a", "b"], speech={"length_scale": 1})
    assert it.options == ("a", "b") and it.speech == {"length_scale": 1.0}
    assert hash(it) == hash(Item("x-1", "x", "t", "a", ("a", "b"), speech={"length_scale": 1.0}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        it.label = "b"  # type: ignore[misc]
    with pytest.raises(TypeError):
        it.speech["length_scale"] = 2.0  # type: ignore[index]


# --- schema errors on bad files ---------------------------------------------------------------------

CLS_TOML = 'kind = "classification"\ntext_sufficient = true\npaper_task = "SST-2"\ninstruction = "Q?"\nlabels = ["neg", "pos"]\n'
MC_TOML = 'kind = "multiple_choice"\ntext_sufficient = true\npaper_task = "CSQA"\ninstruction = "Q?"\n'


def _write(root: Path, name: str, toml: str, rows: list, train: list | None = None) -> None:
    (root / f"{name}.toml").write_text(toml)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    (root / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    if train is not None:
        (root / "train").mkdir(exist_ok=True)
        (root / "train" / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in train) + "\n")


def _good(i: int, label: str = "pos") -> dict:
    return {"id": f"toy-{i:04d}", "text": f"sentence number {i}", "label": label}


def test_good_temporary_task_loads(tmp_path):
    _write(tmp_path, "toy", CLS_TOML, [_good(1), _good(2, "neg")], [{"id": "toy-train-0001", "text": "other", "label": "neg"}])
    t = load_task("toy", root=tmp_path)
    assert len(t.items) == 2 and len(t.train) == 1 and t.items[0].options == ("neg", "pos")
    assert mini_task_names(tmp_path) == ["toy"]


@pytest.mark.parametrize(
    "bad, problem",
    [
        ({"id": "toy-0002", "text": "x y", "label": "maybe"}, "not in task labels"),
        ({"id": "toy-0002", "text": "x y"}, "missing key"),
        ({"id": "toy-0002", "text": "", "label": "pos"}, "non-empty string"),
        ({"id": "toy-0002", "text": "x y", "label": "pos", "speech": {}}, "unknown key"),
        ({"id": "other-0002", "text": "x y", "label": "pos"}, "must look like toy-NNNN"),
        ({"id": "toy-0001", "text": "x y", "label": "pos"}, "duplicate id"),
        ({"id": "toy-0002", "text": "Sentence number 1.", "label": "neg"}, "duplicate text"),
        ('{"id": "toy-0002", "text": ', "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_schema_error_names_file_and_line(tmp_path, bad, problem):
    _write(tmp_path, "toy", CLS_TOML, [_good(1), bad, _good(3)])
    with pytest.raises(TaskSchemaError) as e:
        load_task("toy", root=tmp_path)
    assert f"{tmp_path / 'toy.jsonl'}:2:" in str(e.value)
    assert problem in str(e.value)


@pytest.mark.parametrize(
    "options, label, problem",
    [
        (["a", "b", "c", "d"], "a", "exactly 5 options"),
        (["a", "b", "c", "d", "A"], "a", "not distinct"),
        (["a", "b", "c", "d", "e"], "z", "not one of the options"),
    ],
)
def test_mc_schema_errors(tmp_path, options, label, problem):
    good = {"id": "toy-0001", "text": "q one", "options": ["v", "w", "x", "y", "z"], "label": "x"}
    bad = {"id": "toy-0002", "text": "q two", "options": options, "label": label}
    _write(tmp_path, "toy", MC_TOML, [good, bad])
    with pytest.raises(TaskSchemaError, match=rf"toy\.jsonl:2: .*{problem}"):
        load_task("toy", root=tmp_path)


def test_eval_train_overlap_is_an_error(tmp_path):
    train = [{"id": "toy-train-0001", "text": "Sentence  number 2!", "label": "neg"}]
    _write(tmp_path, "toy", CLS_TOML, [_good(1), _good(2)], train)
    with pytest.raises(TaskSchemaError, match=r"toy\.jsonl:2: evaluation text also in training data .*train/toy\.jsonl:1"):
        load_task("toy", root=tmp_path)


def test_train_ids_must_be_marked(tmp_path):
    _write(tmp_path, "toy", CLS_TOML, [_good(1)], [{"id": "toy-0009", "text": "other", "label": "neg"}])
    with pytest.raises(TaskSchemaError, match=r"train/toy\.jsonl:1: id 'toy-0009' must look like toy-train-NNNN"):
        load_task("toy", root=tmp_path)


def test_text_insufficient_task_may_repeat_text_across_labels(tmp_path):
    toml = CLS_TOML.replace("text_sufficient = true", "text_sufficient = false")
    rows = [_good(1, "pos"), {**_good(2, "neg"), "text": "sentence number 1"}]
    _write(tmp_path, "toy", toml, rows)
    assert len(load_task("toy", root=tmp_path).items) == 2
    _write(tmp_path, "toy", toml, rows + [{**_good(3, "pos"), "text": "sentence number 1"}])
    with pytest.raises(TaskSchemaError, match=r"toy\.jsonl:3: duplicate text"):
        load_task("toy", root=tmp_path)


def test_bad_toml_is_reported(tmp_path):
    _write(tmp_path, "toy", 'kind = "ranking"\ntext_sufficient = true\npaper_task = "x"\ninstruction = "Q?"\n', [_good(1)])
    with pytest.raises(TaskSchemaError, match=r"toy\.toml: kind 'ranking'"):
        load_task("toy", root=tmp_path)
    _write(tmp_path, "toy", CLS_TOML + '[speech.pos]\nlength_scale = 1.2\n', [_good(1)])
    with pytest.raises(TaskSchemaError, match=r"toy\.toml: \[speech\] needs exactly one table per label"):
        load_task("toy", root=tmp_path)


def test_missing_eval_file_is_reported(tmp_path):
    (tmp_path / "toy.toml").write_text(CLS_TOML)
    with pytest.raises(TaskSchemaError, match=r"toy\.jsonl: missing"):
        load_task("toy", root=tmp_path)


def test_unknown_task_lists_known_names():
    with pytest.raises(UnknownTaskError, match=r"known: .*speaking_rate.*topic"):
        load_task("no_such_task")


# --- hub loaders ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ag_news", "sst2", "csqa", "triviaqa", "meld", "mustard"])
def test_hub_offline_raises_hub_unavailable(monkeypatch, name):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnavailable, match="HF_HUB_OFFLINE"):
        load_hub_task(name, n=10)


def test_hub_without_datasets_library(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(HubUnavailable, match="'datasets' library is not installed"):
        load_hub_task("sst2")


def test_hub_unknown_name():
    with pytest.raises(KeyError, match="known: ag_news"):
        load_hub_task("imdb")


class _FakeDataset(list):
    features = None

    @property
    def column_names(self):
        return list(self[0]) if self else []

    def cast_column(self, column, feature):
        return self


def _fake_datasets(monkeypatch, rows=None, error=None):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    calls = []

    def load_dataset(path, name=None, split=None, revision=None, **options):
        calls.append((path, name, split, revision))
        if error:
            raise error
        return _FakeDataset(rows)

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset,
                                                                       Audio=lambda decode: None))
    return calls


def test_hub_download_failure_is_hub_unavailable(monkeypatch):
    _fake_datasets(monkeypatch, error=ConnectionError("no route to host"))
    with pytest.raises(HubUnavailable, match="download failed: ConnectionError: no route to host"):
        load_hub_task("ag_news")


def test_hub_field_mapping_ag_news(monkeypatch):
    rows = [{"text": f"news {i}", "label": i % 4} for i in range(12)]
    calls = _fake_datasets(monkeypatch, rows)
    t = load_hub_task("ag_news", n=8, revision="abc123")
    assert calls == [("fancyzhx/ag_news", None, "test", "abc123")]
    assert t.source == "hub:fancyzhx/ag_news@abc123" and t.paper_task == "AG News"
    assert t.labels == load_task("topic").labels and t.instruction == load_task("topic").instruction
    assert Counter(it.label for it in t.items) == {"world": 2, "sports": 2, "business": 2, "sci-tech": 2}
    assert t.items[1].label == "sports" and t.items[1].id == "ag_news-00001"


def test_hub_field_mapping_sst2_csqa_triviaqa(monkeypatch):
    _fake_datasets(monkeypatch, [{"sentence": "dull ", "label": 0}, {"sentence": "great", "label": 1}])
    t = load_hub_task("sst2")
    assert [(it.text, it.label) for it in t.items] == [("dull", "negative"), ("great", "positive")]

    choices = {"label": list("ABCDE"), "text": ["v", "w", "x", "y", "z"]}
    _fake_datasets(monkeypatch, [{"question": "q?", "choices": choices, "answerKey": "C"}])
    t = load_hub_task("csqa")
    assert t.kind == "multiple_choice" and t.items[0].options == ("v", "w", "x", "y", "z") and t.items[0].label == "x"

    _fake_datasets(monkeypatch, [{"question": "Capital of France?", "answer": {"value": "Paris", "aliases": ["Paris", "Paree"]}}])
    t = load_hub_task("triviaqa")
    assert t.items[0].aliases == ("Paree",) and t.is_correct(t.items[0], "It's Paris.")


def test_hub_field_mapping_mustard(monkeypatch, tmp_cache):
    clip = {"bytes": (Path(__file__).parents[1] / "fixtures/user-tasks/recorded_sentiment/clips/e02.wav").read_bytes(),
            "path": "1_60.wav"}
    _fake_datasets(monkeypatch, [{"text": "Oh great.", "label": "True", "audio": clip},
                                 {"text": "Fine.", "label": "False", "audio": clip}])
    t = load_hub_task("mustard")
    assert not t.text_sufficient and [it.label for it in t.items] == ["sarcastic", "not sarcastic"]
    assert all(dict(it.speech) == {} for it in t.items)
    assert all(it.audio and Path(it.audio).read_bytes() == clip["bytes"] for it in t.items)   # its own recording


def test_hub_audio_task_without_its_audio_column_is_unavailable(monkeypatch):
    _fake_datasets(monkeypatch, [{"text": "Oh great.", "label": "True"}])
    with pytest.raises(HubUnavailable, match="no 'audio' column, so no recordings"):
        load_hub_task("mustard")


@pytest.mark.hub
@pytest.mark.parametrize("name", list(HUB_TASKS))
def test_hub_task_live(name):
    """Real download; skipped with the reason whenever the hub cannot be used."""
    try:
        t = load_hub_task(name, n=20)
    except HubUnavailable as e:
        pytest.skip(str(e))
    assert len(t.items) == 20 and t.source.startswith("hub:")
    assert all(it.label in (it.options or (it.label,)) for it in t.items)


def test_module_does_not_import_pytest():
    code = "import sys, harness.tasks, harness.tasks.hub; sys.exit('pytest' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1]).returncode == 0
