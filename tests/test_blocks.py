"""Residual, branching and nested blocks (xpnet/layers/combinators.py) and nested, shared parameters in a model:
every combinator against PyTorch autograd in float64 (outputs and every gradient), parity of a residual network on
every CPU backend (compiled included), configs, checkpoints across backends, penalties and parameter kinds on
nested layers, and the refusals of bad compositions. The combinators' gradchecks on every backend are the layer
contract test's (tests/test_layers_api.py, from each combinator's examples())."""
import json

import numpy as np
import pytest

import xpnet
from fakes import installed
from xpnet import Add, BatchNorm, Chain, Concatenate, Conv2D, Dense, Residual
from xpnet.layers.combinators import walk
from xpnet.parity import rel_diff

from test_distributed import HERE, last_json, mpirun, needs_mpi

torch = pytest.importorskip("torch")
F = torch.nn.functional
TOL = 1e-10


CPU_BACKENDS = [b for b in ("numpy", "array_api_strict", "torch", "jax") if installed(b)]


def _torch_forward(layer, params, x, uses):
    """An independent forward of xpnet layers in PyTorch (autograd does the backward). params: {dotted name:
    tensor}; a layer instance used again takes the tensors of its first use (`uses`: id -> its dotted prefix)."""
    kids = layer.sublayers()
    if kids:
        outs = []
        for name, child in kids:
            prefix = uses.setdefault(id(child), f"{uses[id(layer)]}{name}.")
            outs.append((name, child, prefix))
        if isinstance(layer, Chain):
            for _, child, _ in outs:
                x = _torch_forward(child, params, x, uses)
            return x
        ys = [_torch_forward(child, params, x, uses) for _, child, _ in outs]
        if isinstance(layer, Concatenate):
            return torch.cat(ys, dim=layer.axis)
        if isinstance(layer, Residual) and len(ys) == 1:
            return ys[0] + x
        return sum(ys[1:], ys[0])
    p = {k[len(uses[id(layer)]):]: v for k, v in params.items() if k.startswith(uses[id(layer)])
         and "." not in k[len(uses[id(layer)]):]}
    kind = type(layer).__name__
    if kind == "Dense":
        return F.linear(x, p["weight"], p.get("bias"))
    if kind == "Conv2D":
        top, bottom, left, right = layer.pads
        return F.conv2d(F.pad(x, (left, right, top, bottom)), p["weight"], p.get("bias"), stride=layer.strides)
    if kind == "BatchNorm":
        return F.batch_norm(x, None, None, p["weight"], p["bias"], training=True, eps=layer.eps)
    return {"Tanh": torch.tanh, "ReLU": torch.relu, "Identity": lambda t: t, "Sigmoid": torch.sigmoid,
            "Flatten": lambda t: t.reshape(t.shape[0], -1), "GlobalAvgPool2D": lambda t: t.mean(dim=(2, 3)),
            "AvgPool2D": lambda t: F.avg_pool2d(t, layer.kernel, layer.strides),
            "MaxPool2D": lambda t: F.max_pool2d(t, layer.kernel, layer.strides)}[kind](x)


def _check_against_torch(layer, input_shape, batch=3, seed=0):
    """layer's forward and backward on NumPy float64 against PyTorch autograd: output, input gradient and every
    parameter gradient within TOL (relative to the largest value, parity's metric)."""
    layer.build(input_shape)
    rng = np.random.default_rng(seed)
    bk = xpnet.backend("numpy")
    params = layer.init_params(rng, lambda a: np.asarray(a, dtype=np.float64))
    x = rng.standard_normal((batch, *input_shape))
    y, back = layer.forward(params, x, training=True)
    dy = rng.standard_normal(y.shape)
    dx, grads = back(dy)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    tx = torch.tensor(x, requires_grad=True)
    ty = _torch_forward(layer, tp, tx, {id(layer): ""})
    ty.backward(torch.tensor(dy))
    assert set(grads) == set(params)
    diffs = {"y": rel_diff(bk.to_numpy(y), ty.detach().numpy())[1], "dx": rel_diff(dx, tx.grad.numpy())[1]}
    diffs.update({k: rel_diff(grads[k], tp[k].grad.numpy())[1] for k in params})
    assert max(diffs.values()) <= TOL, diffs
    return diffs


