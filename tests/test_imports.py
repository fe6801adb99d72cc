"""The packages' imports: no circle (not even through an import inside a function), and layers that
point down (docs/layout.md)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("benchmarks", "data", "evaluation", "export", "handwriting", "inference", "model", "training", "utils")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(name: str, path: Path, known) -> set[str]:
    """Our modules that `name` imports anywhere in its file, functions included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = name.split(".")[:None if path.name == "__init__.py" else -1]
            if node.level:
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            candidates = [module] + [f"{module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found |= {c for c in candidates if c in known and c != name}
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_no_module_imports_itself_round_a_circle():
    graph = _graph()
    state: dict[str, str] = {}
    circles = []

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                circles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == []


def test_utils_imports_nothing_above_it_and_model_no_training_code():
    graph = _graph()
    for module, targets in graph.items():
        if module.startswith("utils"):
            assert all(t.startswith("utils") for t in targets), (module, targets)
        if module.startswith("model") and module != "model":   # the package's lazy Zi2ZiModel aside
            assert not any(t.startswith("training") for t in targets), (module, targets)


def test_the_checker_sees_a_circle_through_a_function_level_import(tmp_path):
    source = tmp_path / "a.py"
    source.write_text("def f():\n    from b import g\n")
    assert _imports("a", source, {"a", "b"}) == {"b"}
