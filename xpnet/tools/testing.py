"""Backend parity for your own test suite.

Installed with xpnet, this module is a pytest plugin (entry point `pytest11`): the `xpnet_backend` fixture
and the `gpu` mark are there in any test suite without a conftest.py. (Importing the fixture in a
conftest.py, as before, works too.) `from xpnet.tools.testing import xpnet_backend  # noqa: F401` gives a fixture that runs a
test once per installed backend (GPU cases skipped with a reason when no GPU), and
`xpnet.tools.testing.assert_parity(model_fn, X, y)` fails with a table when a backend drifts from NumPy.
"""
from __future__ import annotations

import functools
import os

import pytest

from ..backend import Backend, BackendError, describe, set_array_api_strict_version
from .parity import parity

# (backend, device, array_api_strict API version or None)
CASES = (
    ("numpy", "cpu", None),
    ("array_api_strict", "cpu", None),
    ("array_api_strict", "cpu", "2024.12"),
    ("torch", "cpu", None),
    ("jax", "cpu", None),
    ("cupy", "cuda", None),
    ("torch", "cuda", None),
    ("jax", "cuda", None),
)


def case_id(case) -> str:
    name, device, version = case
    return f"{name}-{device}" + (f"-{version}" if version else "")


@functools.lru_cache(maxsize=None)
def _skip_reason(name: str, device: str) -> str | None:
    """Why case (name, device) cannot run here (None: it can). Imports the library and asks for its GPUs, once per
    process; JAX is told first not to preallocate GPU memory for it (XLA_PYTHON_CLIENT_PREALLOCATE, unless set)."""
    if name == "jax":
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    row = describe(name)
    if row["version"] is None:
        return row["reason"]
    if device == "cuda" and not any(d.startswith("cuda") for d in row["devices"]):
        return f"no CUDA GPU usable by {name} on this machine"
    return None


def backend_params(cpu_only: bool = False) -> list:
    """pytest.param for each case in CASES, marked skip (with the reason) when unusable here (this probes every
    library: the xpnet_backend fixture does not call it, it skips when a case is first used)."""
    params = []
    for case in CASES:
        if cpu_only and case[1] != "cpu":
            continue
        reason = _skip_reason(case[0], case[1])
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        if case[1] == "cuda":
            marks.append(pytest.mark.gpu)
        params.append(pytest.param(case, id=case_id(case), marks=marks))
    return params


def _case_param(case):
    """pytest.param for a case, marked gpu for a CUDA one; whether it can run here is asked only when it is used."""
    return pytest.param(case, id=case_id(case), marks=[pytest.mark.gpu] if case[1] == "cuda" else [])


# The parameters are the cases alone, so importing this plugin (in every pytest run where xpnet is installed)
# imports no array library; a case's library is imported, and a GPU asked for, when a test first uses the case.
@pytest.fixture(params=[_case_param(case) for case in CASES])
def xpnet_backend(request) -> Backend:
    """An xpnet Backend, once per installed backend and device (skipped, with the reason, where unusable)."""
    name, device, version = request.param
    reason = _skip_reason(name, device)
    if reason:
        pytest.skip(reason)
    if version:
        previous = set_array_api_strict_version(version)
        request.addfinalizer(lambda: set_array_api_strict_version(previous))
    try:
        return Backend(name, device)
    except BackendError as exc:
        pytest.skip(str(exc))


def assert_parity(model_fn, X, y, backends=None, dtypes=("float64",), steps: int = 20, free_tol=None, **kwargs):
    """Fail when any backend's lockstep difference to NumPy float64 exceeds its dtype's tolerance
    (or the free-running one exceeds free_tol). model_fn(backend, dtype) must build the model from a fixed seed."""
    if backends is None:
        backends = [name for name, device, version in CASES
                    if device == "cpu" and version is None and _skip_reason(name, device) is None]
    report = parity(model_fn, X, y, backends=backends, dtypes=dtypes, steps=steps, free_tol=free_tol, **kwargs)
    if not report["passed"]:
        raise AssertionError("backend parity failed:\n" + "\n".join(map(_row, report["results"])))
    return report


def _row(r: dict) -> str:
    head = f"{r.get('label', r['backend']):>17} {r['dtype']:>8}  "
    if r.get("skipped"):
        return head + f"skipped: {r['skipped']}"
    err = r.get("error")
    if err:
        where = f" in {err['where']}" if err["where"] else ""
        return head + f"ERROR{where}: {err['type']}: {err['message']}"
    return head + (f"lockstep {r['max_rel_diff']:.2e} (tol {r['tolerance']:.0e})  free {r['free_max_rel_diff']:.2e}  "
                   f"{'ok' if r['passed'] else 'FAILED'}")


def pytest_configure(config):
    """As a pytest plugin (entry point pytest11, active wherever xpnet is installed): register xpnet's marks."""
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (xpnet.tools.testing skips it, with the reason, without one)")
