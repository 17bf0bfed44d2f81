"""Registry: every entry loads and validates; bad entries fail with a message that says what is wrong."""
from pathlib import Path

import pytest

from harness.availability import why_unavailable
from harness.specs import SpecError, get_spec, load_specs, markdown_table, models_table, parse_spec
from harness.systems.matched import matched_backbone
from harness.systems.ultravox import TrustRemoteCodeRequired

GOOD = {"id": "x", "family": "qwen2_audio", "loader": "hf_native", "hf_class": "Qwen2AudioForConditionalGeneration",
        "repo": "Qwen/Qwen2-Audio-7B-Instruct", "revision": "abc123",
        "backbone": {"repo": "Qwen/Qwen2-7B-Instruct", "revision": "def456"}}
PAPER = {"ultravox-v0_6-8b", "qwen2-audio-7b-instruct", "phi-4-multimodal-instruct", "gemini-2_0-flash"}
SUCCESSORS = {"ultravox-v0_5-1b", "ultravox-v0_5-8b", "voxtral-mini-3b", "granite-speech-3_3-2b",
              "qwen2_5-omni-3b", "qwen2_5-omni-7b"}


def test_registry_has_every_required_model():
    specs = load_specs()
    assert PAPER | SUCCESSORS <= set(specs)
    assert {s.id for s in specs.values() if s.paper} == PAPER


@pytest.mark.parametrize("spec", load_specs().values(), ids=lambda s: s.id)
def test_matched_cascade_names_the_declared_backbone(spec):
    if not spec.has_cascade:
        with pytest.raises(ValueError, match="no matched cascade"):
            matched_backbone(spec)
        return
    assert matched_backbone(spec) == (spec.backbone.repo, spec.backbone.revision)
    assert spec.revision and (spec.revision_pinned or spec.revision_note)


def _bad(**change):
    data = {**GOOD, **change}
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.parametrize("data, message", [
    (_bad(loader="magic"), "unknown loader 'magic'"),
    (_bad(family="magic"), "unknown family 'magic'; known families: ultravox, qwen2_audio"),
    (_bad(revision=None), "missing revision"),
    (_bad(revision="main"), "not a pin"),
    (_bad(revision="main", revision_pinned=False), "needs a revision_note"),
    (_bad(backbone={"repo": "meta-llama/Llama-3.1-8B-Instruct", "revision": "x"}), "backbone mismatch"),
    (_bad(backbone=None), r"missing \[backbone\]"),
    (_bad(backbone={"repo": "Qwen/Qwen2-7B-Instruct"}), r"missing \[backbone\] revision"),
    (_bad(hf_class=None), "needs hf_class"),
    (_bad(dtype="int3"), "dtype"),
    (_bad(colour="red"), "unknown field"),
    (_bad(id=None), "missing required field 'id'"),
    (_bad(gpu_memory_gb="zero"), "field 'gpu_memory_gb' must be a number of GiB in \\[0, 10000\\), got 'zero'"),
    (_bad(gpu_memory_gb=-4), "gpu_memory_gb' must be a number"),
    (_bad(gpu_memory_gb=True), "gpu_memory_gb' must be a number"),
    (_bad(revision_pinned="no"), "field 'revision_pinned' must be true/false, got 'no' \\(str\\)"),
    (_bad(trust_remote_code=1), "field 'trust_remote_code' must be true/false"),
    (_bad(revision=123), "field 'revision' must be a string, got 123"),
    (_bad(backbone={"repo": "Qwen/Qwen2-7B-Instruct", "revision": 5}), "field 'backbone.revision' must be a string"),
    (_bad(backbone={"repo": "Qwen/Qwen2-7B-Instruct", "revision": "x", "rev": "y"}), r"\[backbone\]: unknown field"),
])
def test_validation_errors(data, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(data)


def test_a_bad_type_in_a_registry_file_names_the_file_at_load(tmp_path: Path):
    text = Path(load_specs()["ref-cascade"].path).read_text()
    assert "\ngpu_memory_gb = 0\n" in text
    (tmp_path / "ref-cascade.toml").write_text(text.replace("\ngpu_memory_gb = 0\n", '\ngpu_memory_gb = "zero"\n'))
    with pytest.raises(SpecError, match="ref-cascade.toml: field 'gpu_memory_gb' must be a number"):
        load_specs(tmp_path)


def test_unpinned_revision_is_allowed_with_a_warning():
    spec = parse_spec(_bad(revision="main", revision_pinned=False, revision_note="not found"))
    assert "not pinned" in spec.warnings[0]


def test_file_name_must_match_id_and_duplicates_fail(tmp_path: Path):
    (tmp_path / "other.toml").write_text('id = "x"\nfamily = "f"\nloader = "api"\nrepo = "m"\napi_key_env = "K"\n')
    with pytest.raises(SpecError, match="file name must be the id"):
        load_specs(tmp_path)


def test_every_registry_loader_kind_has_a_loader():
    from harness.specs import LOADERS
    from harness.systems.load import LOADERS as LOADER_FUNCTIONS

    assert set(LOADER_FUNCTIONS) == set(LOADERS)


def test_unknown_id_lists_known_ids():
    with pytest.raises(KeyError, match="qwen2-audio-7b-instruct"):
        get_spec("nope")


def test_availability_reasons():
    specs = load_specs()
    qwen, uv, gem = specs["qwen2-audio-7b-instruct"], specs["ultravox-v0_6-8b"], specs["gemini-2_0-flash"]
    assert "no CUDA GPU" in why_unavailable(qwen, gpu_gb=None)
    assert "hub" in why_unavailable(qwen, gpu_gb=80.0, hub=False)
    assert "GiB is free" in why_unavailable(qwen, gpu_gb=4.0, hub=True)
    assert why_unavailable(qwen, gpu_gb=80.0, hub=True) is None
    assert why_unavailable(uv, gpu_gb=80.0, hub=True) is None          # Ultravox runs our own code: no opt-in
    assert "no CUDA GPU" in why_unavailable(uv, gpu_gb=None)
    assert "GEMINI_API_KEY" in why_unavailable(gem, env={})


def test_a_remote_code_loader_refuses_without_opt_in(monkeypatch):
    """No loader runs hub code today; one that does is refused unless the user opts in."""
    from harness import availability
    from harness.systems.load import load_speech_llm

    spec = load_specs()["ultravox-v0_6-8b"]
    monkeypatch.setattr(availability, "REMOTE_CODE_LOADERS", ("ultravox",))
    with pytest.raises(TrustRemoteCodeRequired, match="fixtures/models/ultravox-v0_6-8b.toml"):
        load_speech_llm(spec)
    assert "--trust-remote-code" in why_unavailable(spec, gpu_gb=80.0, hub=True)
    assert why_unavailable(spec, gpu_gb=80.0, hub=True, trust_remote_code=True) is None


def test_models_table_and_markdown():
    specs = load_specs()
    rows = models_table(specs, gpu_gb=None, hub=False, env={})
    assert {r["id"] for r in rows} == set(specs)
    for r in rows:   # without GPU/hub/keys only the reference models (packaged weights, CPU) can run
        assert r["runnable"] == specs[r["id"]].offline and bool(r["why_not"]) != r["runnable"]
    md = markdown_table(specs, gpu_gb=None, hub=False, env={})
    assert md.count("\n") == len(specs) + 1 and "`qwen2-audio-7b-instruct`" in md
