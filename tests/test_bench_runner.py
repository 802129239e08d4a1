"""benchmarks/run.py's own logic (no timing): paired ratios, the checkout check, minibatch bounds, outputs."""
import importlib
import json
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def run():
    """The runner's parts (benchmarks/bench/), as one namespace of the names these tests use."""
    sys.path.insert(0, str(BENCH))  # benchmarks/bench is imported as `bench`, as run.py does: undo that after
    try:
        mods = [importlib.import_module(f"bench.{m}") for m in
                ("cases", "frameworks", "stats", "report", "train_jax", "train_xpnet")]
    finally:
        sys.path.remove(str(BENCH))
    return Namespace(**{k: v for m in mods for k, v in vars(m).items() if not k.startswith("_")})


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
        assert run.batch_bounds(n, bs, k) == batch_bounds(n, bs, k)


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


def test_compiled_rows_are_not_paired_with_a_baseline(run):
    assert [f for f in run.FRAMEWORKS if run.paired_with_baseline(f)] == [
        "xpnet-numpy", "xpnet-torch", "xpnet-jax", "xpnet-array_api_strict"]
    assert run.paired_with_baseline("xpnet-cupy") and not run.paired_with_baseline("jax-jit")
    ok = {"seconds": [0.1], "median_s": 0.1, "peak_rss_mb": 1.0, "rss_after_load_mb": 1.0,
          "train_rss_increase_mb": 0.0, "note": None, "device": "cpu", "first_epoch_s": 2.1, "compile_traces": 2}
    row = run.summarize(run.CASES["C"], "xpnet-jax-jit", "float32", [dict(ok, compile_s=2.0), dict(ok, compile_s=3.0)])
    assert (row["framework"], row["backend"], row["compile_s"], row["compile_traces"]) == ("xpnet", "jax-jit", 2.5, 2)
    grid = run.table([row])
    assert grid[0][-1] == "compile s" and grid[1][-1] == "2.50"


@pytest.mark.parametrize("case", ["C", "D"])
def test_native_jax_jit_trains_as_xpnet_compiled(run, case):
    """jax-jit (written as a JAX user would) and xpnet-jax-jit start from the same weights and see the same
    batches: on a small float64 problem their losses agree to rounding (case D: the book's look-back
    momentum, L2, decaying rate and composed shuffles)."""
    pytest.importorskip("jax")
    import numpy as np
    rng = np.random.default_rng(0)
    n = 100 if case == "D" else 96
    X = rng.random((n, 784)) * (255 if case == "D" else 1)
    y = rng.integers(0, 10, n).astype(np.uint8)
    c = run.CASES[case]
    native = run.run_jax_jit(c, "float64", X, y, 2, "cpu")[2]
    import jax
    assert jax.config.jax_default_matmul_precision is None  # pinned for the run only, not left set
    xpnet_jit = run.run_xpnet(c, "jax", "float64", X, y, 2, "cpu", compile=True)[2]
    assert native["compile_traces"] == xpnet_jit["compile_traces"] == 1
    assert native["last_epoch_loss"] == pytest.approx(xpnet_jit["last_epoch_loss"], rel=1e-12)
    assert native["last_epoch_accuracy"] == xpnet_jit["last_epoch_accuracy"]


