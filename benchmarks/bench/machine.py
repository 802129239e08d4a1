"""The machine a run measured: package versions, the CPU's model and the flags that decide its kernels, the
thread settings and the load average (for the header of every result and its folder's manifest.json)."""
from __future__ import annotations

import os
import platform
from pathlib import Path

CPU_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "sse4_2", "asimd", "sve")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {"python": platform.python_version()}
    for pkg in ("numpy", "torch", "jax", "jaxlib", "array-api-strict", "array-api-compat", "scikit-learn",
                "cupy-cuda12x", "cupy-cuda13x"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    try:
        import numpy as np
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        out["numpy BLAS"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # noqa: BLE001, S110 (an older NumPy: no BLAS entry)
        pass
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    """Which of CPU_FLAGS /proc/cpuinfo lists (the vector units BLAS and oneDNN choose kernels by); [] elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                have = set(line.split(":", 1)[1].split())
                return [f for f in CPU_FLAGS if f in have]
    except OSError:
        pass
    return []


def threads() -> dict:
    """The BLAS/OpenMP thread settings in the environment (unset ones left out)."""
    return {k: os.environ[k] for k in THREAD_VARS if k in os.environ}
