"""Old module paths: the modules that moved into folders keep their old path for one release.

Each old path (xpnet/datasets.py, ...) is one call to `moved`, which makes the old name the new module itself
(the same objects, `xpnet.datasets is xpnet.data.datasets`) and warns once, with a DeprecationWarning naming
the new path, when a user's code imports the old one. Nothing in xpnet, its tests, benchmarks or examples
imports an old path (tests/test_imports.py checks this). `alias` gives a module a second, first-class name
without a warning (xpnet.gradcheck, xpnet.parity: public names that xpnet/__init__.py sets anyway).
"""
from __future__ import annotations

import importlib
import sys
import warnings

# old path -> new path, for the modules that moved in 0.2 (the shims at the old paths and their test read it)
MOVED = {
    "xpnet.model": "xpnet.models.sequential", "xpnet.mlp": "xpnet.models.mlp", "xpnet.cnn": "xpnet.models.presets",
    "xpnet.state": "xpnet.training.state",
    "xpnet.checkpoint": "xpnet.saving.checkpoint", "xpnet.files": "xpnet.saving.files",
    "xpnet.datasets": "xpnet.data.datasets", "xpnet.labels": "xpnet.data.labels",
    "xpnet.preprocessing": "xpnet.data.preprocessing", "xpnet.predict_inputs": "xpnet.data.predict_inputs",
    "xpnet.validation": "xpnet.data.validation",
    "xpnet.data_parallel": "xpnet.distributed.data_parallel", "xpnet.parity_distributed": "xpnet.distributed.parity",
    "xpnet.testing": "xpnet.tools.testing", "xpnet.plots": "xpnet.tools.plots",
    "xpnet.train": "xpnet.cli.train", "xpnet.params": "xpnet.checks",
}


def moved(old: str) -> None:
    """Called by the module at the old path `old` while it is being imported: the import then gives the
    module at the new path (Python's import returns what sys.modules holds under `old` once the old module
    has run), after one DeprecationWarning attributed to the importing line."""
    new = MOVED[old]
    module = importlib.import_module(new)
    sys.modules[old] = module
    # stacklevel 3: past this function and the old module; the interpreter skips importlib's own frames
    warnings.warn(f"{old} has moved to {new}: import {new} instead ({old} goes in the next release)",
                  DeprecationWarning, stacklevel=3)


def alias(name: str, module) -> None:
    """`import name` gives `module` (already imported), with no warning."""
    sys.modules[name] = module
