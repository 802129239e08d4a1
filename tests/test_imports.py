"""The architecture rules: only the xpnet/backend/ package names array libraries; NumPy only where host data or
RNG is handled; no import cycles between xpnet's modules, function-level imports included."""
import ast
from pathlib import Path

import xpnet

PKG = Path(xpnet.__file__).parent
ARRAY_LIBS = {"cupy", "cupyx", "torch", "jax", "jaxlib", "array_api_strict"}
# modules that may import NumPy, and why
HOST_NUMPY = {
    "backend/*": "the backend package itself",
    "init.py": "weights drawn from the host RNG",
    "models/mlp.py": "the book's private RandomState and its float64 weight copies",
    "data/validation.py": "checks of host input data",
    "tools/gradcheck.py": "host perturbations and norms",
    "tools/parity.py": "host comparison of results and the host batch order",
    "data/datasets.py": "reading files",
    "cli/train.py": "host scaling of loaded data",
    "cli/gradcheck.py": "host data for the CLI's small problems",
    "cli/_common.py": "the host dataset's shape, to tell images from table rows",
    "cli/evaluate.py": "the host confusion matrix of the predictions",
    "cli/predict.py": "host probabilities, printed and written to CSV",
    "saving/checkpoint.py": "reading and writing checkpoint files",
    "data/preprocessing.py": "host scaling of loaded data",
    "tools/plots.py": "host arrays for matplotlib",
    "data/labels.py": "class labels (names or numbers) stay on the host; only output indices go to a device",
    "data/predict_inputs.py": "reading input files",
    "sklearn/estimators.py": "scikit-learn's host labels, targets, weights and scores (X stays in its namespace)",
    "data/regression.py": "a regression model's continuous targets and R² on the host",
    "export/onnx.py": "host float32 weights and constants written into the ONNX graph",
    "export/onnx_layers.py": "BatchNorm's running statistics as host float32 constants of the graph",
    "distributed/communicator.py": "host buffers of the MPI all-reduce",
    "distributed/parity.py": "host comparison of results",
    "models/presets.py": "host image arrays brought to (N, C, H, W)",
    "metrics.py": "precision, recall, F1 and reports from host confusion counts",
    "data/text.py": "reading text files; host token ids and their blocks",
    "data/arrays.py": "memory-mapped .npy files and their host batches",
    "data/images.py": "decoding image files into host pixel arrays",
    "models/gpt.py": "sampling the next token on the host",
}
# the one module that may name the MPI binding and the NCCL binding (cupy.cuda.nccl), and why
COMMUNICATION_LIBS = {"mpi4py", "cupy"}
COMMUNICATION_MODULE = "distributed/communicator.py"
MATH_MODULES = ["losses.py", "optimizers.py", "penalties.py", "schedules.py", "clipping.py", "groups.py",
                "models/network.py", "models/sequential.py",
                "training/loop.py", "training/state.py", "training/callbacks.py", "training/steps.py", "training/sources.py",
                "training/loggers.py", "models/summary.py",
                "distributed/data_parallel.py",
                "checks.py", "registry.py", "namespace.py", "errors.py", *[f"layers/{p.name}" for p in (PKG / "layers").glob("*.py")]]


def imported(path: Path) -> set:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


BACKEND = PKG / "backend"


def modules():
    """Every Python file of xpnet, subpackages included, with its name relative to xpnet/ ('backend/*' for
    the backend package)."""
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        yield path, "backend/*" if path.parent == BACKEND else rel


def test_the_backend_package_exists_and_is_scanned():
    names = {rel for _, rel in modules()}
    assert (BACKEND / "__init__.py").is_file() and "backend/*" in names and "layers/dense.py" in names
    assert not (PKG / "backend.py").exists(), "xpnet/backend.py would be shadowed by the xpnet/backend/ package"


def test_only_backend_imports_array_libraries():
    for path, rel in modules():
        libs = imported(path) & ARRAY_LIBS
        if rel == COMMUNICATION_MODULE:  # NCCL's binding is cupy.cuda.nccl; nothing else of CuPy
            assert libs <= {"cupy"} and _cupy_imports(path) <= {"cupy.cuda.nccl", "cupy.cuda"}, (rel, libs)
            continue
        assert not libs or rel == "backend/*", f"{rel} imports {libs}"


def _reads_type_module(source: str) -> bool:
    """Whether `source` tells an object's library from its type's module (`type(a).__module__`): naming
    array libraries by string."""
    return any(isinstance(node, ast.Attribute) and node.attr == "__module__" and isinstance(node.value, ast.Call)
               and isinstance(node.value.func, ast.Name) and node.value.func.id == "type"
               for node in ast.walk(ast.parse(source)))


def test_only_backend_names_array_libraries_by_string():
    """Only backend/ tells an array's library by name (xpnet.backend.is_foreign, library_of, placement);
    the model asks it instead of matching type(a).__module__ against library names itself."""
    assert _reads_type_module('mod = type(a).__module__.split(".")[0]')
    assert not _reads_type_module('mod = getattr(obj, "__module__", None)')
    for path, rel in modules():
        assert rel == "backend/*" or not _reads_type_module(path.read_text()), \
            f"{rel} names array libraries by type(...).__module__; ask xpnet.backend (is_foreign, placement)"


