"""Training regimes (issue 27): gradient clipping, parameter groups, per-step warmup and decay schedules.

Oracles: PyTorch (torch.optim.AdamW with two parameter groups, torch.nn.utils.clip_grad_norm_, LambdaLR) on the
same network, data and initial weights in float64; nanoGPT's get_lr, written out below from its train.py.
Then: compiled (JAX, torch) equals eager, mpiexec -n 2 equals one process, a resume inside the warmup continues
bit for bit, bad values are refused in one line, and the default path is the plain update."""
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet.groups import NORM, check_groups, layer_param_kinds
from xpnet.parity import default_problem, rel_diff

HERE = Path(__file__).resolve().parent


# nanoGPT's train.py (karpathy/nanoGPT), its learning-rate schedule as written there
def nanogpt_get_lr(it, learning_rate, warmup_iters, lr_decay_iters, min_lr):
    # 1) linear warmup for warmup_iters steps
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    # 2) if it > lr_decay_iters, return min learning rate
    if it > lr_decay_iters:
        return min_lr
    # 3) in between, use cosine decay down to min learning rate
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    assert 0 <= decay_ratio <= 1
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))  # coeff ranges 0..1
    return min_lr + coeff * (learning_rate - min_lr)


LR, WD, CLIP, L2 = 3e-2, 0.1, 0.5, 1e-3
WARMUP, DECAY, MIN_LR = 10, 40, 3e-3  # 50 updates: warmup, cosine to the floor at 40, the floor after


def make(groups="nanogpt", backend="numpy", compile=False, dtype="float64", clip_norm=CLIP, clip_value=None,
         schedule=True):
    opt = xpnet.AdamW(LR, weight_decay=WD, clip_norm=clip_norm, clip_value=clip_value, param_groups=groups)
    return xpnet.Sequential([xpnet.Dense(16, 12), xpnet.Tanh(), xpnet.Dense(12, 4)], optimizer=opt, l2=L2,
                            schedule=xpnet.WarmupCosine(WARMUP, DECAY, MIN_LR) if schedule else None,
                            backend=backend, dtype=dtype, seed=0, compile=compile)


@pytest.fixture(scope="module")
def problem():
    X, y = default_problem(n=160)  # 16 features, 4 classes
    return X.astype(np.float64), y


class NormLog(xpnet.Callback):
    def __init__(self):
        self.norms = []

    def on_batch_end(self, batch, logs=None):
        self.norms.append(float(logs["grad_norm"]))


def test_write_once_against_pytorch_adamw_two_groups_clip_and_warmup_cosine(problem):
    """50 updates (5 epochs of 10 minibatches, in order) against torch.optim.AdamW with two parameter groups
    (weights decayed, biases not; the biases' group at half the rate), clip_grad_norm_ and LambdaLR, the L2
    penalty in the loss (so its gradient is clipped with the data's): parameters within 1e-10, the pre-clip
    norms and the rates too."""
    torch = pytest.importorskip("torch")
    X, y = problem
    groups = [{"kinds": ["weight"]}, {"kinds": ["bias"], "weight_decay": 0.0, "lr_scale": 0.5}]
    for spec, bias_scale in (("nanogpt", 1.0), (groups, 0.5)):
        log = NormLog()
        model = make(spec)
        init = model.get_state()["params"]
        model.fit(X, y, epochs=5, batch_size=16, shuffle=False, callbacks=[log])
        assert model.state.step == 50
        layers = [torch.nn.Linear(16, 12).double(), torch.nn.Linear(12, 4).double()]
        with torch.no_grad():
            for i, lin in zip((0, 2), layers):
                lin.weight.copy_(torch.from_numpy(init[f"layers.{i}.weight"]))
                lin.bias.copy_(torch.from_numpy(init[f"layers.{i}.bias"]))
        weights, biases = [lin.weight for lin in layers], [lin.bias for lin in layers]
        opt = torch.optim.AdamW([{"params": weights, "weight_decay": WD},
                                 {"params": biases, "weight_decay": 0.0, "lr": LR * bias_scale}], lr=LR)
        rate = xpnet.WarmupCosine(WARMUP, DECAY, MIN_LR).rate
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: rate(it, LR) / LR)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(np.asarray(y))
        norms, rates = [], []
        for epoch in range(5):
            for s in range(0, 160, 16):
                rates.append(opt.param_groups[0]["lr"])
                h = torch.tanh(layers[0](Xt[s:s + 16]))
                loss = torch.nn.functional.cross_entropy(layers[1](h), yt[s:s + 16])
                loss = loss + 0.5 * L2 * sum((w * w).sum() for w in weights)
                opt.zero_grad()
                loss.backward()
                norms.append(float(torch.nn.utils.clip_grad_norm_(weights + biases, CLIP)))
                opt.step()
                sched.step()
        got = model.get_state()["params"]
        want = {"layers.0.weight": layers[0].weight, "layers.0.bias": layers[0].bias,
                "layers.2.weight": layers[1].weight, "layers.2.bias": layers[1].bias}
        worst = max(float(np.max(np.abs(got[k] - w.detach().numpy()))) for k, w in want.items())
        assert worst <= 1e-10, worst
        assert max(abs(a - b) / b for a, b in zip(log.norms, norms)) <= 1e-12
        assert min(norms) < CLIP < max(norms)  # some updates clipped, some not
        epoch_means = [sum(norms[10 * e:10 * e + 10]) / 10 for e in range(5)]
        np.testing.assert_allclose(model.history_["grad_norm"], epoch_means, rtol=1e-12)
        np.testing.assert_allclose(model.history_["lr"], [rates[10 * e + 9] for e in range(5)], rtol=1e-14)


