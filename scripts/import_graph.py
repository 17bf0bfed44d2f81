"""The import graph of ``harness``: no cycle, and every arrow points down the layers (data flows one way).

    python scripts/import_graph.py            # prints the layers, any cycle and any upward arrow; exit 1 if any

Every ``import`` counts, at module level or inside a function (a lazy import is still a dependency). Why: the
suite's parts (audio, ASR, LM, TTS, tasks, statistics) must not reach up into systems, probes, claims or the
reference trainer, and the trainer (``harness.reference``) is a tool on top that nothing in the suite imports.
Standard library only (``ast``), so the check runs anywhere; ``tests/test_import_graph.py`` runs it.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A module may import modules of its own layer or below. The most specific prefix wins.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("parts", ("harness.paths", "harness.cache", "harness.families", "harness.audio", "harness.tts", "harness.asr",
               "harness.lm", "harness.tasks", "harness.stats", "harness.prompts", "harness.positions",
               "harness.specs", "harness.availability", "harness.compute")),
    ("systems", ("harness.systems",)),
    ("runner", ("harness.runner",)),
    ("probes", ("harness.probes",)),
    # A claim module owns its figure and curve schema, drawn with the report's shared helpers (plots, schema).
    ("report parts", ("harness.report.plots", "harness.report.schema")),
    ("claims", ("harness.claims", "harness.evidence", "harness.verdict")),
    ("apps", ("harness.report", "harness.doctor", "harness.watch", "harness.__main__", "harness.probes.__main__")),
    ("tool", ("harness.reference",)),
]
SUITE_OUTSIDE_HARNESS = ("conftest.py", "equivalence_tests")   # the suite's own pytest layer: never the trainer


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / "harness").rglob("*.py"))}


def imports_of(path: Path, name: str, known: dict[str, Path]) -> set[str]:
    """The harness modules ``path`` imports (``from pkg import mod`` resolves to the module when it is one)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:        # `import harness.x.y as z` → the longest known prefix
                target = target.rpartition(".")[0]
            if target.startswith("harness") and target != name:
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(path, name, known) for name, path in known.items()}


def layer(name: str) -> int:
    if name == "harness":                               # the empty root package
        return 0
    best = max(((len(p), i) for i, (_, prefixes) in enumerate(LAYERS) for p in prefixes
                if name == p or name.startswith(p + ".")), default=None)
    if best is None:
        raise ValueError(f"{name}: in no layer of scripts/import_graph.py's LAYERS; add it where it belongs")
    return best[1]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def upward(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((a, b) for a, targets in edges.items() for b in targets if layer(b) > layer(a))


def suite_into_tool() -> list[tuple[str, str]]:
    """Imports of the trainer (``harness.reference``) from the suite's pytest layer (conftest, equivalence tests)."""
    known = modules()
    files = [ROOT / "conftest.py", *sorted((ROOT / "equivalence_tests").rglob("*.py"))]
    return sorted((str(f.relative_to(ROOT)), t) for f in files for t in imports_of(f, "", known)
                  if t == "harness.reference" or t.startswith("harness.reference."))


def main() -> int:
    edges = graph()
    for i, (name, _) in enumerate(LAYERS):
        members = sorted(m for m in edges if layer(m) == i)
        print(f"{i} {name}: {', '.join(members)}")
    found = {"cycles": cycles(edges), "upward arrows": upward(edges), "suite → trainer": suite_into_tool()}
    for what, items in found.items():
        print(f"{what}: {items if items else 'none'}")
    print(f"{len(edges)} modules, {sum(map(len, edges.values()))} arrows")
    return 1 if any(found.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
