"""xpnet's pytest plugin (xpnet.tools.testing, entry point pytest11) is loaded by every pytest run where xpnet is
installed: it must import no array library and touch no GPU until a test uses the xpnet_backend fixture, and
then only the library of the case being run (JAX told not to preallocate GPU memory before it is probed)."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIBRARIES = ("torch", "jax", "cupy", "array_api_strict")


def _pytest(tmp_path, test_code, *args, conftest=None, **env):
    (tmp_path / "test_user.py").write_text(textwrap.dedent(test_code))
    if conftest is not None:
        (tmp_path / "conftest.py").write_text(textwrap.dedent(conftest))
    environ = {k: v for k, v in os.environ.items() if k not in ("XLA_PYTHON_CLIENT_PREALLOCATE", "PYTEST_ADDOPTS")}
    environ.update(env, PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(tmp_path), *args],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=environ)


def test_the_plugin_imports_no_array_library(tmp_path):
    """A suite that never asks for xpnet_backend: the plugin is active (its gpu mark is registered) and no array
    library is imported (the fixture's parameters used to probe every library, jax.devices('gpu') included, when
    the plugin was imported)."""
    proc = _pytest(tmp_path, f"""
        import sys

        def test_nothing_imported(pytestconfig):
            assert any("gpu:" in m for m in pytestconfig.getini("markers"))
            assert not set({LIBRARIES!r}) & set(sys.modules), sorted(set({LIBRARIES!r}) & set(sys.modules))
        """)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_a_case_probes_only_its_own_library_and_gpu_cases_skip_with_the_reason(tmp_path):
    """With the fixture imported in a conftest.py (as tests/conftest.py and user suites do) and plugin autoload off:
    the numpy case runs without importing the other libraries; a GPU case is marked gpu and skipped with the
    reason on a machine without one; probing JAX sets XLA_PYTHON_CLIENT_PREALLOCATE=false unless it was set."""
    code = f"""
        import os
        import sys

        def test_numpy_alone(xpnet_backend):
            assert xpnet_backend.name == "numpy"
            assert not set({LIBRARIES!r}) & set(sys.modules)

        def test_jax_gpu_case(xpnet_backend):
            raise AssertionError("a GPU case ran on a machine without a GPU")

        def test_prealloc(pytestconfig):
            print("PREALLOCATE=" + os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE", "unset"))
        """
    conftest = "from xpnet.tools.testing import xpnet_backend  # noqa: F401\n"
    proc = _pytest(tmp_path, code, "-k", "numpy_alone and numpy-cpu or jax_gpu_case and jax-cuda or prealloc", "-s",
                   conftest=conftest, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "2 passed, 1 skipped" in out, out[-3000:]
    assert "no CUDA GPU usable by jax" in out or "not installed" in out, out[-3000:]
    assert "PREALLOCATE=false" in out


def test_probing_jax_turns_gpu_preallocation_off_unless_the_user_chose(monkeypatch):
    import pytest
    pytest.importorskip("jax")
    from xpnet.tools.testing import _skip_reason
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
    _skip_reason.__wrapped__("jax", "cuda")
    assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "true")
    _skip_reason.__wrapped__("jax", "cuda")
    assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "true"