def test_the_schedule_is_nanogpts_get_lr_and_lambdalr(problem):
    torch = pytest.importorskip("torch")
    sched = xpnet.WarmupCosine(warmup_steps=10, decay_steps=100, min_lr=6e-5)
    assert [sched.rate(it, 6e-4) for it in range(130)] == [nanogpt_get_lr(it, 6e-4, 10, 100, 6e-5)
                                                            for it in range(130)]
    w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([w], lr=6e-4)
    lam = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: sched.rate(it, 6e-4) / 6e-4)
    for it in range(130):
        assert abs(opt.param_groups[0]["lr"] - sched.rate(it, 6e-4)) <= 1e-15 * 6e-4
        opt.step()
        lam.step()
    linear = xpnet.WarmupLinear(warmup_steps=4, decay_steps=8, min_lr=0.1)
    assert [linear.rate(it, 1.0) for it in range(10)] == [0.2, 0.4, 0.6, 0.8, 1.0, 1.0 - 0.25 * 0.9,
                                                          1.0 - 0.5 * 0.9, 0.1 + 0.25 * 0.9, 0.1, 0.1]
    assert xpnet.WarmupCosine(3).rate(100, 1.0) == 1.0  # no decay_steps: the peak after the warmup


def test_clip_by_value_and_the_penalty_before_clipping(problem):
    """clip_value clips each element of data plus penalty gradient; an update with both clips by norm first."""
    X, y = problem
    model = make(None, clip_norm=None, clip_value=1e-3, schedule=False)
    xb, yb = model.as_input(X[:32]), model.as_targets(y[:32], 32)[0]
    _, _, grads = model.value_and_grads(xb, yb)
    before = model.get_state()["params"]
    model.apply_gradients(grads)
    ref = make(None, clip_norm=None, schedule=False)
    ref.apply_gradients({k: np.clip(g, -1e-3, 1e-3) for k, g in grads.items()})
    after, want = model.get_state()["params"], ref.get_state()["params"]
    assert all(np.array_equal(after[k], want[k]) for k in after) and not np.array_equal(after["layers.0.weight"],
                                                                                       before["layers.0.weight"])
    assert model.state.grad_norm is None


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_compiled_equals_eager_without_retracing(problem, backend):
    """The rate changes every update and the thresholds are arguments: two traces (10 rows per update: none
    short) would be one; a second fit traces nothing more."""
    pytest.importorskip(backend)
    X, y = problem
    kw = dict(epochs=2, batch_size=16, shuffle=False)
    eager = make(backend=backend, clip_value=10.0).fit(X, y, **kw)
    compiled = make(backend=backend, compile=True, clip_value=10.0).fit(X, y, **kw)
    a, b = eager.get_state(), compiled.get_state()
    worst = max(rel_diff(b["params"][k], a["params"][k])[1] for k in a["params"])
    assert worst <= 1e-10, worst
    np.testing.assert_allclose(compiled.history_["grad_norm"], eager.history_["grad_norm"], rtol=1e-10)
    assert compiled.history_["lr"] == eager.history_["lr"] and a["lr"] == b["lr"] and a["step"] == b["step"] == 20
    traces = compiled.compile_traces_
    assert traces >= 1
    compiled.fit(X, y, **kw)
    assert compiled.compile_traces_ == traces


