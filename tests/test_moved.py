"""The old module paths (xpnet/_moved.py): each still imports, gives the module at its new path itself, and
warns once, with a DeprecationWarning naming the new path, attributed to the importing line; `import xpnet`
and every new path import with no DeprecationWarning; nothing of xpnet, its tests, benchmarks or examples
imports an old path."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import xpnet
from xpnet._moved import MOVED

ROOT = Path(xpnet.__file__).resolve().parents[1]

CODE = r"""
import importlib, json, sys, warnings
warnings.simplefilter("error", DeprecationWarning)
import xpnet, xpnet.gradcheck, xpnet.parity, xpnet.training, xpnet.distributed, xpnet.cli, xpnet.tools.testing
xpnet.Sequential, xpnet.gradcheck.gradcheck, xpnet.parity.parity, xpnet.cli.main, xpnet.training.fit
from xpnet._moved import MOVED
for new in MOVED.values():
    importlib.import_module(new)
out = {}
for old, new in MOVED.items():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scope = {}
        exec(compile(f"import {old} as first", "users_code.py", "exec"), scope)
        exec(compile(f"import {old} as again", "users_code.py", "exec"), scope)
    parent, _, leaf = old.rpartition(".")
    out[old] = {"same": scope["first"] is sys.modules[new] and scope["again"] is scope["first"]
                        and getattr(sys.modules[parent], leaf) is sys.modules[new],
                "warnings": [(w.category.__name__, str(w.message), w.filename) for w in caught]}
print(json.dumps(out))
"""


def test_old_paths_warn_once_and_give_the_new_modules():
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(out) == set(MOVED) and len(MOVED) >= 15
    for old, new in MOVED.items():
        assert out[old]["same"], old
        assert len(out[old]["warnings"]) == 1, (old, out[old]["warnings"])
        category, message, filename = out[old]["warnings"][0]
        assert category == "DeprecationWarning" and new in message and old in message, (old, message)
        assert filename == "users_code.py", (old, filename)  # shown where the user imports it


def test_every_old_path_is_a_shim_and_every_new_path_exists():
    for old, new in MOVED.items():
        shim = ROOT / (old.replace(".", "/") + ".py")
        assert shim.read_text().strip().endswith("moved(__name__)"), shim
        assert (ROOT / (new.replace(".", "/") + ".py")).is_file(), new


def _old_imports(path: Path) -> list:
    """The old paths `path` imports (absolute `xpnet.datasets`, `from xpnet import datasets`, or relative from
    inside xpnet/), except in an `except ImportError:` handler (a benchmark reading an older checkout)."""
    tree = ast.parse(path.read_text())
    fallback = {id(n) for h in ast.walk(tree) if isinstance(h, ast.ExceptHandler) for n in ast.walk(h)}
    inside = path.is_relative_to(ROOT / "xpnet")
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1]) if inside else ""
    found = []
    for node in ast.walk(tree):
        if id(node) in fallback:
            continue
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names = [mod] + [f"{mod}.{a.name}" for a in node.names]
        found += [n for n in names if any(n == old or n.startswith(old + ".") for old in MOVED)][:1]
    return found


def test_nothing_imports_an_old_path():
    shims = {ROOT / (old.replace(".", "/") + ".py") for old in MOVED}
    files = [p for d in ("xpnet", "tests", "benchmarks", "examples") for p in (ROOT / d).rglob("*.py")
             if p not in shims and p != Path(__file__).resolve()]
    assert len(files) > 100
    bad = {str(p.relative_to(ROOT)): _old_imports(p) for p in files}
    assert not {k: v for k, v in bad.items() if v}


def test_the_old_import_finder_finds_old_imports(tmp_path):
    src = ("import xpnet.datasets\nfrom xpnet.checkpoint import load\nfrom xpnet import train\n"
           "import xpnet.data.datasets\ntry:\n    import xpnet.data.labels\nexcept ImportError:\n    import xpnet.labels\n")
    (tmp_path / "x.py").write_text(src)
    assert _old_imports(tmp_path / "x.py") == ["xpnet.datasets", "xpnet.checkpoint", "xpnet.train"]
