"""benchmarks/run.py's own logic (no timing): paired ratios, the checkout check, minibatch bounds, outputs."""
import importlib.util
import json
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def run():
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # puts benchmarks/ first on sys.path to import cases.py: undo that after
    if sys.path and sys.path[0] == str(BENCH):
        sys.path.pop(0)
    return mod


def test_paired_ratio_median_and_bootstrap_interval(run):
    pairs = [{"old_s": 1.0, "new_s": r} for r in (0.9, 1.0, 1.1, 0.95, 1.05)] + [{"old_s": None, "new_s": 1.0}]
    out = run.paired_ratio(pairs)
    assert out["pairs"] == 5 and out["ratio_median"] == pytest.approx(1.0)
    lo, hi = out["ratio_ci95"]
    assert 0.9 <= lo <= 1.0 <= hi <= 1.1
    assert run.paired_ratio(pairs) == out  # fixed seed: the same interval every time
    assert run.paired_ratio([])["ratio_median"] is None


def test_worker_refuses_an_xpnet_from_another_checkout(tmp_path):
    """An xpnet worker told to time tmp_path (which holds no xpnet) must stop the run, not time another one."""
    p = subprocess.run([sys.executable, str(BENCH / "run.py"), "--worker", "A", "xpnet-numpy", "float32",
                        "--xpnet-root", str(tmp_path), "--data-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 3
    assert "finds xpnet at" in json.loads(p.stdout.strip().splitlines()[-1])["fatal"]


def test_bounds_equal_the_library_s(run):
    try:
        from xpnet.training import batch_bounds
    except ImportError as exc:
        pytest.skip(f"xpnet.training.batch_bounds moved ({exc})")
    for n, bs, k in ((60000, 1200, None), (60000, 32, None), (60000, None, 50), (1201, 128, None), (7, None, 3)):
        assert sys.modules["cases"].batch_bounds(n, bs, k) == batch_bounds(n, bs, k)


def test_outputs_are_readable_while_the_run_goes(run, tmp_path):
    args = Namespace(json=tmp_path / "b.jsonl", markdown=tmp_path / "b.md", repeats=2, epochs=1, device="cpu",
                     baseline_ref=None)
    out = run.Output(args, (0.0, 0.0, 0.0), None, ["A"])
    out.record(record="meta")
    results = {("A", "float32", "xpnet-numpy"): [{"seconds": [0.1], "median_s": 0.1, "peak_rss_mb": 1.0,
                                                  "rss_after_load_mb": 1.0, "train_rss_increase_mb": 0.0,
                                                  "note": None, "device": "cpu"}],
               ("A", "float32", "numpy-loop"): []}
    out.record(record="run", **results[("A", "float32", "xpnet-numpy")][0])
    out.markdown(*run.summaries(results, {}, {}, None), done=1, total=4)
    assert [json.loads(line)["record"] for line in args.json.read_text().splitlines()] == ["meta", "run"]
    md = args.markdown.read_text()
    assert "PARTIAL: 1 of 4" in md and "0.100 (0.100-0.100)" in md and "not run yet" in md
