"""The offline backbone's task tune: its task set comes from the tasks' own metadata and still selects exactly the
committed adapter's training data (so `python -m harness.reference tune-backbone` rebuilds what is committed)."""
import json

from harness import paths
from harness.cache import stable_key
from harness.reference import backbone as B
from harness.reference import data as D

MANIFEST = json.loads((paths.BACKBONE_ADAPTER / "manifest.json").read_text())


def test_the_tune_set_is_read_from_the_task_metadata_and_is_the_committed_one():
    assert B.TUNE_TASKS == ("topic", "sentiment", "commonsense") == tuple(MANIFEST["tasks"])
    assert D.TRAIN_TASKS == (*B.TUNE_TASKS, D.RATE_TASK)


def test_the_tune_examples_are_the_committed_adapters_training_data():
    fit, dev = B.examples()
    assert (len(fit), len(dev)) == (MANIFEST["n_fit"], MANIFEST["n_dev"])
    assert stable_key([(t.name, it.as_dict()) for t, it in fit + dev]) == MANIFEST["training_data_sha256"]
