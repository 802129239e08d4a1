"""array-api-strict: the standard and nothing more, on the CPU, to catch non-standard calls.

It has three devices that hold the same memory but refuse to mix (array_api_strict.Device): "cpu" (its
CPU_DEVICE), "cpu:1" ("device1") and "cpu:2" ("device2"), so a model on "cpu:1" proves that every array it
makes is made on its device (scikit-learn's array-API checks give inputs on "device1")."""
from __future__ import annotations

import importlib

from ._base import Backend, BackendError


class StrictBackend(Backend):
    name = "array_api_strict"

    @staticmethod
    def is_array(a) -> bool:
        return type(a).__module__.startswith("array_api_strict")

    #: the library's device names, in the order of xpnet's "cpu", "cpu:1", "cpu:2"
    DEVICE_NAMES = ("CPU_DEVICE", "device1", "device2")

    @classmethod
    def cpu_count(cls) -> int:
        return len(cls.DEVICE_NAMES)

    @classmethod
    def device_of(cls, a) -> str:
        Device = importlib.import_module("array_api_strict").Device
        index = next((i for i, name in enumerate(cls.DEVICE_NAMES) if a.device == Device(name)), None)
        if index is None:
            raise BackendError(f"an array_api_strict array on {a.device!r}: xpnet runs on its devices "
                               f"{', '.join(cls.DEVICE_NAMES)} only; move it there with to_device")
        return f"cpu:{index}" if index else "cpu"

    def _native_device(self, kind: str, index: int):
        return self._mod.Device(self.DEVICE_NAMES[index])

    def _probe(self):
        return self._mod.asarray(0.0)