def test_resume_inside_the_warmup_is_bit_identical(problem, tmp_path):
    X, y = problem
    kw = dict(batch_size=16, epochs=3)
    full = make().fit(X, y, **kw)
    part = make().fit(X, y, steps=7, **kw)  # inside the first epoch and the 10-update warmup
    assert part.state.step == 7 and len(part.state.partial_grad_norms) == 7
    resumed = xpnet.load(part.save(tmp_path / "warm.safetensors"))
    resumed.fit(X, y, resume=True, steps=30, batch_size=16)
    a, b = full.get_state(), resumed.get_state()
    assert all(np.array_equal(a["params"][k], b["params"][k]) for k in a["params"])
    assert all(np.array_equal(a["opt_state"][k][m], b["opt_state"][k][m]) for k in a["opt_state"]
               for m in a["opt_state"][k])
    assert a["lr"] == b["lr"] and a["step"] == b["step"] == 30
    for key in ("loss", "accuracy", "lr", "grad_norm"):
        assert resumed.history_[key] == full.history_[key], key
    assert resumed.batch_losses_ == full.batch_losses_


def test_configs_round_trip_and_defaults_stay_as_they_were():
    model = make([{"kinds": ["weight"], "lr_scale": 2.0}, {"kinds": ["bias"], "weight_decay": 0.0}],
                 clip_value=3.0)
    config = xpnet.serialize(model)
    again = xpnet.deserialize(config, "model")
    assert xpnet.serialize(again) == config
    assert config["config"]["optimizer"]["config"]["clip_norm"] == CLIP
    assert config["config"]["schedule"] == {"class": "WarmupCosine.v1",
                                            "config": {"warmup_steps": WARMUP, "decay_steps": DECAY, "min_lr": MIN_LR}}
    # optimizers without the new options keep the configs of earlier versions
    assert xpnet.SGD(0.1, momentum=0.9).get_config() == {"lr": 0.1, "momentum": 0.9, "nesterov": False}
    assert set(xpnet.AdamW().get_config()) == {"lr", "beta1", "beta2", "eps", "weight_decay"}


def test_the_default_path_is_the_plain_update(problem, monkeypatch):
    """No clipping, groups or per-step schedule: the model calls optimizer.hyper and apply as before, and no
    clipping code runs."""
    import xpnet.clipping as clipping
    for name in ("global_norm", "clip_by_norm", "clip_by_value"):
        monkeypatch.setattr(clipping, name, lambda *a, **k: pytest.fail("clipping ran on the default path"))
    X, y = problem
    model = xpnet.Sequential([xpnet.Dense(16, 8), xpnet.Sigmoid(), xpnet.Dense(8, 4)], optimizer="sgd", seed=0)
    model.fit(X, y, epochs=1, batch_size=32)
    assert model.update_plan().plain and "grad_norm" not in model.history_ and model.state.grad_norm is None


@xpnet.register("tests.Table.v1")
class Table(xpnet.Layer):
    """A user layer with a (4, 4) table declared an embedding and a (4,) gain left to the default ("bias")."""

    def __init__(self):
        pass

    def param_shapes(self):
        return {"table": (4, 4), "gain": (4,)}

    def param_kinds(self):
        return {"table": "embedding"}

    def init_params(self, rng, asarray):
        return {"table": asarray(rng.standard_normal((4, 4))), "gain": asarray(np.ones(4))}

    def forward(self, params, x, training=False, need_dx=True, noise=None):
        t, g = params["table"], params["gain"]
        y = (x @ t) * g
        return y, lambda dy: ((dy * g) @ t.T, {"table": x.T @ (dy * g), "gain": xpnet.backend("numpy").xp.sum(
            dy * (x @ t), axis=0)})


def test_groups_follow_the_kinds_layers_declare():
    model = xpnet.Sequential([xpnet.Dense(4, 4), Table(), xpnet.BatchNorm(), xpnet.Dense(4, 3, bias=False)],
                             optimizer=xpnet.AdamW(param_groups="nanogpt"), seed=0)
    assert layer_param_kinds(model.layers[1]) == {"table": "embedding", "gain": "bias"}
    assert model.layers[2].param_kinds() == {"weight": NORM, "bias": "bias"}
    names = lambda plan: [n for _, _, n in plan.groups]  # noqa: E731
    assert names(model.update_plan()) == [["layers.0.weight", "layers.1.table", "layers.3.weight"],
                                          ["layers.0.bias", "layers.1.gain", "layers.2.weight", "layers.2.bias"]]
    model.optimizer = xpnet.AdamW(param_groups="mingpt")
    assert names(model.update_plan()) == [["layers.0.weight", "layers.3.weight"],
                                          ["layers.0.bias", "layers.1.table", "layers.1.gain", "layers.2.weight",
                                           "layers.2.bias"]]
    assert [opt.weight_decay for opt, _, _ in model.update_plan().groups] == [0.01, 0.0]
    assert check_groups("nanogpt")[1] == {"kinds": ("bias", "norm"), "weight_decay": 0.0, "lr_scale": 1.0}