# shapes and nestings no other test uses: wide and narrow features, odd image sizes, three-deep nesting
ORACLE_CASES = {
    "chain in chain": (lambda: Chain([Dense(5, 7), xpnet.Tanh(), Chain([Dense(7, 2), xpnet.Sigmoid(), Dense(2, 6)])]),
                       (5,)),
    "add of three": (lambda: Add([Dense(6, 4), Chain([Dense(6, 3), xpnet.ReLU(), Dense(3, 4)]),
                                  Chain([Dense(6, 4), xpnet.Tanh()])]), (6,)),
    "concatenate features": (lambda: Concatenate([Dense(4, 1), Chain([Dense(4, 5), xpnet.Tanh()]), xpnet.Identity()]),
                             (4,)),
    "concatenate channels": (lambda: Concatenate([Conv2D(3, 2, 3, padding=1), xpnet.MaxPool2D(1),
                                                  Chain([Conv2D(3, 4, (1, 3), padding=(0, 1)), xpnet.ReLU()])], axis=1),
                             (3, 5, 7)),
    "concatenate height": (lambda: Concatenate([Conv2D(2, 2, 3, padding=1), Conv2D(2, 2, (2, 1))], axis=2), (2, 4, 3)),
    "residual identity": (lambda: Residual(Chain([Conv2D(2, 2, 3, padding=1, bias=False), BatchNorm(), xpnet.Tanh()])),
                          (2, 5, 6)),
    "residual strided shortcut": (lambda: Residual(Chain([Conv2D(3, 5, 3, stride=2, padding=1), xpnet.ReLU(),
                                                          Conv2D(5, 5, 3, padding=1)]),
                                                   shortcut=Chain([Conv2D(3, 5, 1, stride=2, bias=False), BatchNorm()])),
                                  (3, 7, 5)),
    "residual in residual": (lambda: Residual(Chain([Dense(4, 4), xpnet.Tanh(), Residual(Add([Dense(4, 4),
                                                                                             Dense(4, 4)]))])), (4,)),
}


@pytest.mark.parametrize("case", list(ORACLE_CASES))
def test_combinators_match_torch_autograd(case):
    make, shape = ORACLE_CASES[case]
    _check_against_torch(make(), shape)


def test_a_layer_used_twice_is_one_parameter_with_summed_gradients():
    """Tied weights: one Dense in a Chain twice and in a branch, one parameter under its first use's name;
    PyTorch autograd with the one tensor used three times gives the same gradient."""
    tied = Dense(3, 3)
    block = Chain([tied, xpnet.Tanh(), Add([tied, Chain([Dense(3, 3), tied])])])
    diffs = _check_against_torch(block, (3,), batch=4, seed=3)
    assert [k for k in diffs if k not in ("y", "dx")] == ["0.weight", "0.bias", "2.1.0.weight", "2.1.0.bias"]


def _tiny_resnet(bk="numpy", dtype="float64", batch_norm=True, seed=0, **options):
    tied = Dense(6, 6)
    norm = [BatchNorm()] if batch_norm else []
    layers = [Conv2D(1, 3, 3, padding=1), xpnet.ReLU(),
              Residual(Chain([Conv2D(3, 3, 3, padding=1, bias=not batch_norm), *norm, xpnet.Tanh()])),
              Residual(Chain([Conv2D(3, 4, 3, stride=2, padding=1), xpnet.Tanh()]), shortcut=Conv2D(3, 4, 1, stride=2)),
              Concatenate([xpnet.GlobalAvgPool2D(), Chain([xpnet.MaxPool2D(3), xpnet.Flatten()])]),
              Dense(8, 6), xpnet.Tanh(), tied, xpnet.Tanh(), tied, Dense(6, 3)]
    options.setdefault("optimizer", xpnet.Adam(0.01))
    return xpnet.Sequential(layers, backend=bk, dtype=dtype, seed=seed, input_shape=(1, 6, 6), **options)


def _images(n=24, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 1, 6, 6))
    return X, (X[:, 0, :3].sum(axis=(1, 2)) > 0).astype(int) + (X[:, 0, 3:].sum(axis=(1, 2)) > 0)


