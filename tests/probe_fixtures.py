"""Fixtures shared by the probe tests (lens, implicit cascade, LEACE): imported by name into each module."""
import pytest

from harness.tasks import load_task
from tests import tiny_models


@pytest.fixture(scope="module")
def task():
    return load_task("sentiment")


@pytest.fixture(scope="module", params=tiny_models.FAMILIES)
def system(request):
    from tests.test_lens import tiny_system

    return tiny_system(request.param)
