"""The package's layering holds: models never import the coder, the coding layer never imports the API,
the CLI or the file format, the core never imports training code, and no import cycle joins two modules.

Imports are read from the source (every ``import`` and ``from ... import`` anywhere in a module,
function-level ones included), not by importing anything.
"""

from __future__ import annotations

import ast

from tests.conftest import ROOT

PACKAGE = ROOT / "nlc"
TRAINING = ("nlc.train", "nlc.train_latent")  # the training subpackage (and its old entry point)
TOOLS = TRAINING + ("nlc.bench", "nlc.demo")  # training and benchmarking: never imported by the core
CORE = ("nlc.api", "nlc.sets", "nlc.registry", "nlc.container", "nlc.coding", "nlc.models", "nlc.metadata",
        "nlc.images", "nlc.fixed", "nlc.verification", "nlc.threads")


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(), str(path))
    return out


MODULES = _modules()


def _imports(name: str, tree: ast.Module) -> set[str]:
    """The ``nlc`` modules ``name`` imports (``from pkg import sub`` counts as the submodule only)."""
    is_package = (PACKAGE / "/".join(name.split(".")[1:]) / "__init__.py").exists() or name == "nlc"
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in MODULES}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module not in MODULES:
                continue
            subs = {f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in MODULES}
            found |= subs
            if len(subs) < len(node.names):
                found.add(module)
    return found - {name}


GRAPH = {name: _imports(name, tree) for name, tree in MODULES.items()}


def _within(name: str, prefixes: tuple[str, ...] | set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_import_graph_is_read():
    assert "nlc.coding.autoregressive" in GRAPH["nlc.api"]
    assert "nlc.fixed" in GRAPH["nlc.coding.exact_tables"]


def test_models_never_import_the_coder():
    bad = {m: d for m, d in GRAPH.items() if _within(m, ("nlc.models",)) and any(_within(x, ("nlc.coding",)) for x in d)}
    assert not bad


def test_the_coding_layer_imports_no_api_cli_or_container():
    above = ("nlc.api", "nlc.cli", "nlc.container", "nlc.sets", "nlc.bench")
    bad = {m: d for m, d in GRAPH.items() if _within(m, ("nlc.coding",)) and any(_within(x, above) for x in d)}
    assert not bad


def test_the_core_imports_no_training_or_benchmarking_code():
    bad = {m: {x for x in d if _within(x, TOOLS)} for m, d in GRAPH.items()
           if _within(m, CORE) and any(_within(x, TOOLS) for x in d)}
    assert not bad


def test_training_and_benchmarking_live_in_their_subpackages():
    assert {"nlc.train", "nlc.train.latent", "nlc.train.loop", "nlc.bench", "nlc.bench.sets"} <= set(MODULES)
    assert not {"nlc.trainloop", "nlc.bench_sets"} & set(MODULES)


def test_no_import_cycle_joins_two_modules():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not cycles


def test_no_architecture_name_decides_a_family_outside_the_registry():
    """Family checks ask the registry (``spec.family``), never compare architecture names."""
    from nlc.registry import ARCHITECTURES

    names = set(ARCHITECTURES)
    bad = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "registry.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and any(
                    isinstance(x, ast.Attribute) and x.attr == "architecture" for x in [node.left, *node.comparators]):
                consts = [c for c in ast.walk(node) if isinstance(c, ast.Constant) and c.value in names]
                if consts or any(isinstance(c, (ast.Set, ast.Tuple, ast.List, ast.Name)) for c in node.comparators):
                    bad.append(f"{path.name}:{node.lineno}")
    assert not bad


def test_a_registered_architecture_builds_and_reports_its_family():
    import torch

    import nlc
    from nlc.registry import ARCHITECTURES, CodecSpec, build_model

    nlc.register_architecture("test-linear", lambda hp: torch.nn.Linear(hp["n"], 1), "autoregressive")
    try:
        assert isinstance(build_model("test-linear", {"n": 3}), torch.nn.Linear)
        assert CodecSpec(name="x", architecture="test-linear").family == "autoregressive"
    finally:
        del ARCHITECTURES["test-linear"]
    try:
        nlc.register_architecture("test-bad", lambda hp: None, "telepathy")
    except ValueError as e:
        assert "unknown codec family 'telepathy'" in str(e)
    else:
        raise AssertionError("an unknown family was accepted")


def test_the_tests_mirror_the_package():
    """``tests/coding`` tests ``nlc/coding``, and so on; the top level tests the top-level modules."""
    folders = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and p.name not in ("golden", "__pycache__")}
    assert folders and all((PACKAGE / name / "__init__.py").exists() for name in folders), folders
    assert all((ROOT / "tests" / name / "__init__.py").exists() for name in folders)
