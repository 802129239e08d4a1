"""The GPT benchmark's native PyTorch model (benchmarks/bench/gpt_torch.py) is the model and recipe of xpnet's GPT:
nanoGPT's parameter count; from xpnet's initial weights in float64, the same loss, the same gradient of every
parameter, and the same parameters after three updates of AdamW with its decay rule, the warmup and cosine rate
and clipping, on the batches xpnet draws (xpnet.data.text.block_offsets). So the benchmark's loss and time rows
compare the same computation."""
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def gpt_torch():
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module("bench.gpt_torch")
    finally:
        sys.path.remove(str(BENCH))


def _torch_name(name: str, layers: int) -> str:
    """xpnet's dotted parameter name -> the native model's."""
    parts = name.split(".")
    i = int(parts[1])
    if i in (0, 1):
        return ("wte", "wpe")[i] + ".weight"
    if i == 2 + 2 * layers:
        return "ln_f.weight"
    block, attn = (i - 2) // 2, i % 2 == 0
    j, leaf = int(parts[3]), parts[4]
    if attn:
        return f"blocks.{block}." + ("ln1.weight" if j == 0 else
                                    "attn.qkv.weight" if leaf == "in_proj_weight" else "attn.proj.weight")
    return f"blocks.{block}." + {0: "ln2.weight", 1: "fc.weight", 3: "proj.weight"}[j]


def test_the_native_cpu_model_has_nanogpts_parameter_count(gpt_torch):
    from xpnet.models.gpt import nanogpt_parameters
    net = gpt_torch.build(65, 64, 4, 4, 128, seed=0)
    assert gpt_torch.parameter_count(net, positions=False) == nanogpt_parameters(65, 64, 4, 128) == 795_904
    assert gpt_torch.parameter_count(net) == 804_096


def test_the_native_gpt_is_xpnets_in_lockstep(gpt_torch):
    from xpnet.data.text import TextBlocks, block_offsets
    from xpnet.models.gpt import gpt
    from xpnet.training import RandomBatches
    V, T, L, H, D, B, steps = 11, 6, 2, 2, 8, 4, 3
    blocks = TextBlocks(np.random.default_rng(0).integers(0, V, 300), T)
    recipe = dict(lr=3e-2, weight_decay=0.1, warmup_steps=1, decay_steps=3, min_lr=1e-3, clip_norm=0.05)
    m = gpt(V, T, layers=L, heads=H, dim=D, backend="numpy", dtype="float64", seed=4, **recipe)
    net = gpt_torch.build(V, T, L, H, D, seed=0).double()
    named = dict(net.named_parameters())
    with torch.no_grad():
        for k, v in m.parameters().items():
            named[_torch_name(k, L)].copy_(torch.from_numpy(np.asarray(v)))
    assert len(named) == len(m.parameters())
    # one gradient, every parameter
    x, y = blocks.__getitems__(block_offsets(0, seed=7, n_blocks=len(blocks), batch=B, block=T, steps_per_epoch=10))
    value, _, grads = m.value_and_grads(m.bk.asarray(x), m.bk.asarray(y), indices=True, penalty=False)
    loss = net(torch.from_numpy(x), torch.from_numpy(y))
    loss.backward()
    assert abs(float(value) - loss.item()) < 1e-12
    for k, g in grads.items():
        assert np.max(np.abs(np.asarray(g) - named[_torch_name(k, L)].grad.numpy())) < 1e-12, k
    # three updates of the recipe (clipping active: the threshold is below the gradients' norm)
    opt = gpt_torch.optimizer(net, lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    for i in range(steps):
        for group in opt.param_groups:
            group["lr"] = gpt_torch.rate(i, lr=recipe["lr"], warmup=1, decay_steps=3, min_lr=recipe["min_lr"])
        x, y = blocks.__getitems__(block_offsets(i, seed=7, n_blocks=len(blocks), batch=B, block=T,
                                                 steps_per_epoch=10))
        opt.zero_grad(set_to_none=True)
        loss = net(torch.from_numpy(x), torch.from_numpy(y))
        loss.backward()
        assert float(torch.nn.utils.clip_grad_norm_(net.parameters(), recipe["clip_norm"])) > recipe["clip_norm"]
        opt.step()
    m.fit(blocks, None, steps=steps, source=RandomBatches(B, seed=7, steps_per_epoch=10))
    for k, v in m.parameters().items():
        assert np.max(np.abs(np.asarray(v) - named[_torch_name(k, L)].detach().numpy())) < 1e-12, k


def test_the_time_mode_runs_its_workers_interleaved(tmp_path):
    """benchmarks/gpt_shakespeare.py time: a worker per framework, the rounds interleaved, a JSON line per round
    and a summary per framework with its ratio to the first."""
    import json
    import os
    import subprocess
    data = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare" / "input.txt"
    if not data.is_file():
        pytest.skip(f"needs Tiny Shakespeare at {data}")
    out = tmp_path / "time.jsonl"
    r = subprocess.run([sys.executable, str(BENCH / "gpt_shakespeare.py"), "time", "--frameworks", "torch,xpnet-numpy",
                        "--steps", "1", "--rounds", "2", "--warmup", "1", "--out", str(out)],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(row["round"], row["framework"]) for row in rows[:4]] == [
        (1, "torch"), (1, "xpnet-numpy"), (2, "torch"), (2, "xpnet-numpy")]
    summary = rows[4:]
    assert [s["framework"] for s in summary] == ["torch", "xpnet-numpy"] and summary[0]["ratio_to_torch"] == 1.0
    assert all(s["median_seconds_per_step"] > 0 for s in summary)