def test_native_jax_lenet5_trains_as_xpnet_jax(run):
    """Case F on jax-jit (LeNet-5 written natively in JAX) starts from xpnet's weights and sees xpnet's batches:
    on 256 random rows (two minibatches of 128) in float32 its first step's loss equals xpnet-jax's to 1e-5,
    and after two epochs (four updates, momentum) the last epoch's loss and accuracy too."""
    pytest.importorskip("jax")
    import numpy as np
    import xpnet
    from xpnet.models.presets import lenet5_layers
    rng = np.random.default_rng(1)
    X = rng.random((256, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 256).astype(np.uint8)
    c = run.CASES["F"]
    assert run.applicable(c, "jax-jit") is None and run.applicable(c, "numpy-loop") is not None
    native = run.run_jax_jit(c, "float32", X, y, 1, "cpu")[2]  # 1 timed epoch after the compiling one: 4 steps

    class StepLosses(xpnet.Callback):
        def __init__(self):
            self.losses = []

        def on_batch_end(self, batch, logs=None):
            self.losses.append(float(logs["loss"]))

    steps = StepLosses()

    model = xpnet.Sequential([xpnet.deserialize(s, "layer") for s in lenet5_layers(10)],
                             loss=xpnet.SoftmaxCrossEntropy(reduction=c.reduction),
                             optimizer=xpnet.SGD(c.lr, momentum=c.momentum), backend="jax", device="cpu",
                             dtype="float32", seed=0, input_shape=(1, 28, 28))
    model.fit(X, y, epochs=2, batch_size=c.batch_size, callbacks=[steps])
    assert len(steps.losses) == 4
    assert native["first_step_loss"] == pytest.approx(steps.losses[0], rel=1e-5)
    assert native["last_epoch_loss"] == pytest.approx(model.history_["loss"][-1], rel=1e-5)
    assert native["last_epoch_accuracy"] == model.history_["accuracy"][-1]


def test_an_experiment_folder_gets_a_manifest(tmp_path, monkeypatch):
    """--experiment NAME: outputs in benchmarks/results/DATE-NAME/, and the run's entry in its manifest.json
    (written as it starts, replaced when it ends), with what tests/test_bench_results.py requires."""
    sys.path.insert(0, str(BENCH))
    try:
        results = importlib.import_module("bench.results")
    finally:
        sys.path.remove(str(BENCH))
    monkeypatch.setattr(results, "RESULTS", tmp_path)
    args = Namespace(experiment="smoke", json=None, markdown=None)
    folder = results.experiment_outputs(args)
    assert folder.parent == tmp_path and folder.name.endswith("-smoke")
    assert (args.json.name, args.markdown.name) == ("bench.jsonl", "bench.md")
    assert results.experiment_folder(args.markdown, args.json) == folder
    assert results.experiment_folder(tmp_path / "flat.md") is None and results.experiment_folder(None) is None
    for status in ("running", "complete"):
        results.record_run(folder, [args.json, args.markdown], commit="abc", load_before=0.5, load_after=0.7,
                           status=status)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["experiment"] == folder.name and manifest["cited_by"] == []
    [run] = manifest["runs"]
    assert run["files"] == ["bench.jsonl", "bench.md"] and run["status"] == "complete" and run["commit"] == "abc"
    assert {"date", "cpu", "cpus", "cpu_flags", "threads", "load_before", "load_after", "command"} <= set(run)


def test_case_g_native_torch_is_the_resnet_fashion_network(run):
    """Case G (issue 30): the native PyTorch ResNet (torch.nn BasicBlocks) is xpnet's resnet-fashion network: from
    xpnet's initial weights, in float64 and training mode (BatchNorm on the batch's statistics), the same loss and
    every parameter's gradient to 1e-10; its FLOP table is the preset's convolutions; the rows that have no ResNet
    say so; both rows train a few minibatches of random images."""
    torch = pytest.importorskip("torch")
    import numpy as np
    import xpnet
    from xpnet import Conv2D
    from xpnet.layers.combinators import walk
    from xpnet.models.presets import resnet_fashion_layers
    sys.path.insert(0, str(BENCH))
    try:
        train_torch = importlib.import_module("bench.train_torch")
    finally:
        sys.path.remove(str(BENCH))
    c = run.CASES["G"]
    assert run.applicable(c, "torch") is None and run.applicable(c, "xpnet-numpy") is None
    assert "ResNet" in run.applicable(c, "jax-jit") and run.applicable(c, "numpy-loop") is not None
    params = c.initial_params()
    model = xpnet.Sequential([xpnet.deserialize(s, "layer") for s in resnet_fashion_layers(10)], dtype="float64",
                             input_shape=(1, 28, 28), seed=0)
    model.set_parameters(params)
    convs = [leaf for layer in model.layers for _, leaf in walk(layer) if isinstance(leaf, Conv2D)]
    per_sample = sum(2 * leaf.out_channels * leaf.in_channels * int(np.prod(leaf.kernel)) *
                     int(np.prod(leaf.output_shape[1:])) * (2 if i == 0 else 3) for i, leaf in enumerate(convs))
    assert c.flops(1) == per_sample + 2 * 64 * 10 * 3
    rng = np.random.default_rng(0)
    X, y = rng.random((6, 1, 28, 28)), np.arange(6) % 10
    value, _, grads = model.value_and_grads(X, model.as_targets(y, 6)[0])
    net = train_torch.resnet(params, torch.float64)
    loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(X)), torch.from_numpy(y))
    loss.backward()
    assert abs(float(value) - loss.item()) <= 1e-10 * loss.item()
    for name, p in zip(params, net.parameters()):
        want = p.grad.numpy()
        assert np.abs(grads[name] - want).max() <= 1e-10 * np.abs(want).max(), name
    X32, y8 = rng.random((384, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 384).astype(np.uint8)
    assert len(train_torch.run_torch(c, "float32", X32, y8, 1, "cpu")[0]) == 1
    seconds, what, last = run.run_xpnet(c, "numpy", "float32", X32, y8, 1, "cpu")
    assert len(seconds) == 1 and np.isfinite(last["last_epoch_loss"])


def test_gemm_floor_times_the_products_xpnet_computes(run):
    """The gemm-floor row of the convolutional cases: every Conv2D, nested ones included, with its three products
    (no input gradient for the first), the input gradient of a stride-1 same-size one from columns of dy."""
    sys.path.insert(0, str(BENCH))
    try:
        train_numpy = importlib.import_module("bench.train_numpy")
    finally:
        sys.path.remove(str(BENCH))
    assert train_numpy.conv_gemm_shapes(run.CASES["F"]) == [(6, 1, 25, 784, False, True), (16, 6, 25, 100, True, False)]
    g = train_numpy.conv_gemm_shapes(run.CASES["G"])
    assert len(g) == 11 and g[0] == (16, 1, 9, 784, False, True) and all(row[4] for row in g[1:])
    assert [row[5] for row in g].count(True) == 7  # the stem and the six stride-1 3x3 convolutions of the blocks
    assert train_numpy.conv_gemm_shapes(run.CASES["B"]) == []
    assert run.applicable(run.CASES["G"], "gemm-floor") is None


def test_mixed_precision_rows_are_xpnet_eager_and_native_torch(run):
    """--dtypes float32,bf16-mixed: the mixed policies run float32 data on xpnet's eager rows (precision=) and native
    torch (torch.autocast); every other row says why not."""
    c = run.CASES["B"]
    assert run.storage_dtype("bf16-mixed") == run.storage_dtype("float32") == "float32"
    assert run.storage_dtype("float64") == "float64"
    assert run.applicable(c, "xpnet-torch", "cpu", "bf16-mixed") is None
    assert run.applicable(c, "torch", "cpu", "fp16-mixed") is None
    for f in ("xpnet-torch-compile", "numpy-loop", "jax-jit", "gemm-floor"):
        assert "bf16-mixed" in run.applicable(c, f, "cpu", "bf16-mixed")
    assert run.applicable(c, "numpy-loop", "cpu", "float32") is None
