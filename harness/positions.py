"""Which word is heard at which audio position: the time base of a speech-LLM's audio embeddings and the labels
read off it.

Why its own module: the LEACE text concept (``harness.probes.leace``), the reference front end that writes the
heard tokens at their positions (``harness.systems.reference.frontends``) and the reference trainer's alignment
(``harness.reference.align``) must all agree on one rule, and they sit at three different layers (probes above
systems, the training tool above both): the rule lives below all three.

- ``seconds_per_position``: seconds of audio behind one audio embedding, from the system's family entry
  (``harness.families``);
- ``word_owners`` / ``word_labels``: per position, the ASR word (faster-whisper word timestamps) overlapping its
  span [i·s, (i+1)·s) most, and every heard word at least one position; positions overlapping no word (pauses,
  the padded tail of a window) get none;
- ``position_tokens``: per position, the backbone token to place there, in one of two ``LAYOUTS``;
- ``position_energy``: per position, the clip's RMS energy under its span (the acoustic control's labels);
- ``normalise_piece`` / ``normalise_word``: the word normalisation shared with the logit lens.
"""
from __future__ import annotations

import string
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from harness.audio import SAMPLE_RATE
from harness.families import FAMILIES

if TYPE_CHECKING:
    from harness.asr import Word
    from harness.audio import Audio


# -- words -------------------------------------------------------------------------------------------------
def stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


def normalise_piece(piece: str, stops: frozenset[str] | None = None) -> str | None:
    """A decoded token or word → its normalised form, or None when it carries no content: word-piece markers and
    surrounding punctuation stripped, lowercased; None when no letter or digit is left or it is one of ``stops``
    (default scikit-learn's English stop words; ``harness.probes.lens`` explains the rules)."""
    s = piece.strip()
    s = s.removeprefix("##").replace("▁", " ").replace("Ġ", " ").strip().lower()
    s = "".join(ch for ch in unicodedata.normalize("NFKC", s) if ch != "\ufffd")
    while s and (unicodedata.category(s[0]).startswith("P") or s[0] in string.punctuation):
        s = s[1:]
    while s and (unicodedata.category(s[-1]).startswith("P") or s[-1] in string.punctuation):
        s = s[:-1]
    if not any(ch.isalnum() for ch in s):
        return None
    if s in (stop_words() if stops is None else stops):
        return None
    return s


def normalise_word(word: str) -> str | None:
    """Lowercase, punctuation stripped at both ends; None when nothing alphanumeric is left (stop words kept)."""
    return normalise_piece(word, stops=frozenset())


# -- time ↔ audio position --------------------------------------------------------------------------------
def seconds_per_position(system) -> float:
    """Seconds of audio behind one audio embedding: the ``seconds_per_position`` of the system's family
    (``harness.families``, which says how each front end gets there) applied to its model's config."""
    family = getattr(system, "family_name", None)
    rule = FAMILIES[family].seconds_per_position if family in FAMILIES else None
    if rule is None:
        raise ValueError(f"{system.name}: seconds per audio position unknown for family {family!r} "
                         f"({type(system).__name__}); add it to the family's entry in harness/families.py")
    return rule(system.model.config)


def word_owners(words: Sequence[Word], n_positions: int, seconds: float) -> list[int]:
    """Per audio position, the index of the word (one with a normalised form) overlapping its span
    [i·s, (i+1)·s) most; -1 for none. Shared by the text concept, the reference front end and the trainer."""
    starts = np.arange(n_positions) * seconds
    owner = [-1] * n_positions
    best = np.zeros(n_positions)
    for k, w in enumerate(words):
        if normalise_word(w.text) is None:
            continue
        overlap = np.minimum(starts + seconds, w.end) - np.maximum(starts, w.start)
        for i in np.flatnonzero(overlap > best):
            owner[i], best[i] = k, overlap[i]
    for k, w in enumerate(words):
        if normalise_word(w.text) is None or k in owner:
            continue
        # Heard but won no position: zero length (Whisper's word alignment gives some, e.g. 2.84–2.84 s) or inside
        # a longer neighbour's span. It takes the position its start falls in, or the next, from a word that keeps
        # another one — a word the ASR heard is never dropped from the positions.
        for i in (int(w.start // seconds), int(w.start // seconds) + 1):
            if 0 <= i < n_positions and (owner[i] < 0 or owner.count(owner[i]) > 1):
                owner[i] = k
                break
    return owner


def word_labels(words: Sequence[Word], n_positions: int, seconds: float) -> list[str | None]:
    """Per audio position, the normalised word overlapping its span most (:func:`word_owners`); None for none."""
    return [normalise_word(words[k].text) if k >= 0 else None for k in word_owners(words, n_positions, seconds)]


def position_energy(audio: Audio, n_positions: int, seconds: float) -> np.ndarray:
    """RMS energy in dB of the clip under each position's span; NaN for positions past the clip's end."""
    x = np.asarray(audio.samples, dtype=np.float64)
    hop = seconds * SAMPLE_RATE
    out = np.full(n_positions, np.nan)
    for i in range(n_positions):
        a, b = int(round(i * hop)), int(round((i + 1) * hop))
        if a >= x.size:
            break
        out[i] = 10 * np.log10(np.mean(x[a:min(b, x.size)] ** 2) + 1e-10)
    return out


# -- tokens at positions -------------------------------------------------------------------------------------
# Target layouts. "spread": a word's tokens stretched over all the positions it spans, "." where no word is
# spoken — what the committed experiments used. "onset": each token once, from the word's first position on,
# " " on every other position. Measured 2026-11-25 by putting the *exact* targets in place of the audio
# embeddings (24 held-out sentences, frozen backbone, repeat prompt): spread → repeat WER 3.42 (it stutters
# "fire fire fire fireflies …"), onset with " " filler → 0.56, the transcript as text (the cascade) → 0.35.
LAYOUTS = ("spread", "onset")
FILLER = {"spread": ".", "onset": " "}


def position_tokens(backbone, words, n_positions: int, seconds: float,
                    layout: str = "spread") -> tuple[list[int | None], list[str | None]]:
    """Per audio position: the backbone token to place there (None: the layout's filler), and the word there."""
    if layout not in LAYOUTS:
        raise ValueError(f"alignment layout {layout!r}: expected one of {LAYOUTS}")
    owner = word_owners(words, n_positions, seconds)
    tokens: list[int | None] = [None] * n_positions
    labels: list[str | None] = [None] * n_positions
    for k, w in enumerate(words):
        span = [i for i in range(n_positions) if owner[i] == k]
        text = w.text.strip()
        if not span:
            continue
        ids = backbone.reply_ids(" " + text)
        for j, i in enumerate(span):
            labels[i] = text
            if layout == "spread":
                tokens[i] = ids[min(len(ids) - 1, j * len(ids) // len(span))]
            elif j < len(ids):      # onset; a word with more tokens than positions keeps an even subset
                tokens[i] = ids[j] if len(ids) <= len(span) else ids[j * len(ids) // len(span)]
    return tokens, labels
