"""Every example runs, with tiny settings, so none can rot."""
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(*args, cwd):
    proc = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=600, cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_book_mnist(mnist_dir, tmp_path):
    out = run(EXAMPLES / "book_mnist.py", "--data-dir", mnist_dir, "--epochs", "2", "--samples", "3000",
              cwd=tmp_path)
    assert "Test accuracy" in out


def test_fashion_adam(mnist_dir, tmp_path):
    fashion = mnist_dir.parent / "fashion-mnist"
    if not fashion.exists():
        pytest.skip("no Fashion-MNIST files")
    out = run(EXAMPLES / "fashion_adam.py", "--data-dir", fashion, "--epochs", "1", "--samples", "3000",
              cwd=tmp_path)
    assert "test accuracy" in out


def test_switch_backends(tmp_path):
    out = run(EXAMPLES / "switch_backends.py", "--epochs", "1", cwd=tmp_path)
    assert "numpy" in out and "max relative difference to numpy 0.0e+00" in out


def test_gpu_checkpoint_on_cpu(tmp_path):
    out = run(EXAMPLES / "gpu_checkpoint_on_cpu.py", "--epochs", "1", "--out", tmp_path / "m.safetensors",
              cwd=tmp_path)
    assert "same predictions: True" in out


def test_parity_example(tmp_path):
    out = run("-m", "pytest", "-q", "-p", "no:cacheprovider", EXAMPLES / "test_parity_example.py", cwd=tmp_path)
    assert "passed" in out and "failed" not in out


def test_custom_layer(tmp_path):
    out = run(EXAMPLES / "custom_layer.py", "--epochs", "2", "--out", tmp_path / "s.safetensors", cwd=tmp_path)
    assert '"class": "examples.Scale.v1"' in out and "loaded Scale: same predictions: True" in out


def test_readme_quick_start(tmp_path):
    """The README's quick start runs as printed (a new user pastes it first), and the model it trains learns."""
    pytest.importorskip("torch")
    readme = (EXAMPLES.parent / "README.md").read_text()
    start = readme.index("## Quick start")
    code = readme[readme.index("```python", start) + len("```python"):]
    code = code[:code.index("```")]
    (tmp_path / "quick_start.py").write_text(code)
    out = run(tmp_path / "quick_start.py", cwd=tmp_path).split()
    val_accuracy, test_accuracy = float(out[0]), float(out[1])
    assert val_accuracy > 0.9 and test_accuracy > 0.9, out
    assert (tmp_path / "digits.safetensors").is_file()