def _cupy_imports(path: Path) -> set:
    """What `path` imports from cupy ('cupy.cuda.nccl' for `from cupy.cuda import nccl`)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("cupy"):
            names |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("cupy")}
    return names


def test_only_the_distributed_module_imports_mpi_and_nccl():
    found = {rel for path, rel in modules() if imported(path) & {"mpi4py"}}
    assert found == {COMMUNICATION_MODULE}, found
    assert _cupy_imports(PKG / COMMUNICATION_MODULE) == {"cupy.cuda.nccl"}


def test_numpy_only_for_host_work():
    for path, rel in modules():
        if "numpy" in imported(path):
            assert rel in HOST_NUMPY, f"{rel} imports numpy but handles no host data or RNG"


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
    files = {_module_name(p): p for p, _ in modules()}
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


def find_cycle(graph: dict) -> list | None:
    """The first import cycle found (a list of modules, first = last), or None. A module other than the
    package's own __init__ that imports the package `xpnet` itself counts as a cycle: the package imports
    everything."""
    done, stack = set(), []

    def visit(node):
        if node in stack:
            return stack[stack.index(node):] + [node]
        if node in done:
            return None
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if dep == "xpnet" and node != "xpnet":
                return [node, "xpnet", node]
            found = visit(dep)
            if found:
                return found
        stack.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        found = visit(node)
        if found:
            return found
    return None


def test_no_import_cycles():
    graph = import_graph()
    assert "xpnet.models.sequential" in graph and "xpnet.layers.dense" in graph and "xpnet.saving.checkpoint" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"xpnet.m": {"xpnet"}, "xpnet": set()}) == ["xpnet.m", "xpnet", "xpnet.m"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_import_has_no_side_effects(monkeypatch):
    import importlib
    import sys
    monkeypatch.setenv("XPNET_BACKEND", "no-such-backend")
    for mod in [m for m in sys.modules if m == "xpnet" or m.startswith("xpnet.")]:
        monkeypatch.delitem(sys.modules, mod)
    importlib.import_module("xpnet")  # must not read the variable, nor import torch/jax/cupy


def test_import_loads_no_array_library():
    """`import xpnet` (and selecting NumPy) imports no GPU-capable library: the backend package loads a
    library's module only when its backend is asked for."""
    import subprocess
    import sys
    code = ("import sys, xpnet, xpnet.backend; xpnet.backend('numpy'); "
            "print(sorted(m for m in ('torch', 'jax', 'cupy', 'array_api_strict') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PKG.parent).stdout
    assert out.strip() == "[]", out


def test_backend_gradcheck_parity_are_modules_and_callable():
    """`import xpnet.backend` gives the module (xpnet/__init__.py used to put the function over it), and
    `xpnet.backend("numpy")`, `xpnet.gradcheck(...)`, `xpnet.parity(...)` still call the functions."""
    import importlib
    import inspect
    import sys

    import numpy as np

    import xpnet.backend as m
    assert inspect.ismodule(m) and m is sys.modules["xpnet.backend"] and xpnet.backend is m
    assert inspect.isfunction(m.backend) and inspect.isclass(m.Backend)
    bk = xpnet.backend("numpy")
    assert isinstance(bk, m.Backend) and bk.name == "numpy"
    for name in ("gradcheck", "parity"):
        mod = importlib.import_module(f"xpnet.{name}")
        assert inspect.ismodule(mod) and getattr(xpnet, name) is mod and inspect.isfunction(getattr(mod, name))

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((8, 3)), np.arange(8) % 2
    model = xpnet.Sequential([xpnet.Dense(3, 2)], loss="softmax_cross_entropy", backend=bk, dtype="float64", seed=0)
    assert xpnet.gradcheck(model, X, y) == xpnet.gradcheck.gradcheck(model, X, y)
    report = xpnet.parity(backends=["numpy"], steps=2)
    assert report["passed"] and report["steps"] == 2 and report["results"][0]["backend"] == "numpy"


def test_the_library_imports_neither_the_command_line_nor_the_tools():
    """cli/ sits on top: only `python -m xpnet` (__main__) imports it. tools/ works on a model from outside:
    nothing of a training step (models/, training/, layers/, saving/, data/, the core) imports it; only the
    package's public names (xpnet.gradcheck, xpnet.parity), the command line and distributed/parity.py do."""
    graph = import_graph()
    assert "xpnet.cli.app" in graph and "xpnet.tools.parity" in graph
    users = lambda part: {m for m, deps in graph.items()
                          if not m.startswith(part) and any(d == part or d.startswith(part + ".") for d in deps)}
    assert users("xpnet.cli") == {"xpnet.__main__"}
    assert users("xpnet.tools") <= {"xpnet", "xpnet.cli.train", "xpnet.cli.gradcheck", "xpnet.cli.parity",
                                   "xpnet.distributed.parity"}


# the optional loggers' libraries (extras tensorboard and mlflow): loaded by name by `xpnet train --tensorboard/--mlflow`
# (cli/_loggers.py) only; the logger callbacks are given the writer or client (skorch's pattern)
LOGGING_LIBS = {"tensorboardX", "tensorboard", "mlflow"}


def test_no_module_imports_the_optional_logging_libraries():
    for path, rel in modules():
        assert not imported(path) & LOGGING_LIBS, f"{rel} imports {imported(path) & LOGGING_LIBS}"
    import subprocess
    import sys
    code = ("import sys, xpnet, xpnet.training.loggers, xpnet.cli.app; xpnet.cli.app.build_parser(); "
            f"print(sorted(m for m in {sorted(LOGGING_LIBS)!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PKG.parent).stdout
    assert out.strip() == "[]", out
