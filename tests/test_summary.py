"""model.summary() and `xpnet summary`: parameter counts against PyTorch's sum(p.numel()) and FLOPs against
torch.utils.flop_counter.FlopCounterMode for the same networks built in torch (an MLP, LeNet-5, fashion-cnn, a
small CNN with BatchNorm and average pooling);
nested layers (sublayers()) indented and a shared layer counted once."""
import json
from pathlib import Path

import numpy as np
import pytest

import xpnet
from fakes import run_cli
from xpnet.layers import Dense, Layer, ReLU
from xpnet.models.presets import cnn_spec, preset_settings
from xpnet.models.summary import walk_layers
from xpnet.registry import model_from_config


def preset_model(name):
    return model_from_config(cnn_spec(name, 10, dict(preset_settings(name), lr=0.001)), "numpy")


def mlp_model():
    return xpnet.Sequential(xpnet.mlp_layers([64, 100, 50, 10], "tanh"), backend="numpy", seed=0)


def small_cnn():
    """The layers the presets do not use: BatchNorm, average pooling, a strided convolution, no bias."""
    return xpnet.Sequential([xpnet.Conv2D(1, 4, 3, padding="same"), xpnet.BatchNorm(), xpnet.ReLU(),
                             xpnet.AvgPool2D(2), xpnet.Conv2D(4, 8, 3, stride=2), xpnet.LeakyReLU(),
                             xpnet.GlobalAvgPool2D(), xpnet.BatchNorm(), xpnet.Dense(8, 10, bias=False)],
                            input_shape=(1, 12, 12), backend="numpy", seed=0)


