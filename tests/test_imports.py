"""The architecture rule: only xpnet/backend.py names array libraries; NumPy only where host data or RNG is handled."""
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
MATH_MODULES = ["layers.py", "losses.py", "optimizers.py", "penalties.py", "schedules.py", "model.py", "training.py"]


def imported(path: Path) -> set:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_only_backend_imports_array_libraries():
    for path in PKG.glob("*.py"):
        libs = imported(path) & ARRAY_LIBS
        assert not libs or path.name == "backend.py", f"{path.name} imports {libs}"


def test_numpy_only_for_host_work():
    for path in PKG.glob("*.py"):
        if "numpy" in imported(path):
            assert path.name in HOST_NUMPY, f"{path.name} imports numpy but handles no host data or RNG"


def test_math_modules_import_no_array_library():
    for name in MATH_MODULES:
        assert not imported(PKG / name) & (ARRAY_LIBS | {"numpy"}), name


def test_import_has_no_side_effects(monkeypatch):
    import importlib
    import sys
    monkeypatch.setenv("XPNET_BACKEND", "no-such-backend")
    for mod in [m for m in sys.modules if m == "xpnet" or m.startswith("xpnet.")]:
        monkeypatch.delitem(sys.modules, mod)
    importlib.import_module("xpnet")  # must not read the variable, nor import torch/jax/cupy
