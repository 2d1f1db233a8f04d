"""Imports point one way (issue 24): no module import cycle, counting imports inside
functions (not those under `if TYPE_CHECKING:`); the layers core <- data <- pipelines <- cli /
demo are never crossed upwards; and the core never imports a front end (labeling, cli, demo)
or the pipelines. Read from the source with `ast`, by installed names (`pipelines/` is
`captioner.pipelines`, `demo/` is `captioner.demo`)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"captioner": "captioner", "captioner.pipelines": "pipelines", "captioner.demo": "demo"}
FRONT_ENDS = ("captioner.labeling", "captioner.cli", "captioner.demo", "captioner.pipelines")
# lowest first; a module may import its own layer and those below it. Everything else under
# `captioner` (its top-level modules, metrics, models, labeling) is the core, layer 0.
LAYERS = {"captioner.data": 1, "captioner.pipelines": 2, "captioner.cli": 3, "captioner.demo": 3}


def modules() -> dict[str, Path]:
    found = {}
    for name, folder in PACKAGES.items():
        for f in (ROOT / folder).rglob("*.py"):
            parts = list(f.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([name, *parts])] = f
    return found


def _runtime_nodes(tree: ast.AST):
    """Every node except those under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def import_graph() -> dict[str, set[str]]:
    mods = modules()

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {owner(a.name) for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = here
                    for _ in range(node.level - 1):
                        pkg = pkg.rpartition(".")[0]
                    base = f"{pkg}.{base}" if base else pkg
                for a in node.names:  # `from pkg import module` names the module itself
                    targets.add(
                        owner(f"{base}.{a.name}") if f"{base}.{a.name}" in mods else owner(base)
                    )
        graph[name] = {t for t in targets if t and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle():
    found = [sorted(c) for c in cycles(import_graph())]
    assert not found, f"import cycles: {found}"


def layer(module: str) -> tuple[int, str]:
    """(rank, name) of the layer `module` belongs to: core 0, data 1, pipelines 2, cli and
    demo 3."""
    for package, rank in LAYERS.items():
        if module == package or module.startswith(package + "."):
            return rank, package.rpartition(".")[2]
    return 0, "core"


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a higher layer, as "importer (layer) -> imported (layer)". cli may
    import demo (`captioner demo` launches it); demo never imports cli. `python -m` entry
    points (`__main__` modules) are the top of everything and excepted."""
    bad = []
    for module, targets in sorted(graph.items()):
        if module.rpartition(".")[2] == "__main__":
            continue
        (rank, name) = layer(module)
        for target in sorted(targets):
            t_rank, t_name = layer(target)
            if t_rank > rank or (name == "demo" and t_name == "cli"):
                bad.append(f"{module} ({name}) -> {target} ({t_name})")
    return bad


def test_layers_point_one_way():
    """core <- data <- pipelines <- cli / demo, counting imports inside functions."""
    bad = upward_imports(import_graph())
    assert not bad, "imports of a higher layer:\n" + "\n".join(bad)


def test_the_layer_check_names_a_bad_import():
    graph = {"captioner.metrics": {"captioner.data.scenes"}, "captioner.demo.app": {"captioner.cli"},
             "captioner.cli.demo": {"captioner.demo.app"}, "captioner.data.__main__": {"captioner.cli"},
             "captioner.pipelines.release": {"captioner.data", "captioner.evaluation"}}  # fmt: skip
    assert upward_imports(graph) == [
        "captioner.demo.app (demo) -> captioner.cli (cli)",
        "captioner.metrics (core) -> captioner.data.scenes (data)",
    ]


def test_the_core_imports_no_front_end_and_no_pipeline():
    graph = import_graph()  # `python -m` entry points (__main__) are front ends too
    core = {m: t for m, t in graph.items() if not m.startswith(FRONT_ENDS) and "__main__" not in m}
    bad = {m: sorted(t for t in ts if t.startswith(FRONT_ENDS)) for m, ts in core.items()}
    assert not {m: ts for m, ts in bad.items() if ts}


def test_labeling_imports_no_command():
    """Labeling is a service the commands use: its command line lives in `captioner.cli`
    (`label`, `label_flags`, `label_distributed`); only its `python -m` entry point imports it."""
    graph = import_graph()
    labeling = {m: t for m, t in graph.items() if m.startswith("captioner.labeling")}
    bad = {
        m: sorted(t for t in ts if t.startswith(("captioner.cli", "captioner.demo")))
        for m, ts in labeling.items()
        if "__main__" not in m
    }
    assert not {m: ts for m, ts in bad.items() if ts}