def torch_twin(model):
    """The same network in torch.nn, layer by layer (the layers the presets use)."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    out = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Dense":
            out.append(nn.Linear(layer.in_features, layer.out_features, bias=layer.use_bias))
        elif kind == "Conv2D":
            top, bottom, left, right = layer.pads
            assert top == bottom and left == right
            out.append(nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel, layer.strides, (top, left),
                                 bias=layer.use_bias))
        elif kind in ("MaxPool2D", "AvgPool2D"):
            out.append(getattr(nn, kind[:-1] + "d")(layer.kernel, layer.strides))
        elif kind == "BatchNorm":
            out.append((nn.BatchNorm2d if len(layer.input_shape) == 3 else nn.BatchNorm1d)(layer.num_features))
        elif kind == "GlobalAvgPool2D":
            out.append(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()))
        else:
            out.append({"ReLU": nn.ReLU, "Tanh": nn.Tanh, "LeakyReLU": nn.LeakyReLU, "Flatten": nn.Flatten,
                        "Dropout": nn.Dropout}[kind]())
    return nn.Sequential(*out)


@pytest.mark.parametrize("make", [mlp_model, lambda: preset_model("lenet5"), lambda: preset_model("fashion-cnn"),
                                  small_cnn], ids=["mlp", "lenet5", "fashion-cnn", "batchnorm-avgpool-cnn"])
def test_counts_match_pytorch(make):
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode
    model = make()
    s = model.summary(show=False)
    net = torch_twin(model)
    assert s.params == sum(p.numel() for p in net.parameters()) == sum(v.size for v in model.get_state()["params"].values())
    assert s.param_bytes == 4 * s.params and [r.params for r in s.rows] == [
        sum(p.numel() for p in m.parameters()) for m in net]
    batch = 3
    x = torch.zeros((batch, *model.input_shape))
    with FlopCounterMode(display=False) as forward:
        net(x)
    with FlopCounterMode(display=False) as step:
        torch.nn.functional.cross_entropy(net(x), torch.zeros(batch, dtype=torch.long)).backward()
    assert s.flops_forward * batch == forward.get_total_flops() > 0
    assert s.flops_training * batch == step.get_total_flops() > 2 * forward.get_total_flops()


def test_the_table_and_its_data():
    model = preset_model("lenet5")
    text = str(model.summary(show=False))
    lines = text.splitlines()
    assert lines[0] == "Sequential: input (1, 28, 28), output (10,), float32"
    assert lines[2].split() == ["layers.0", "Conv2D", "(6,", "28,", "28)", "156", "235,200"]
    assert "parameters: 61,706 (241.0 KiB in float32)" in text and "training step 2.26 M" in text
    d = model.summary(show=False).to_dict()
    json.dumps(d)
    assert d["params"] == 61706 and len(d["layers"]) == 12 and d["flops_training"] == d["flops_forward"] + d[
        "flops_backward"]
    bn = small_cnn().summary(show=False)  # BatchNorm's running statistics are state, not parameters
    assert bn.state_values == 2 * (4 + 8) and "non-trained state: 24 values" in str(bn)


class Pair(Layer):
    """A container for the walk: two sublayers applied in turn (only what summary reads)."""

    def __init__(self, a, b):
        self.a, self.b = a, b
        self.output_shape = b.output_shape

    def sublayers(self):
        return [("a", self.a), ("b", self.b)]


def test_nested_layers_are_indented_and_a_shared_layer_counts_once():
    d1, act, d2 = Dense(4, 4), ReLU(), Dense(4, 3)
    for layer, shape in ((d1, (4,)), (act, (4,)), (d2, (4,))):
        layer.build(shape)
    rows = walk_layers([Pair(d1, act), d1, d2])
    assert [(r.name, r.depth, r.params, r.shared_with) for r in rows] == [
        ("layers.0", 0, 20, None), ("layers.0.a", 1, 20, None), ("layers.0.b", 1, 0, None),
        ("layers.1", 0, 0, "layers.0.a"), ("layers.2", 0, 15, None)]
    assert rows[0].flops_forward == 32 and rows[4].flops_backward == 2 * 24  # d2's input needs a gradient


def test_cli_summary(tmp_path):
    rc, out, err = run_cli("summary", "--preset", "lenet5")
    assert rc == 0 and "parameters: 61,706" in out, err
    rc, out, err = run_cli("summary", "--json")  # the default MLP on the 8x8 digits
    assert rc == 0 and json.loads(out.splitlines()[-1])["params"] == 64 * 100 + 100 + 100 * 10 + 10, err
    ck = tmp_path / "m.safetensors"
    mlp_model().save(ck)
    rc, out, err = run_cli("summary", "--checkpoint", ck, "--json")
    assert rc == 0 and json.loads(out.splitlines()[-1])["params"] == 64 * 100 + 100 + 100 * 50 + 50 + 50 * 10 + 10
    rc, out, err = run_cli("summary", "--model", Path(__file__).parent.parent / "examples" / "lenet5.json")
    assert rc == 0 and "parameters: 61,706" in out, err
    rc, out, err = run_cli("summary", "--preset", "nope")
    assert rc == 2 and "unknown preset 'nope'" in err
    rc, out, err = run_cli("summary", "--preset", "lenet5", "--features", "784")
    assert rc == 2 and "takes images of shape (1, 28, 28), not rows of features; drop --features" in err
    spec = {"class": "Sequential", "config": {"layers": [{"class": "Dense", "config": {"in_features": None,
                                                                                        "out_features": 3}}]}}
    (tmp_path / "m.json").write_text(json.dumps(spec))
    rc, out, err = run_cli("summary", "--model", tmp_path / "m.json")
    assert rc == 2 and "does not say its input size" in err and "--features N" in err, err
    rc, out, err = run_cli("summary", "--model", tmp_path / "m.json", "--features", "5", "--json")
    assert rc == 0 and json.loads(out)["params"] == 18 and json.loads(out)["flops_forward"] == 30, err


def test_resnet_counts_match_pytorch_and_a_tied_layer_counts_once():
    """The merged pair of issues 29 and 30: resnet-fashion's nested summary against case G's torch.nn ResNet
    (BasicBlocks as torchvision writes them), and a real layer used twice in a Chain counted once."""
    torch = pytest.importorskip("torch")
    import sys
    from torch.utils.flop_counter import FlopCounterMode
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench.train_torch import resnet
    model = preset_model("resnet-fashion")
    s = model.summary(show=False)
    net = resnet({k: np.asarray(v) for k, v in model.get_state()["params"].items()})
    assert s.params == sum(p.numel() for p in net.parameters()) == 165_626
    assert [r.name for r in s.rows if r.depth == 2][:2] == ["layers.3.block.0", "layers.3.block.1"]
    x = torch.zeros((3, 1, 28, 28))
    with FlopCounterMode(display=False) as forward:
        net(x)
    with FlopCounterMode(display=False) as step:
        torch.nn.functional.cross_entropy(net(x), torch.zeros(3, dtype=torch.long)).backward()
    assert s.flops_forward * 3 == forward.get_total_flops() and s.flops_training * 3 == step.get_total_flops()
    tied = Dense(4, 4)
    shared = xpnet.Sequential([xpnet.Chain([tied, ReLU(), tied]), Dense(4, 2)], input_shape=(4,), backend="numpy",
                              seed=0).summary(show=False)
    assert shared.params == 20 + 10 and [r.shared_with for r in shared.rows].count("layers.0.0") == 1
