"""The profiling scripts behind the CNN figures in docs/results.md still run and measure what they say
(tiny sizes, no timing asserted)."""
import json
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_cnn_profile_memory_reports_each_conv_s_columns():
    """LeNet-5 at batch 8: conv1's columns are 25·28·28·8 float32 values, conv2's 150·10·10·8."""
    out = _run("cnn_profile.py", "--memory", "--batch", "8")
    cols = re.search(r"columns: ([0-9.]+), ([0-9.]+)\)", out)
    assert cols, out
    mib = 2 ** 20
    assert float(cols.group(1)) == round(25 * 784 * 8 * 4 / mib, 1)
    assert float(cols.group(2)) == round(150 * 100 * 8 * 4 / mib, 1)


def test_cnn_profile_splits_a_step():
    out = _run("cnn_profile.py", "--batch", "4", "--steps", "2", "--warmup", "1")
    for part in ("step", "im2col", "conv matmul", "col2im", "pooling", "relu", "GEMM floor"):
        assert f"| {part}" in out, out


def test_conv_layouts_times_both_orders_for_each_conv():
    out = _run("conv_layouts.py", "--batch", "2", "--calls", "1")
    rows = [line for line in out.splitlines() if line.startswith("| lenet5") or line.startswith("| fashion")]
    assert len(rows) == 4 and all(len(r.split("|")) == 7 for r in rows), out


def _wheel_with_a_library(folder: Path) -> Path:
    """A wheel laid out as MPICH's: a package, and a shared library in its data folder's lib/."""
    import base64
    import hashlib
    import zipfile
    files = {"fakempi/__init__.py": b"",
             "fakempi-1.0.data/data/lib/libfakempi.so.12": b"\x7fELF not really",
             "fakempi-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: fakempi\nVersion: 1.0\n",
             "fakempi-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\n"
                                            b"Tag: py3-none-any\n"}
    record = [f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
              f"{len(data)}" for name, data in files.items()] + ["fakempi-1.0.dist-info/RECORD,,"]
    path = folder / "fakempi-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr("fakempi-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return path


def test_carried_wheels_keep_their_libraries(tmp_path):
    """The GPU scripts install carried wheels (MPICH's among them) with install_wheels: its libmpi.so.12 is in
    the wheel's data folder, which pip install --target drops (mpi4py: 'cannot load MPI library'). The library
    must be installed and on LD_LIBRARY_PATH, the package on PYTHONPATH."""
    wheels = tmp_path / "whl"
    wheels.mkdir()
    _wheel_with_a_library(wheels)
    script = (f'PY={sys.executable}; source {BENCH / "install_wheels.sh"}; install_wheels {wheels} {tmp_path / "site"} '
              f'&& python=$PY && $python -c "import fakempi, os; print(fakempi.__file__); '
              f'print(os.environ[\'LD_LIBRARY_PATH\'].split(\':\')[0])"')
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    package, lib = done.stdout.split()
    assert package.startswith(str(tmp_path / "site"))
    assert (Path(lib) / "libfakempi.so.12").is_file()


def test_gpu_check_sections_fit_its_budget_and_test_the_gpu_paths(tmp_path):
    """gpu_check.sh's dry run (GPU_CHECK_DRY_RUN=1: the plan, nothing run): its section limits, with the seconds
    each may take to be killed and the set-up, add up to at most its budget, itself under 6 minutes; the
    compiled-parity smoke runs before the tests, the GPU-path tests are among them, and torch.compile's benchmark
    row has a section of its own."""
    done = subprocess.run(["bash", str(BENCH / "gpu_check.sh")], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "OUT": str(tmp_path), "GPU_CHECK_DRY_RUN": "1"})
    assert done.returncode == 0, done.stderr
    out = done.stdout
    sections = re.findall(r"^== ([\w:-]+) \(limit (\d+) s\)(?:: (.*))?$", out, re.M)
    names = [n for n, _, _ in sections]
    assert names == ["probe", "backends", "compiled-smoke", "gpu-tests", "parity", "benchmarks", "bench-cnn",
                     "bench-torch-compile", "bench-jax-jit", "prefetch", "book2015:cupy-float32"], out
    head = re.search(r"with (\d+) s each to be killed and (\d+) s of set-up: (\d+) s of the budget's (\d+) s", out)
    kill, setup, total, budget = map(int, head.groups())
    assert total == setup + sum(int(limit) + kill for _, limit, _ in sections) <= budget <= 360, out
    commands = {n: c for n, _, c in sections}
    assert "tests/test_gpu_paths.py" in commands["gpu-tests"]
    assert "--frameworks xpnet-torch-compile --torch-compile-mode reduce-overhead" in commands["bench-torch-compile"]
    assert "torch-compile" not in commands["bench-jax-jit"]


def test_gpu_check_precision_sections_fit_its_budget(tmp_path):
    """GPU_CHECK_SECTIONS=precision's dry run: probe, backends, then the mixed-precision parity and speed sections
    (benchmarks/precision_check.py on CuPy, torch and JAX), within the budget."""
    done = subprocess.run(["bash", str(BENCH / "gpu_check.sh")], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "OUT": str(tmp_path), "GPU_CHECK_DRY_RUN": "1",
                               "GPU_CHECK_SECTIONS": "precision"})
    assert done.returncode == 0, done.stderr
    sections = re.findall(r"^== ([\w:-]+) \(limit (\d+) s\)(?:: (.*))?$", done.stdout, re.M)
    assert [n for n, _, _ in sections] == ["probe", "backends", "precision-parity", "precision-speed"], done.stdout
    head = re.search(r"with (\d+) s each to be killed and (\d+) s of set-up: (\d+) s of the budget's (\d+) s",
                     done.stdout)
    kill, setup, total, budget = map(int, head.groups())
    assert total == setup + sum(int(limit) + kill for _, limit, _ in sections) <= budget <= 360
    commands = {n: c for n, _, c in sections}
    assert "precision_check.py parity --backends cupy,torch,jax" in commands["precision-parity"]
    assert "precision_check.py speed --backends cupy,torch,jax" in commands["precision-speed"]


def test_precision_check_writes_a_row_per_type():
    """benchmarks/precision_check.py at tiny sizes on NumPy (float16 only): a parity row and float32 + fp16 speed
    rows, each a text line and a JSON line."""
    out = _run("precision_check.py", "parity", "--backends", "numpy", "--device", "cpu", "--steps", "2")
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [(r["backend"], r["precision"], r["passed"]) for r in rows] == [("numpy", "fp16-mixed", True)], out
    out = _run("precision_check.py", "speed", "--backends", "numpy", "--device", "cpu", "--seconds", "0.1",
               "--steps-max", "1", "--batch", "4")
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [r["precision"] for r in rows] == ["float32", "fp16-mixed"] and rows[1]["vs_float32"] > 0, out