def test_a_nested_model_against_torch_autograd():
    """The whole model's loss and every gradient (the shared Dense's summed over its two uses) against PyTorch."""
    model = _tiny_resnet()
    X, y = _images(8)
    Y, _ = model.as_targets(y, len(y))
    value, _, grads = model.value_and_grads(X, Y)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in model.parameters().items()}
    uses = {id(model.layers[0]): "layers.0."}
    z = torch.tensor(X)
    for i, layer in enumerate(model.layers):
        uses.setdefault(id(layer), f"layers.{i}.")
        z = _torch_forward(layer, tp, z, uses)
    loss = F.cross_entropy(z, torch.tensor(y))
    loss.backward()
    assert "layers.9.weight" not in grads and "layers.7.weight" in grads
    assert abs(float(value) - loss.item()) <= TOL * abs(loss.item())
    for k, g in grads.items():
        assert rel_diff(g, tp[k].grad.numpy())[1] <= TOL, k


def test_residual_network_parity_on_every_cpu_backend():
    """xpnet parity --model resnet (BatchNorm, Dropout inside a block, a strided shortcut, Concatenate, a shared
    Dense): float64 lockstep within 1e-10 of NumPy on every installed CPU backend."""
    report = xpnet.parity(model="resnet", backends=CPU_BACKENDS, dtypes=["float64"], steps=2)
    assert report["passed"], [(r["label"], r["max_rel_diff"], r.get("error")) for r in report["results"]]
    assert {r["backend"] for r in report["results"]} == set(CPU_BACKENDS)
    assert all(r["max_rel_diff"] <= 1e-10 for r in report["results"])


@pytest.mark.parametrize("name", [b for b in ("jax", "torch") if installed(b)])
def test_residual_network_parity_compiled(name):
    report = xpnet.parity(model="resnet", backends=[name], dtypes=["float64"], steps=2, compile=True)
    rows = {r["label"]: r for r in report["results"]}
    assert report["passed"] and rows[f"{name} (compiled)"]["max_rel_diff"] <= 1e-10, rows


def test_names_kinds_penalties_and_kernels_of_nested_layers():
    model = _tiny_resnet("torch" if installed("torch") else "numpy", l2=1e-3)
    names = list(model.parameters())
    assert names[:6] == ["layers.0.weight", "layers.0.bias", "layers.2.block.0.weight", "layers.2.block.1.weight",
                         "layers.2.block.1.bias", "layers.3.block.0.weight"]
    assert "layers.3.shortcut.weight" in names and "layers.9.weight" not in names  # the tied Dense: layers.7
    assert list(model.state.layer_state) == ["layers.2.block.1.running_mean", "layers.2.block.1.running_var"]
    # L1/L2 apply to every weight a nested layer declares, once per shared parameter
    assert model._penalized == ["layers.0.weight", "layers.2.block.0.weight", "layers.3.block.0.weight",
                                "layers.3.shortcut.weight", "layers.5.weight", "layers.7.weight", "layers.10.weight"]
    from xpnet.groups import layer_param_kinds
    assert layer_param_kinds(model.layers[2]) == {"block.0.weight": "weight", "block.1.weight": "norm",
                                                  "block.1.bias": "bias"}
    # weight-decay groups by kind reach nested and shared parameters, each once
    grouped = _tiny_resnet(optimizer=xpnet.AdamW(0.01, weight_decay=0.1, param_groups="nanogpt"))
    groups = {opt.weight_decay: names for opt, _, names in grouped.update_plan().groups}
    assert sorted(groups[0.1] + groups[0.0]) == sorted(grouped.parameters())
    assert groups[0.1] == grouped._penalized and "layers.2.block.1.weight" in groups[0.0]
    if model.bk.name == "torch":
        used = model.kernels_used()
        assert used["layers.2.block.0"] == "conv2d" and used["layers.3.shortcut"] == "conv2d"


def test_l2_on_nested_weights_is_the_flat_formula():
    model = _tiny_resnet(l2=0.1, batch_norm=False)
    X, y = _images(6)
    Y, _ = model.as_targets(y, len(y))
    with_penalty = model.value_and_grads(X, Y)[0]
    without = model.value_and_grads(X, Y, penalty=False)[0]
    p = model.parameters()
    want = 0.1 / 2 * sum(float((p[k] ** 2).sum()) for k in model._penalized)  # Penalty: l2/2 * sum of squares
    assert model.penalty.cost(np, [p[k] for k in model._penalized]) == pytest.approx(want, rel=1e-12)
    assert float(with_penalty - without) == pytest.approx(want, rel=1e-9)


