"""The README's registry table is generated from fixtures/models, and names each matched backbone."""
import re
from pathlib import Path

from harness.specs import load_specs, registry_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_registry_table_matches_the_registry():
    text = README.read_text()
    block = re.search(r"<!-- registry:start -->\n(.*?)\n<!-- registry:end -->", text, re.S)
    assert block, "README.md lost its registry markers"
    assert block.group(1).strip() == registry_markdown(load_specs()), \
        "README registry table is stale: paste `python -m harness models --format readme`"


def test_readme_names_each_matched_backbone():
    text = README.read_text()
    for spec in load_specs().values():
        if spec.has_cascade:
            assert f"{spec.id}` | {spec.family}" in text and spec.backbone.repo in text
