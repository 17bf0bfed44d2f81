"""The implicit cascade: the lens reading at one layer, answered by the backbone through the runner."""
import json

import pytest

from harness.audio import Condition
from harness.probes import implicit, lens
from harness.runner import Runner
from harness.systems.cascade import Cascade
from tests.test_lens import synthetic_clip


class SyntheticRunner(Runner):
    def clean_audio(self, item):
        return synthetic_clip(item)


from tests.probe_fixtures import system, task  # noqa: E402,F401  (shared fixtures)


def test_lens_text_collapses_repeats_and_drops_specials(system):
    tok = system.backbone.tokenizer
    movie, good = (tok(w, add_special_tokens=False)["input_ids"] for w in (" movie", " good"))
    ids = [system.audio_token_id, *movie, *movie, tok.eos_token_id, *good, *good, *movie]
    assert lens.lens_text(system, ids) == tok.decode(movie + good + movie).strip() == "movie good movie"


def test_implicit_cascade_through_the_runner(system, task):
    items = list(task.items[:3])
    cascade = Cascade(None, system.backbone, oracle=True)
    first = implicit.implicit_cascade_agreement(SyntheticRunner(disk_cache=False, progress=False), system,
                                                cascade, task, items, layer=1, n_resamples=200)
    second = implicit.implicit_cascade_agreement(SyntheticRunner(disk_cache=False, progress=False), system,
                                                 cascade, task, items, layer=1, n_resamples=200)
    d = first.to_dict()
    assert json.dumps(d, sort_keys=True) == json.dumps(second.to_dict(), sort_keys=True)   # NaN κ compare too
    assert d["n"] == 3 and d["layer"] == 1 and set(d["accuracy"]) == {"implicit", "speech", "cascade"}
    ic = implicit.ImplicitCascade(system, 1)
    for it in items:   # the transcript it answers from is the lens reading at that layer
        audio = synthetic_clip(it)
        expected = lens.lens_text(system, lens.top1_tokens(system, task, it, audio, [1])[0])
        assert ic.transcript(task, it, audio) == expected == d["transcripts"][it.id]


def test_fingerprint_names_the_layer_and_differs_from_the_speech_llm(system, task):
    runner, item = Runner(disk_cache=False), task.items[0]
    keys = {runner.key(s, task, item, Condition()) for s in
            (system, implicit.ImplicitCascade(system, 1), implicit.ImplicitCascade(system, 2))}
    assert len(keys) == 3
    with pytest.raises(ValueError, match="out of range"):
        implicit.ImplicitCascade(system, len(system.decoder_layers) + 1)
    with pytest.raises(ValueError, match=repr(item.id)):
        implicit.ImplicitCascade(system, 1).answer(task, item, None)
