"""Training audio for the reference speech-LLMs' projector: TTS of the tasks' TRAINING sentences only.

What goes in: every sentence of the ``.train`` splits of ``TRAIN_TASKS`` (topic 320, sentiment 300,
commonsense 200, speaking_rate 120 = **940 sentences**) — never an evaluation item: :func:`check_disjoint`
compares normalised text against the ``.items`` of *every* mini task (trivia included) and raises on any
overlap. A seeded share (``HELDOUT_PER_TASK`` per task, 24 in all) is kept out of training for the
periodic repeat-WER check; the remaining 916 are the fit set.

Speaking rates: the text-sufficient tasks' sentences are spoken at a seeded ``length_scale`` drawn uniformly
from ``RATE_RANGE`` (0.8–1.25; one draw per sentence, from its id, so the set is order-independent);
speaking_rate sentences keep their label's rate from the task's toml (slow 1.45, fast 0.7) — that is
where their label lives, and it is what ``ref-acoustic`` must learn to hear. Optionally
(``rate_extra``) more speaking-rate examples are made from other tasks' training sentences re-spoken at
0.7 or 1.45 (seeded), labelled by that rate; they feed only the rate objective.

Cost: piper synthesises a short sentence in ~0.1–0.5 s on a busy 2-core CPU (cold; ~0.06 s measured
unloaded), so the 940 clips take roughly 2–8 minutes once; afterwards ``harness.tts``'s disk cache serves
them in well under a minute. The window check (:func:`check_window`) fails clearly if any clip is longer
than the assembled model's audio window (10 s by default).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from tqdm.auto import tqdm

from harness import tts
from harness.audio import Audio
from harness.cache import stable_key
from harness.tasks import HUB_TASKS, Item, Task, claim_tasks, describe, load_task, mini_task_names, normalize_answer


def text_tasks() -> tuple[str, ...]:
    """The mini twins whose training sentences teach the offline backbone its tasks (``backbone.TUNE_TASKS``) and
    the reference projector its text objectives, read from the tasks' own metadata: the text-sufficient tasks with a
    closed answer that the claims use by default (``harness.tasks.claim_tasks``: no control, no open QA) and that
    have a training split. Order: that of the paper datasets they stand in for (``HUB_TASKS``, via ``mini_twin``),
    then by name — the order fixes the shuffles and the data hashes the committed manifests record.
    Today: topic, sentiment, commonsense."""
    text_sufficient, _ = claim_tasks([describe(name) for name in mini_task_names()])
    paper = [spec.mini_twin for spec in HUB_TASKS.values() if spec.mini_twin]
    rank = {name: (paper.index(name) if name in paper else len(paper), name) for name in text_sufficient}
    return tuple(sorted((name for name in text_sufficient if load_task(name).train), key=rank.__getitem__))


RATE_TASK = "speaking_rate"     # ref-acoustic's own objective: the label lives in the voice, not the words
TRAIN_TASKS = (*text_tasks(), RATE_TASK)
RATE_RANGE = (0.8, 1.25)
HELDOUT_PER_TASK = 6
SEED = 0


@dataclass(frozen=True)
class Example:
    """One training utterance: the task it belongs to, its item, the rate it is spoken at."""

    task: Task | None     # None for a scrambled sentence (repeat objective only)
    item: Item            # item.text is exactly what is said: the transcript the teacher reads
    length_scale: float
    label: str | None = None   # speaking-rate label ("slow"/"fast") when the rate carries one

    @property
    def transcript(self) -> str:
        return self.item.text

    @property
    def key(self) -> str:
        return f"{self.item.id}@{self.length_scale:.4f}"


class DisjointnessError(AssertionError):
    """A training sentence is also an evaluation item (after normalisation)."""


def _norm(text: str) -> str:
    return normalize_answer(text)


def eval_texts() -> dict[str, str]:
    """Normalised text → item id, over the evaluation items of every mini task (trivia included)."""
    out: dict[str, str] = {}
    for name in mini_task_names():
        try:
            task = load_task(name)
        except Exception as exc:  # a task whose corpus package is missing cannot leak into training either
            if name in TRAIN_TASKS:
                raise
            print(f"data: skipping {name} in the disjointness check ({exc})")
            continue
        for it in task.items:
            out[_norm(it.text)] = it.id
    return out


def check_disjoint(examples) -> int:
    """Raise :class:`DisjointnessError` if any example's text is an evaluation item's; returns how many checked."""
    evals = eval_texts()
    clashes = [(ex.item.id, evals[_norm(ex.item.text)]) for ex in examples if _norm(ex.item.text) in evals]
    if clashes:
        raise DisjointnessError(f"{len(clashes)} training sentence(s) are evaluation items: {clashes[:5]}")
    return len(examples)


def _rate(item_id: str, seed: int) -> float:
    lo, hi = RATE_RANGE
    return round(random.Random(f"{seed}-rate-{item_id}").uniform(lo, hi), 4)


def examples(seed: int = SEED, *, rate_extra: int = 0) -> tuple[list[Example], list[Example], list[Example]]:
    """(fit, heldout, rate_extra) example lists (no audio yet), seeded, checked disjoint from evaluation items."""
    fit, held = [], []
    for name in TRAIN_TASKS:
        task = load_task(name)
        exs = []
        for it in task.train:
            if name == RATE_TASK:
                exs.append(Example(task, it, float(it.speech.get("length_scale", 1.0)), it.label))
            else:
                exs.append(Example(task, it, _rate(it.id, seed)))
        random.Random(f"{seed}-heldout-{name}").shuffle(exs)
        held += exs[:HELDOUT_PER_TASK]
        fit += exs[HELDOUT_PER_TASK:]
    extra: list[Example] = []
    if rate_extra:
        rate_task = load_task(RATE_TASK)
        scales = {lab: float(rate_task.train[[it.label for it in rate_task.train].index(lab)].speech["length_scale"])
                  for lab in rate_task.labels}
        pool = [ex for ex in fit if ex.task.name != RATE_TASK]
        rng = random.Random(f"{seed}-rate-extra")
        for k, ex in enumerate(rng.sample(pool, min(rate_extra, len(pool)))):
            lab = rate_task.labels[k % len(rate_task.labels)]
            extra.append(Example(ex.task, ex.item, scales[lab], lab))
    check_disjoint(fit + held + extra)
    return fit, held, extra


def scrambled(fit: list[Example], n: int, seed: int = SEED) -> list[Example]:
    """``n`` word-salad sentences (4–12 words drawn uniformly from the fit sentences' vocabulary, seeded), each
    spoken at a seeded rate from ``RATE_RANGE``; they feed only the repeat objective.

    Why: trained on the 916 fit sentences alone, the projector memorises them — after 850 steps it repeated
    training clips at WER 0.28 but held-out sentences at 0.75 (issue 5, session 4). A sentence
    whose words are drawn at random cannot be repeated from its gist; only reading the audio helps. Drawing
    word *types* uniformly (not by frequency) spreads the training signal over the whole vocabulary.
    """
    if n < 0:
        raise ValueError(f"scrambled: n={n}; expected 0 or more sentences")
    vocab = sorted({w for ex in fit for w in (_word(t) for t in ex.transcript.split()) if w})
    if n and not vocab:
        raise ValueError("scrambled: the fit sentences have no words to draw from")
    rng = random.Random(f"{seed}-scrambled")
    out = []
    for k in range(n):
        words = [rng.choice(vocab) for _ in range(rng.randint(4, 12))]
        text = " ".join([words[0].capitalize(), *words[1:]]) + "."
        item = Item(f"scrambled-{k:05d}", "scrambled", text, "", ())
        out.append(Example(None, item, round(rng.uniform(*RATE_RANGE), 4)))
    return out


def _word(token: str) -> str:
    """A transcript token without surrounding punctuation, lower-cased; "" for tokens without letters (numbers)."""
    w = token.strip(".,;:!?\"'()[]")
    return w.lower() if any(c.isalpha() for c in w) else ""


def data_hash(*groups) -> str:
    """Stable digest of what the examples are (task, item, rate, label): goes into the manifest."""
    return stable_key([[(ex.item.task, ex.item.as_dict(), ex.length_scale, ex.label) for ex in g] for g in groups])


def audio(ex: Example) -> Audio:
    """The example's speech (``harness.tts``, cached on disk)."""
    return tts.synthesize(ex.item.text, {"length_scale": ex.length_scale}, item_id=ex.key)


def synthesize(exs, *, progress: bool = True, desc: str = "tts (train)") -> list[tuple[Example, Audio, str]]:
    """[(example, Audio, transcript)] with a progress bar; cold synthesis ~0.1–0.5 s a sentence, cached after."""
    exs = list(exs)
    return [(ex, audio(ex), ex.transcript)
            for ex in tqdm(exs, desc=desc, unit="clip", disable=not progress or len(exs) < 2)]


def check_window(clips, chunk_seconds: int) -> float:
    """Longest clip in seconds; raise ValueError naming it if it does not fit the model's audio window."""
    if not clips:
        return 0.0
    longest = max(clips, key=lambda c: len(c[1].samples))
    seconds = len(longest[1].samples) / 16_000
    if seconds > chunk_seconds:
        raise ValueError(f"training clip {longest[0].key!r} ({longest[0].item.text!r}) lasts {seconds:.2f} s, "
                         f"longer than the {chunk_seconds} s audio window; shorten the sentence, lower the rate "
                         f"range, or assemble with a larger chunk_seconds")
    return seconds
