"""NumPy: the CPU reference backend."""
from __future__ import annotations

import array_api_compat
import numpy as np

from ._base import Backend


class NumpyBackend(Backend):
    name = "numpy"
    is_array = staticmethod(array_api_compat.is_numpy_array)
    to_host = staticmethod(np.asarray)

    def _native_device(self, kind: str, index: int):
        return "cpu"

    def _probe(self):
        return np.empty(0)
