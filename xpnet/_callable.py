"""Modules that can also be called like their main function.

`xpnet.backend`, `xpnet.gradcheck` and `xpnet.parity` are modules (so `import xpnet.backend` gives the
module, not a function put over it by xpnet/__init__.py), and calling one runs the module's function of
the same name: `xpnet.backend("numpy")` is `xpnet.backend.backend("numpy")`.
"""
from __future__ import annotations

import sys
import types


class CallableModule(types.ModuleType):
    """A module whose call runs its function named like the module's last dotted part."""

    def __call__(self, *args, **kwargs):
        return getattr(self, self.__name__.rpartition(".")[2])(*args, **kwargs)


def make_callable(module_name: str) -> None:
    """Make the (already imported) module `module_name` callable, in place; its attributes are untouched."""
    sys.modules[module_name].__class__ = CallableModule
