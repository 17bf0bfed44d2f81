"""The layering of harness (scripts/import_graph.py): no import cycle, every arrow points down the layers, and the
suite never imports the reference trainer. Lazy imports inside functions count too."""
import importlib.util

from harness import paths

_spec = importlib.util.spec_from_file_location("import_graph", paths.ROOT / "scripts" / "import_graph.py")
graph = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(graph)


def test_every_module_has_a_layer_and_no_import_cycle():
    edges = graph.graph()
    assert all(graph.layer(m) >= 0 for m in edges)
    assert graph.cycles(edges) == []


def test_imports_point_down_the_layers_only():
    assert graph.upward(graph.graph()) == []


def test_the_suite_never_imports_the_reference_trainer():
    assert graph.suite_into_tool() == []


def test_the_check_sees_an_upward_and_a_circular_import():
    edges = {"harness.audio": {"harness.systems.load"}, "harness.systems.load": {"harness.audio"}}
    assert graph.upward(edges) == [("harness.audio", "harness.systems.load")]
    assert graph.cycles(edges) == [["harness.audio", "harness.systems.load"]]
