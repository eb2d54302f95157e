"""The layering of docs/ARCHITECTURE.md, enforced: every import of every module is parsed, and an import of a
higher layer, an import cycle between modules, or a stage importing a sibling stage above it fails."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAYERS = ["common", "preprocess", "labels", "train", "eval", "commands"]  # bottom to top; cli.py sits above all
PACKAGES = set(LAYERS)


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path) -> set[str]:
    """The project modules that ``path`` imports (absolute imports only; the project uses no relative ones)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import"
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name.split(".")[0] in PACKAGES)
    return found


def modules() -> dict[str, Path]:
    return {module_name(p): p for layer in LAYERS for p in (REPO / layer).rglob("*.py")}


def test_no_module_imports_a_higher_layer() -> None:
    upward = []
    for name, path in modules().items():
        mine = LAYERS.index(name.split(".")[0])
        for imported in project_imports(path):
            if LAYERS.index(imported.split(".")[0]) > mine:
                upward.append(f"{name} imports {imported}")
    assert upward == []


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from eval.evaluate import evaluate\nimport numpy\nfrom labels import stats\n")
    assert project_imports(bad) == {"eval.evaluate", "eval.evaluate.evaluate", "labels", "labels.stats"}


def test_no_import_cycles_between_modules() -> None:
    known = modules()
    graph = {name: {i for i in project_imports(path) if i in known and i != name} for name, path in known.items()}
    # a package's __init__ importing its own sub-modules (registration) is not a cycle between modules
    for name in graph:
        graph[name] = {i for i in graph[name] if not i.startswith(name + ".")}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_settings_are_plain_data() -> None:
    """Loading every pipeline builds no OpenCV or torch object inside the settings."""
    import dataclasses

    from commands.pipeline import load_pipeline, pipeline_names

    def leaves(value: object) -> list[object]:
        if dataclasses.is_dataclass(value):
            return [leaf for f in dataclasses.fields(value) for leaf in leaves(getattr(value, f.name))]
        if isinstance(value, (list, tuple)):
            return [leaf for item in value for leaf in leaves(item)]
        if isinstance(value, dict):
            return [leaf for item in value.values() for leaf in leaves(item)]
        return [value]

    for name in pipeline_names():
        for leaf in leaves(load_pipeline(name)):
            assert leaf is None or isinstance(leaf, (str, int, float, bool)), (name, type(leaf))
