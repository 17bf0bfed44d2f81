"""The committed tiny Ultravox checkpoint (``fixtures/parity/ultravox-tiny``) as a registry-like spec.

Built by ``scripts/build_ultravox_parity.py`` with the upstream code; it runs everywhere on a CPU, so the doctor
and the tests load it through exactly the path a hub release takes (``ultravox.load``). It is not a registry
entry: claims never run on it.
"""
from __future__ import annotations

import json

from harness import paths
from harness.specs import Backbone, ModelSpec

TINY_ID = "ultravox-tiny"
TINY_DIR = paths.ULTRAVOX_TINY


def tiny_spec() -> ModelSpec:
    """The tiny checkpoint (``speech/``) on its backbone (``backbone/``), float32, self-cascade."""
    meta = json.loads((TINY_DIR / "expected.json").read_text())
    return ModelSpec(id=TINY_ID, family="ultravox", loader="ultravox", repo=str(TINY_DIR / "speech"),
                     revision=f"upstream:{meta['upstream_commit'][:12]}",
                     backbone=Backbone(str(TINY_DIR / "backbone"), "fixture"), asr="tiny.en", dtype="float32",
                     matched_cascade="self", notes="tiny parity checkpoint (random weights)")
