"""The reference models' repeat bar is measured beside the matched cascade asked the same (its ceiling)."""
from __future__ import annotations

import pytest

from harness.asr import load_asr
from harness.lm import load_backbone
from harness.reference import data as D
from harness.reference.evaluate import repeat_wer
from harness.systems.cascade import Cascade


@pytest.mark.slow
def test_the_matched_cascade_repeats_short_held_out_statements_from_its_transcript():
    _, held, _ = D.examples(D.SEED)
    short = [ex for ex in held if len(ex.transcript.split()) <= 8 and not ex.transcript.endswith("?")][:2]
    assert len(short) == 2, "the held-out split lost its short sentences"
    clips = D.synthesize(short, progress=False)
    cascade = Cascade(load_asr(), load_backbone())
    out = repeat_wer(cascade, clips)
    assert out["n"] == 2 and len(out["examples"]) == 2
    # reads its transcript back (the tuned backbone may drop a trailing phrase: "Our neighbor grows pumpkins")
    assert out["repeat_wer"] < 0.5, out["examples"]
    assert repeat_wer(cascade, clips) == out                 # greedy: a rerun is identical
