"""The profiling scripts behind the CNN figures in docs/results.md still run and measure what they say
(tiny sizes, no timing asserted)."""
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
