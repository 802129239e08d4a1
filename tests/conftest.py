"""Shared fixtures: `xpnet_backend` runs a test once per backend (see xpnet.tools.testing).

With XPNET_REQUIRE_BACKENDS=numpy,torch,... (set by .ci/run) the session fails when any named
backend had no passing test, so a broken install cannot pass by skipping everything.
"""
import os
from pathlib import Path

# scikit-learn's array-API dispatch (tests/test_sklearn.py) needs SciPy's array-API mode, which SciPy reads when it
# is first imported: set before any test module imports scipy or sklearn
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import pytest  # noqa: E402

from xpnet.tools.testing import xpnet_backend  # noqa: F401,E402  (the fixture)

REPO = Path(__file__).resolve().parents[1]
MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"

_passed_backends: set = set()


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


def pytest_runtest_logreport(report):
    if report.when == "call" and report.passed and "[" in report.nodeid:
        params = report.nodeid.rsplit("[", 1)[1]
        for part in params.rstrip("]").split("-"):
            _passed_backends.add(part)


def pytest_sessionfinish(session, exitstatus):
    required = [b for b in os.environ.get("XPNET_REQUIRE_BACKENDS", "").split(",") if b]
    missing = [b for b in required if b not in _passed_backends]
    if missing and exitstatus == 0:
        print(f"\nERROR: no test passed on required backend(s) {', '.join(missing)}: "
              f"all were skipped or not collected; is the install broken?")
        session.exitstatus = 1


@pytest.fixture(scope="session")
def mnist_dir():
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST files not found in {MNIST_DIR}")
    return MNIST_DIR
