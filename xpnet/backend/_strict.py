"""array-api-strict: the standard and nothing more, on the CPU, to catch non-standard calls."""
from __future__ import annotations

from ._base import Backend


class StrictBackend(Backend):
    name = "array_api_strict"

    @staticmethod
    def is_array(a) -> bool:
        return type(a).__module__.startswith("array_api_strict")

    def _native_device(self, kind: str, index: int):
        return self._mod.Device("CPU_DEVICE")

    def _probe(self):
        return self._mod.asarray(0.0)