def test_config_json_round_trip_keeps_nesting_and_sharing():
    model = _tiny_resnet()
    spec = json.loads(json.dumps(xpnet.serialize(model)))
    layers = spec["config"]["layers"]
    assert layers[9] == {"shared": "layers.7"} and layers[2]["class"] == "Residual.v1"
    again = xpnet.model_from_config(spec, "numpy")
    assert again.layers[9] is again.layers[7] and again.get_config() == model.get_config()
    for k, v in model.parameters().items():
        np.testing.assert_array_equal(again.parameters()[k], v)
    # sharing inside a block, in a standalone layer config
    tied = Dense(2, 2)
    block = Chain([tied, Residual(Chain([tied]))])
    cfg = json.loads(json.dumps(block.get_config()))
    assert cfg["layers"][1]["config"]["block"]["config"]["layers"] == [{"shared": "0"}]
    rebuilt = xpnet.deserialize({"class": "Chain", "config": cfg}, "layer")
    assert rebuilt.layers[1].block.layers[0] is rebuilt.layers[0]


@pytest.mark.parametrize("writer, reader", [("numpy", "torch"), ("torch", "jax")])
def test_a_nested_checkpoint_loads_on_another_backend(tmp_path, writer, reader):
    if not (installed(writer) and installed(reader)):
        pytest.skip("needs both backends")
    X, y = _images(30)
    model = _tiny_resnet(writer, "float32")
    model.fit(X.astype("float32"), y, epochs=2, batch_size=10)
    path = model.save(tmp_path / "m.safetensors")
    again = xpnet.load(path, backend=reader)
    assert again.layers[9] is again.layers[7]
    assert list(again.state.layer_state) == list(model.state.layer_state)
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    assert rel_diff(again.predict_proba(X), model.predict_proba(X))[1] <= 1e-4  # float32 parity tolerance


def test_exact_resume_of_a_nested_model(tmp_path):
    X, y = _images(30)
    straight = _tiny_resnet()
    straight.fit(X, y, epochs=2, batch_size=10)
    first = _tiny_resnet()
    first.fit(X, y, epochs=1, batch_size=10)
    path = first.save(tmp_path / "m.safetensors")
    resumed = xpnet.load(path)
    resumed.fit(X, y, epochs=2, batch_size=10, resume=True)
    for k, v in straight.parameters().items():
        np.testing.assert_array_equal(resumed.parameters()[k], v)
    for k, v in straight.state.layer_state.items():
        np.testing.assert_array_equal(resumed.state.layer_state[k], v)


