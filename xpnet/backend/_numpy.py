"""NumPy: the CPU reference backend."""
from __future__ import annotations

import array_api_compat
import numpy as np

from ._base import Backend


class NumpyBackend(Backend):
    name = "numpy"
    # float16 natively; bfloat16 only through ml_dtypes, whose matmul gives float32 and whose dtype the array
    # API's isdtype refuses: not offered (torch and JAX have it)
    compute_dtypes = ("float16",)
    is_array = staticmethod(array_api_compat.is_numpy_array)
    to_host = staticmethod(np.asarray)

    def _native_device(self, kind: str, index: int):
        return "cpu"

    def take(self, x, indices, axis: int = 0):
        """ndarray.take: the same gather as xp.take without NumPy's Python-level dispatch wrapper (two calls
        per training step; measured in docs/results.md)."""
        return x.take(indices, axis=axis)

    def _probe(self):
        return np.empty(0)
