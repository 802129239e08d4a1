"""PyTorch, on the CPU or a CUDA GPU."""
from __future__ import annotations

import importlib

import array_api_compat

from ._base import Backend, _seed32


class TorchBackend(Backend):
    name = "torch"
    is_array = staticmethod(array_api_compat.is_torch_array)

    @classmethod
    def cuda_count(cls) -> int:
        torch = importlib.import_module("torch")
        return torch.cuda.device_count() if torch.cuda.is_available() else 0

    @classmethod
    def gpu_name(cls, index: int) -> str:
        return importlib.import_module("torch").cuda.get_device_name(index)

    @staticmethod
    def to_host(a):
        return a.detach().cpu().numpy()

    def _native_device(self, kind: str, index: int):
        return self._mod.device("cpu" if kind == "cpu" else f"cuda:{index}")

    def _probe(self):
        return self._mod.empty(0, device=self.native_device)

    def activate(self):
        """torch.cuda.device(i) on a GPU (torch ops follow their tensors' device anyway; this sets the
        device of calls without one, e.g. streams and events); nothing on the CPU."""
        if self.device == "cpu":
            return super().activate()
        return self._mod.cuda.device(self._index)

    def synchronize(self) -> None:
        if self.device != "cpu":
            self._mod.cuda.synchronize(self.native_device)

    def _new_generator(self, seed):
        g = self._mod.Generator(device=self.native_device)
        g.manual_seed(_seed32(seed))
        return g

    def _uniform(self, g, shape: tuple, dtype):
        return g, self._mod.rand(shape, generator=g, dtype=dtype, device=self.native_device)
