"""Trivia pairs read at run time from the `chatterbot-corpus` package (not copied into the repo).

The corpus is hand-typed web trivia: curly quotes, dotted abbreviations, digits, a few malformed
entries and a few wrong answers. We keep only pairs whose question reads cleanly aloud and whose
answer is short; fixtures/tasks/trivia.toml lists exclusions, corrections and extra aliases.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from pathlib import Path

from .schema import Record, tts_problems
from .types import normalize_answer

PACKAGE = "chatterbot_corpus"
PIP_NAME = "chatterbot-corpus"


class CorpusUnavailable(RuntimeError):
    """The trivia corpus package (or its YAML reader) is not installed."""


def corpus_file(relpath: str) -> Path:
    """Path of a data file inside the installed package, without importing it (it has no API we need)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CorpusUnavailable(
            f"the trivia task reads its questions from the {PIP_NAME!r} package, which is not installed: "
            f"pip install {PIP_NAME}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / relpath
    if not path.is_file():
        raise CorpusUnavailable(f"{PIP_NAME} is installed but has no {relpath} (looked at {path})")
    return path


def _spoken(s: str) -> str:
    """Drop quotation marks but keep apostrophes inside words; tidy the spacing left behind."""
    s = s.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    s = re.sub(r"(?<=[A-Za-z])'(?=[A-Za-z])", "\x00", s)
    s = s.replace('"', " ").replace("'", " ").replace("\x00", "'")
    s = " ".join(s.split())
    s = re.sub(r"\s+([?,.!;:])", r"\1", s)
    return re.sub(r"(?<![A-Z])[.,]\?", "?", s)  # 'Ishmael.?' -> 'Ishmael?' but keep 'U.S.?' (rejected later)


_SMALL = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()


def _words(n: int) -> str:
    if n < 20:
        return _SMALL[n]
    tens, unit = divmod(n, 10)
    return _TENS[tens - 2] + ("" if unit == 0 else "-" + _SMALL[unit])


def number_aliases(answer: str) -> list[str]:
    """Digits <-> words for small numbers, words for years, so "12" and "twelve" both count."""
    a = normalize_answer(answer)
    if a.isdigit():
        n = int(a)
        if n < 100:
            return [_words(n)]
        if 1000 <= n < 2100 and n % 100 != 0:
            hi, lo = divmod(n, 100)
            return [f"{_words(hi)} {_words(lo) if lo >= 10 else 'oh ' + _words(lo)}"]
        return []
    lookup = {normalize_answer(_words(i)): str(i) for i in range(100)}
    return [lookup[a]] if a in lookup else []


def trivia_records(task: str, cfg: dict) -> tuple[list[Record], list[str]]:
    """Usable corpus pairs as schema records (id, text, label, aliases).

    Also returns the `exclude` entries that matched nothing: stale curation, which the tests flag
    (a corpus upgrade should not make the task unloadable).
    """
    try:
        import yaml
    except ImportError as e:  # chatterbot-corpus depends on PyYAML, so this means a broken install
        raise CorpusUnavailable(f"PyYAML is needed to read {PIP_NAME}: pip install pyyaml ({e})") from e
    path = corpus_file(cfg["file"])
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    max_words = int(cfg.get("max_answer_words", 5))
    exclude = {normalize_answer(_spoken(q)) for q in cfg.get("exclude", [])}
    corrections = {normalize_answer(k): v for k, v in cfg.get("corrections", {}).items()}
    extra = {normalize_answer(k): list(v) for k, v in cfg.get("aliases", {}).items()}
    records: list[Record] = []
    seen: set[str] = set()
    used_exclude: set[str] = set()
    for i, pair in enumerate(data.get("conversations", [])):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, (str, int)) for x in pair)):
            continue  # malformed entry in the corpus
        question = _spoken(str(pair[0]))
        answer = _spoken(str(pair[1])).rstrip(".").strip()
        nq = normalize_answer(question)
        if nq in exclude:
            used_exclude.add(nq)
            continue
        if (
            nq in seen
            or not question.endswith("?")
            or len(question.split()) < 4
            or tts_problems(question, allow_digits=False)
            or not answer
            or len(answer.split()) > max_words
            or ":" in answer
        ):
            continue
        seen.add(nq)
        aliases: list[str] = []
        fixed = corrections.get(normalize_answer(answer))
        if fixed:
            aliases.append(answer)
            answer = fixed
        for a in [*extra.get(normalize_answer(answer), []), *number_aliases(answer)]:
            if normalize_answer(a) not in {normalize_answer(x) for x in [answer, *aliases]}:
                aliases.append(a)
        rid = f"{task}-" + hashlib.sha256(question.encode("utf-8")).hexdigest()[:10]
        records.append(Record(f"{path}: entry {i + 1}", {"id": rid, "text": question, "label": answer, "aliases": aliases}))
    unused = [q for q in cfg.get("exclude", []) if normalize_answer(_spoken(q)) not in used_exclude]
    return records, unused
