"""Load failures of real models come out as one error that says what to do (never a raw traceback)."""
import pytest
import torch
from huggingface_hub import errors as hub

from harness.specs import load_specs
from harness.systems.load_errors import HubUnavailable, ModelLoadError, explain, explained
from harness.systems.ultravox_weights import BackboneMismatch


@pytest.fixture
def spec():
    return load_specs()["qwen2-audio-7b-instruct"]


def _http(status: int):
    """A real response object of the HTTP library huggingface_hub uses (its errors carry one); nothing is sent."""
    import importlib

    lib = importlib.import_module(hub.Response.__module__.split(".")[0])
    return lib.Response(status, request=lib.Request("GET", "https://huggingface.co/api/models/x"))


def _raised(spec, err):
    with pytest.raises(ModelLoadError) as caught:
        with explained(spec):
            raise err
    assert caught.value.__cause__ is None and caught.value.__suppress_context__   # one error, not a chain
    return str(caught.value)


def test_gated_repo_says_accept_the_licence_and_set_a_token(spec):
    msg = _raised(spec, hub.GatedRepoError("Access to model is restricted", response=_http(403)))
    assert "licence" in msg and "HF_TOKEN" in msg and spec.repo in msg


def test_missing_revision_names_the_registry_file(spec):
    msg = _raised(spec, hub.RevisionNotFoundError("Invalid rev id: abc", response=_http(404)))
    assert f"fixtures/models/{spec.id}.toml" in msg and spec.revision in msg


def test_offline_cache_miss_says_how_to_fetch(spec, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnavailable, match="huggingface-cli download"):
        with explained(spec):
            raise hub.LocalEntryNotFoundError("Cannot find the requested files in the disk cache")


def test_out_of_gpu_memory_gives_the_estimate(spec):
    msg = _raised(spec, torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert f"~{spec.gpu_memory_gb:g} GiB" in msg


def test_code_that_does_not_run_under_this_transformers_names_the_pin(spec):
    err = AttributeError("module 'transformers.modeling_utils' has no attribute '_init_weights'")
    msg = _raised(spec, err)
    assert "transformers" in msg and ">=5.0,<5.40" in msg and "_init_weights" in msg


def test_errors_that_already_explain_themselves_pass_through(spec):
    err = BackboneMismatch("text_model_id is 'x', registry backbone 'y'")
    assert explain(spec, err) is None
    with pytest.raises(BackboneMismatch):
        with explained(spec):
            raise err


def test_a_native_model_offline_says_what_to_do(spec):
    """Through the suite's loader (the path the claims take): one HubUnavailable, not transformers' traceback."""
    from huggingface_hub import constants

    from harness.systems.load import load_speech_llm

    if not constants.HF_HUB_OFFLINE:   # the root conftest sets HF_HUB_OFFLINE=1; never download from a test
        pytest.skip("HF_HUB_OFFLINE is not set: this test would try a real download")
    with pytest.raises(HubUnavailable) as caught:
        load_speech_llm(spec, device="cpu")
    msg = str(caught.value)
    assert spec.repo in msg and spec.revision in msg and "HF_HUB_OFFLINE" in msg
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