@pytest.mark.parametrize("make_it, message", [
    (lambda: xpnet.AdamW(clip_norm=-1.0), r"^clip_norm=-1\.0: must be a number > 0"),
    (lambda: xpnet.SGD(clip_value=0), r"^clip_value=0: must be a number > 0"),
    (lambda: xpnet.AdamW(param_groups="gpt3"), r"^param_groups='gpt3': unknown grouping rule; choose one of nanogpt, "
                                               r"mingpt"),
    (lambda: xpnet.AdamW(param_groups=[{"kinds": ["weight"]}, {"kinds": ["weight", "bias"]}]),
     r"group 1 names kind 'weight' again"),
    (lambda: xpnet.BookSGD(param_groups="nanogpt"), r"BookSGD has no weight decay to set per group"),
    (lambda: xpnet.WarmupCosine(500, 100), r"^warmup_steps=500: must be less than decay_steps \(100\)"),
    (lambda: xpnet.WarmupCosine(-1), r"^warmup_steps=-1: must be a non-negative integer"),
    (lambda: xpnet.WarmupLinear(10, min_lr=0.1), r"^min_lr=0\.1: needs decay_steps"),
    (lambda: xpnet.Sequential([xpnet.Dense(4, 2)], optimizer=xpnet.SGD(0.1, param_groups=[{"kinds": ["weight"]}]),
                              seed=0).update_plan(), r"parameter layers\.0\.bias is of kind 'bias', which no group "
                                                     r"names"),
    (lambda: xpnet.Sequential([xpnet.Dense(4, 2)], optimizer=xpnet.SGD(0.01), seed=0,
                              schedule=xpnet.WarmupCosine(2, 10, min_lr=0.1)).update_plan(),
     r"^min_lr=0\.1: must not exceed the learning rate 0\.01"),
])
def test_bad_values_are_refused_in_one_line(make_it, message):
    with pytest.raises(xpnet.InputError, match=message) as info:
        make_it()
    assert "\n" not in str(info.value)


def test_cli_flags(tmp_path, capsys):
    from xpnet.cli import main
    history = tmp_path / "h.csv"
    args = ["train", "--epochs", "2", "--quiet", "--optimizer", "adamw", "--lr", "0.003", "--clip-norm", "1",
            "--weight-decay", "0.1", "--param-groups", "mingpt", "--warmup-steps", "5", "--decay-steps", "60",
            "--min-lr", "1e-4", "--lr-decay", "linear", "--history", str(history), "--checkpoint",
            str(tmp_path / "c.safetensors")]
    assert main(args) == 0
    assert history.read_text().splitlines()[0].endswith(",grad_norm")
    model = xpnet.load(tmp_path / "c.safetensors")
    opt, sched = model.optimizer.get_config(), model.schedule
    assert (opt["clip_norm"], opt["weight_decay"], opt["param_groups"]) == (1.0, 0.1, "mingpt")
    assert (type(sched).__name__, sched.warmup_steps, sched.decay_steps, sched.min_lr) == ("WarmupLinear", 5, 60, 1e-4)
    capsys.readouterr()
    for bad, says in ((["--clip-norm", "-1"], "--clip-norm -1.0: must be a number > 0"),
                      (["--warmup-steps", "500", "--decay-steps", "100"], "--warmup-steps 500: must be less than "
                                                                          "decay_steps (100)"),
                      (["--param-groups", "gpt3"], "argument --param-groups: invalid choice: 'gpt3'"),
                      (["--optimizer", "book", "--weight-decay", "0.1"], "--weight-decay 0.1: the optimizer 'book' "
                                                                         "takes no weight_decay"),
                      (["--preset", "book2015", "--clip-norm", "1"], "the book2015 preset is the book's NeuralNetMLP")):
        with pytest.raises(SystemExit) if "invalid choice" in says else _nothing():
            assert main(["train", "--epochs", "1", "--quiet", *bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and says in err, err


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


MPIEXEC = shutil.which("mpiexec")


@pytest.mark.skipif(MPIEXEC is None, reason="needs mpiexec and mpi4py")
def test_two_ranks_equal_one_process():
    """Clipping by the global norm of the all-reduced gradient, groups and the per-step rate: 2 ranks (unequal
    shards of the last minibatch) against one process, float64."""
    pytest.importorskip("mpi4py")
    from test_distributed import env
    proc = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(HERE / "mpi_regimes_worker.py")],
                          capture_output=True, text=True, timeout=120, env=env())
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    import json
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["params"] <= 1e-12 and out["grad_norm"] <= 1e-12 and out["lr_equal"] and out["ranks_identical"], out
