"""The architecture rules: only xpnet/backend.py names array libraries; NumPy only where host data or RNG
is handled; no import cycles between xpnet's modules, function-level imports included."""
import ast
from pathlib import Path

import xpnet

PKG = Path(xpnet.__file__).parent
ARRAY_LIBS = {"cupy", "cupyx", "torch", "jax", "jaxlib", "array_api_strict"}
# modules that may import NumPy, and why
HOST_NUMPY = {
    "backend.py": "the backend module itself",
    "init.py": "weights drawn from the host RNG",
    "mlp.py": "the book's private RandomState and its float64 weight copies",
    "validation.py": "checks of host input data",
    "gradcheck.py": "host perturbations and norms",
    "parity.py": "host comparison of results and the host batch order",
    "datasets.py": "reading files",
    "train.py": "host scaling of loaded data",
    "cli.py": "host data for the CLI's small problems",
    "checkpoint.py": "reading and writing checkpoint files",
    "preprocessing.py": "host scaling of loaded data",
    "plots.py": "host arrays for matplotlib",
}
MATH_MODULES = ["losses.py", "optimizers.py", "penalties.py", "schedules.py", "model.py", "training.py", "state.py",
                "registry.py", "namespace.py", "errors.py", *[f"layers/{p.name}" for p in (PKG / "layers").glob("*.py")]]


def modules():
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def imported(path: Path) -> set:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_only_backend_imports_array_libraries():
    for path in modules():
        libs = imported(path) & ARRAY_LIBS
        assert not libs or path.name == "backend.py", f"{path.name} imports {libs}"


def test_numpy_only_for_host_work():
    for path in modules():
        if "numpy" in imported(path):
            assert str(path.relative_to(PKG)) in HOST_NUMPY, f"{path.name} imports numpy but handles no host data or RNG"


def test_math_modules_import_no_array_library():
    assert len(MATH_MODULES) > 12
    for name in MATH_MODULES:
        assert not imported(PKG / name) & (ARRAY_LIBS | {"numpy"}), name


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph() -> dict:
    """xpnet module -> the xpnet modules it imports (at the top or inside functions)."""
    files = {_module_name(p): p for p in modules()}
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                # `from . import x` imports the submodule x when there is one, else a name of the package
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in files else mod for a in node.names]
            for t in targets:
                while t and t not in files:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    deps.add(t)
        graph[name] = deps
    return graph


def test_no_import_cycles():
    graph = import_graph()
    assert "xpnet.model" in graph and "xpnet.layers.dense" in graph
    # a module importing the package itself (`from . import x` where x is not a module) depends on all of it
    done, stack = set(), []

    def visit(node):
        if node in stack:
            cycle = stack[stack.index(node):] + [node]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        stack.append(node)
        for dep in sorted(graph[node]):
            if dep == "xpnet" and node != "xpnet":
                raise AssertionError(f"{node} imports the xpnet package itself, which imports everything: "
                                     f"import from the module that defines the name instead")
            visit(dep)
        stack.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)


def test_import_has_no_side_effects(monkeypatch):
    import importlib
    import sys
    monkeypatch.setenv("XPNET_BACKEND", "no-such-backend")
    for mod in [m for m in sys.modules if m == "xpnet" or m.startswith("xpnet.")]:
        monkeypatch.delitem(sys.modules, mod)
    importlib.import_module("xpnet")  # must not read the variable, nor import torch/jax/cupy