# bad compositions: refused when built, in one line that names the layers
BAD = {
    "add shapes": (lambda: Add([Dense(3, 2), Dense(3, 4)]), (3,), r"Add: branch outputs must agree, but 0 \(Dense\) "
                                                                  r"gives \(2,\), 1 \(Dense\) gives \(4,\)"),
    "shortcut shape": (lambda: Residual(Conv2D(2, 4, 3, stride=2, padding=1), shortcut=Conv2D(2, 4, 1)), (2, 6, 6),
                       r"Residual: branch outputs must agree, but block \(Conv2D\) gives \(4, 3, 3\), shortcut "
                       r"\(Conv2D\) gives \(4, 6, 6\)"),
    "identity shortcut": (lambda: Residual(Chain([Dense(3, 5), xpnet.ReLU()])), (3,),
                          r"Residual: block \(Chain\(Dense, ReLU\)\) gives \(5,\) from input \(3,\), so the identity "
                          r"shortcut does not fit"),
    "concatenate": (lambda: Concatenate([Conv2D(1, 2, 3), Conv2D(1, 2, 1)]), (1, 5, 5),
                    r"Concatenate\(axis=1\): branch outputs must agree, but 0 \(Conv2D\) gives \(2, 3, 3\), 1 "
                    r"\(Conv2D\) gives \(2, 5, 5\)"),
    "batch axis": (lambda: Concatenate([Dense(2, 2), Dense(2, 2)], axis=0), (2,), r"axis 0 is the batch"),
    "inner layer": (lambda: Chain([Dense(3, 4), Residual(Dense(5, 5))]), (3,), r"Chain.1 \(Residual\): Residual.block "
                                                                               r"\(Dense\): Dense expects"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_compositions_are_refused_at_build_in_one_line(case):
    make, shape, message = BAD[case]
    with pytest.raises(xpnet.InputError, match=message) as info:
        make().build(shape)
    assert "\n" not in str(info.value)


def test_a_cycle_and_a_shared_batch_norm_are_refused():
    outer = Chain([Dense(2, 2)])
    outer.layers.append(Residual(outer))
    with pytest.raises(xpnet.InputError, match=r"Residual contains itself through its child 'block' \(Chain\): a cycle"):
        outer.build((2,))
    norm = BatchNorm()
    with pytest.raises(xpnet.InputError, match=r"BatchNorm is used twice \(its running_mean at 0.running_mean and at "
                                               r"2.running_mean\); a layer with running statistics cannot be shared"):
        Chain([norm, xpnet.ReLU(), norm]).build((3,))
    with pytest.raises(xpnet.InputError, match=r"layers.1: \{\"shared\": 'layers.5'\} names no layer made before it"):
        xpnet.model_from_config({"class": "Sequential", "config": {"layers": [
            {"class": "Dense", "config": {"in_features": 2, "out_features": 2}}, {"shared": "layers.5"}]}})


def test_checkpoint_format_3_reads_format_2(tmp_path):
    """Format 3 (nested and shared layer configs) is what a model saves; a format-2 file (written before the
    combinators) still loads and predicts: the fixture in tests/fixtures of a CNN with BatchNorm."""
    from xpnet.saving.checkpoint import FORMAT_VERSION, read
    assert FORMAT_VERSION == 3
    model = _tiny_resnet(batch_norm=False)
    assert read(model.save(tmp_path / "m.safetensors"))[0]["format_version"] == 3
    from pathlib import Path
    old = xpnet.load(Path(__file__).parent / "fixtures" / "v0.2.0.dev0-premove-cnn.safetensors")
    assert old.checkpoint_meta_["format_version"] == 2
    again = xpnet.load(old.save(tmp_path / "old.safetensors"))
    assert again.checkpoint_meta_["format_version"] == 3 and again.get_config() == old.get_config()


def test_onnx_export_of_a_nested_model_in_onnx_runtime(tmp_path):
    """Residual blocks (BatchNorm's trained statistics inside one), Concatenate and a tied Dense as ONNX Add and
    Concat nodes; ONNX Runtime's probabilities within float32 tolerance of xpnet's, the same labels."""
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("ndonnx")
    from xpnet.export.onnx import export_checkpoint
    X, y = _images(40)
    model = _tiny_resnet(dtype="float32").fit(X.astype("float32"), y, epochs=2, batch_size=10)
    assert not np.allclose(model.state.layer_state["layers.2.block.1.running_var"], 1.0)
    onnx_path = tmp_path / "m.onnx"
    export_checkpoint(str(model.save(tmp_path / "m.safetensors")), str(onnx_path))
    ops = [n.op_type for n in onnx.load(str(onnx_path)).graph.node]
    assert ops.count("Add") >= 2 and "Concat" in ops and ops.count("Gemm") == 4  # the tied Dense twice
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    probabilities, labels = session.run(["probabilities", "label"], {"input": X.astype(np.float32)})
    assert rel_diff(probabilities, model.predict_proba(X))[1] <= 1e-5
    assert np.array_equal(labels, model.predict(X))


@needs_mpi
def test_data_parallel_residual_network_is_the_one_process_fit():
    """mpiexec -n 2: a residual network without BatchNorm (Dropout inside a block, a tied Dense) trained on two
    ranks equals the one-process fit to rounding, every rank bit-identical (tests/mpi_blocks_worker.py)."""
    out = last_json(mpirun(2, HERE / "mpi_blocks_worker.py", "numpy", "float64", timeout=120))
    assert out["ranks"] == 2 and out["steps"] == 10 and out["ranks_identical"] and out["accuracy_equal"]
    assert out["params"] <= 1e-12 and out["batch_losses"] <= 1e-12, out
    assert "layers.3.shortcut.weight" in out["names"] and "layers.9.weight" not in out["names"]


def test_data_parallel_refuses_batch_norm_inside_a_block():
    """resnet-fashion's blocks hold BatchNorm: data-parallel training refuses it, naming the nested statistics."""
    from xpnet.distributed.data_parallel import refuse_layer_state
    with pytest.raises(xpnet.InputError, match=r"layer 2 \(Residual\) keeps batch statistics \(block.1.running_mean, "
                                               r"block.1.running_var\)"):
        refuse_layer_state(_tiny_resnet())


def test_resnet_fashion_preset_and_its_example_file():
    """The preset's architecture (~13.0 M multiply-adds per sample forward against fashion-cnn's ~12.0 M: the
    count below), and examples/resnet_fashion.json, the same model as an editable file."""
    from pathlib import Path
    from xpnet.models.presets import DEFAULTS, PRESETS, model_spec
    cfg = dict(DEFAULTS, **PRESETS["resnet-fashion"].settings)
    spec = model_spec(784, 10, cfg)
    model = xpnet.model_from_config(spec, "numpy")
    assert model.input_shape == (1, 28, 28) and model.n_outputs == 10
    assert sum(int(np.prod(v.shape)) for v in model.parameters().values()) == 165626
    assert [type(layer).__name__ for layer in model.layers].count("Residual") == 4
    assert len(model.state.layer_state) == 2 * 11  # 11 BatchNorms: stem, 2 per block, 2 shortcuts

    def macs(layer):
        total = 0
        for _, leaf in walk(layer):
            if isinstance(leaf, Conv2D):
                total += int(np.prod(leaf.output_shape)) * leaf.in_channels * int(np.prod(leaf.kernel))
            elif isinstance(leaf, Dense):
                total += leaf.in_features * leaf.out_features
        return total

    resnet = sum(macs(layer) for layer in model.layers)
    plain = xpnet.model_from_config(model_spec(784, 10, dict(DEFAULTS, **PRESETS["fashion-cnn"].settings)), "numpy")
    assert resnet == 12_958_592 and sum(macs(layer) for layer in plain.layers) == 11_992_448
    example = json.loads((Path(__file__).parents[1] / "examples" / "resnet_fashion.json").read_text())
    for key in ("layers", "optimizer", "schedule", "input_shape"):
        assert example["config"][key] == spec["config"][key], key


def test_train_with_the_example_file_and_predict_on_raw_images(tmp_path):
    """`xpnet train --model examples/resnet_fashion.json` on a few 28x28 images, then `xpnet predict` on raw
    (N, 28, 28) pixels: the checkpoint's own scaling, the labels the loaded model predicts."""
    from pathlib import Path
    from test_cli_train import cli
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (60, 28, 28)).astype(np.uint8)
    y = np.arange(60) % 10  # the file's model has 10 outputs
    np.savez(tmp_path / "d.npz", X=X[:48], y=y[:48], X_test=X[48:], y_test=y[48:])
    ck = tmp_path / "r.safetensors"
    example = Path(__file__).parents[1] / "examples" / "resnet_fashion.json"
    r = last_json(cli("train", "--model", example, "--dataset", tmp_path / "d.npz", "--epochs", "1", "--batch-size",
                      "16", "--checkpoint", ck, "--quiet", "--json"))
    assert 0.0 <= r["test_accuracy"] <= 1.0
    np.save(tmp_path / "x.npy", X[48:])
    pr = last_json(cli("predict", "--checkpoint", ck, tmp_path / "x.npy", "--json"))
    assert pr["predictions"] == xpnet.load(ck).predict(X[48:]).tolist()


def test_gradcheck_of_a_nested_model_with_a_tied_layer(xpnet_backend):
    """xpnet.gradcheck (central differences over every parameter of the model) on each backend: a Residual of a
    Chain, an Add, a Concatenate and a Dense used twice, whose numerical gradient sees both uses."""
    tied = Dense(4, 4)
    model = xpnet.Sequential([Dense(3, 4), Residual(Chain([tied, xpnet.Tanh()])),
                              Concatenate([Add([tied, Dense(4, 4)]), xpnet.Sigmoid()]), Dense(8, 3)],
                             backend=xpnet_backend, dtype="float64", seed=0)
    assert "layers.2.0.0.weight" not in model.parameters() and "layers.1.block.0.weight" in model.parameters()
    X = np.random.default_rng(0).standard_normal((5, 3))
    report = xpnet.gradcheck(model, X, np.arange(5) % 3)
    assert report["passed"] and report["max_relative_error"] <= 1e-7, report


def test_an_error_inside_a_block_names_the_nested_layer():
    from xpnet.layers.base import where_raised

    class Broken(xpnet.ReLU):
        def forward(self, params, x, training=False, need_dx=True, noise=None):
            raise RuntimeError("broken")

    model = xpnet.Sequential([Dense(3, 3), Residual(Chain([Dense(3, 3), Broken()]))], seed=0)
    with pytest.raises(RuntimeError) as info:
        model.forward(np.zeros((2, 3)))
    assert where_raised(info.value) == "layers.1.block.1 Broken.forward"
