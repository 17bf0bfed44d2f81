"""Where the repository's own files are: the one module that knows the layout of ``fixtures/``.

Why one owner: the path was computed from ``__file__`` in many modules, each counting its own ``parents[k]``;
moving a module then silently pointed it elsewhere. Everything here is a plain ``Path``, nothing is created.
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent          # the repository (a source checkout or editable install)
FIXTURES = ROOT / "fixtures"

MODELS = FIXTURES / "models"                           # the registry: one <id>.toml per model
TASKS = FIXTURES / "tasks"                             # the mini twins: <name>.toml + .jsonl, train/
CLAIMS = FIXTURES / "claims"                           # expectations and thresholds per model
BASELINES = FIXTURES / "baselines"                     # <model>/<revision>.json run records
HUB_RECORDINGS = FIXTURES / "hub"                      # recorded hub answers for the release watcher
HUB_DATASETS = FIXTURES / "hub-datasets"               # local copies of the paper's datasets (tests)
USER_TASKS = FIXTURES / "user-tasks"                   # example task folders of one's own
REFERENCE = FIXTURES / "reference"                     # trained reference weights: <model id>/
BACKBONE_ADAPTER = REFERENCE / "backbone"              # the offline backbone's LoRA adapter + manifest
PARITY = FIXTURES / "parity"                           # outputs of upstream code, for parity tests
ULTRAVOX_TINY = PARITY / "ultravox-tiny"               # the committed tiny Ultravox checkpoint
NATIVE_PARITY = PARITY / "native"                      # tiny native-class parity outputs


def reference_weights(model_id: str) -> Path:
    """The folder of a reference model's trained weights (``fixtures/reference/<id>``)."""
    return REFERENCE / model_id
