"""CuPy: NumPy's interface on a CUDA GPU (no CPU device)."""
from __future__ import annotations

import importlib

import array_api_compat

from ._base import Backend, BackendError, _seed32


class CupyBackend(Backend):
    name = "cupy"
    runs_on_cpu = False
    native_rng_restorable = False  # cupy.random.RandomState (curand) does not expose its state
    is_array = staticmethod(array_api_compat.is_cupy_array)

    @classmethod
    def cuda_count(cls) -> int:
        cupy = importlib.import_module("cupy")
        # getDeviceCount() raises on a machine without a driver; is_available() does not.
        return cupy.cuda.runtime.getDeviceCount() if cupy.is_available() else 0

    @classmethod
    def gpu_name(cls, index: int) -> str:
        name = importlib.import_module("cupy").cuda.runtime.getDeviceProperties(index)["name"]
        return name.decode() if isinstance(name, bytes) else name

    @staticmethod
    def to_host(a):
        return a.get()

    def _native_device(self, kind: str, index: int):
        return self._mod.cuda.Device(index)

    @classmethod
    def device_of(cls, a) -> str:
        return f"cuda:{a.device.id}"

    def cuda_pointers(self, a):
        return a.data.ptr, self._mod.cuda.get_current_stream().ptr

    def activate(self):
        """cupy.cuda.Device(i): CuPy runs kernels and creates arrays on the current device. A new Device
        object each time, as a Device keeps the stack of devices it replaced on itself."""
        return self._mod.cuda.Device(self._index)

    def _probe(self):
        with self.activate():
            return self._mod.empty(0)

    def _on_device(self, a) -> bool:
        return a.device.id == self.native_device.id

    def asarray(self, host, dtype=None, copy=None):
        with self.activate():
            return self.xp.asarray(host, dtype=dtype, copy=copy)

    def synchronize(self) -> None:
        self._mod.cuda.Device(self._index).synchronize()  # this GPU's, not the current one's

    def _new_generator(self, seed):
        with self.activate():  # curand's generator belongs to the device current at its creation
            return self._mod.random.RandomState(_seed32(seed))

    def _uniform(self, g, shape: tuple, dtype):
        with self.activate():
            return g, g.random_sample(shape, dtype=dtype)

    def _generator_kind(self) -> str:
        return "cupy"

    def _generator_state(self, g):
        raise BackendError("expected a generator whose state can be saved, but CuPy's native one (curand, "
                           "behind cupy.random.RandomState) cannot export it, so a run drawing from it cannot "
                           "resume exactly; use Dropout(host_rng=True) for resumable runs on CuPy")

    def _generator_from_state(self, data):
        raise BackendError("expected no CuPy native RNG state (CuPy's curand generator cannot be restored); "
                           "start a new stream with make_native_rng(seed) instead")
