"""Presets are data (xpnet/models/presets.py): a new preset is one entry of PRESETS, trained, checkpointed and
resumed by `xpnet train`'s own code; the command line names no preset and no model."""
import ast
import json
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet.cli import main
from xpnet.models.presets import PRESETS, Preset, fit_options, preset_for, preset_settings

TINY_REFUSAL = "the tiny preset trains by --batch-size, not --minibatches"


def tiny_cnn(n_features, n_classes, cfg):
    """A conv net on the 8x8 digits: conv 4@3x3 pad 1, ReLU, max-pool 2, dense n_classes."""
    layer = lambda name, **config: {"class": name, "config": config}  # noqa: E731
    return {"class": "Sequential", "config": {
        "layers": [layer("Conv2D", in_channels=1, out_channels=4, kernel_size=3, padding=1), layer("relu"),
                   layer("MaxPool2D", kernel_size=2), layer("Flatten"), layer("Dense", in_features=64,
                                                                            out_features=n_classes)],
        "optimizer": {"class": cfg["optimizer"], "config": {"lr": cfg["lr"]}},
        "dtype": cfg["dtype"], "seed": cfg["seed"], "input_shape": [1, 8, 8]}}


@pytest.fixture
def tiny(monkeypatch):
    """One entry: the `tiny` preset (digits as 1x8x8 images, batches of 100 with the last partial one dropped)."""
    preset = Preset("a test preset", dict(model="tiny-test", dataset="digits", optimizer="adam", lr=0.01, epochs=2,
                                          batch_size=100, dtype="float64"),
                    tiny_cnn, fit={"compose_shuffles": False, "drop_last": True}, input_shape=(1, 8, 8),
                    refuses={"minibatches": TINY_REFUSAL})
    monkeypatch.setitem(PRESETS, "tiny", preset)
    return preset


def run(capsys, *args):
    """`xpnet train ARGS --quiet --json` in this process (where the test's preset is registered)."""
    assert main(["train", *map(str, args), "--backend", "numpy", "--quiet", "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_a_new_preset_is_one_entry(tiny, tmp_path, capsys):
    ck = tmp_path / "tiny.safetensors"
    result = run(capsys, "--preset", "tiny", "--checkpoint", ck)
    assert result["epochs"] == 2 and result["dtype"] == "float64" and result["test_accuracy"] > 0.5, result
    model = xpnet.load(ck)
    assert model.input_shape == (1, 8, 8)  # its input_shape: the digits came as images
    assert len(model.batch_losses_) == 2 * (1438 // 100)  # its fit: drop_last (15 batches a epoch otherwise)
    assert model.checkpoint_meta_["cli"]["model"] == "tiny-test"
    # resumed from the checkpoint's saved settings: the row is found again by its model
    resumed = run(capsys, "--preset", "tiny", "--epochs", "3", "--resume", ck, "--checkpoint", ck)
    assert resumed["epochs"] == 3 and len(xpnet.load(ck).batch_losses_) == 3 * 14
    # the settings it refuses, with its own line; the help lists it
    assert main(["train", "--preset", "tiny", "--minibatches", "5"]) == 2
    assert capsys.readouterr().err == f"xpnet train: error: {TINY_REFUSAL}\n"
    from xpnet.cli.app import build_parser
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    assert "tiny (a test preset)" in " ".join(capsys.readouterr().out.split())


def test_book2015_refuses_a_batch_size(capsys):
    assert main(["train", "--preset", "book2015", "--batch-size", "100"]) == 2
    assert capsys.readouterr().err == (
        "xpnet train: error: the book2015 preset trains by --minibatches (a count), not --batch-size\n")


def test_book2015_trains_by_its_config_and_resumes_to_the_run_epochs(tmp_path, capsys):
    """book2015's NeuralNetMLP carries minibatches in its config and takes the run's epochs from fit: 2 epochs
    straight equal 1 epoch, then a resume to 2 (bit for bit); its train accuracy counts every row."""
    common = ["--preset", "book2015", "--dataset", "digits", "--minibatches", "10"]
    full, part = tmp_path / "full.st", tmp_path / "part.st"
    straight = run(capsys, *common, "--epochs", 2, "--checkpoint", full)
    run(capsys, *common, "--epochs", 1, "--checkpoint", part)
    resumed = run(capsys, *common, "--epochs", 2, "--resume", part, "--checkpoint", part)
    assert straight["epochs"] == resumed["epochs"] == 2 and straight["final_loss"] == resumed["final_loss"]
    a, b = xpnet.load(full), xpnet.load(part)
    assert type(a).__name__ == "NeuralNetMLP" and len(a.batch_losses_) == 2 * 10
    assert all(np.array_equal(a.bk.to_numpy(v), b.bk.to_numpy(b.state.params[k])) for k, v in a.state.params.items())
    assert fit_options(a.checkpoint_meta_["cli"]) == {"accumulate": 1, "epochs": 2}


def test_every_preset_row():
    """Each preset's model names one row (a checkpoint finds its preset by it), and builds on its settings."""
    models = [p.settings["model"] for p in PRESETS.values()]
    assert len(set(models)) == len(models)
    for name, preset in PRESETS.items():
        cfg = preset_settings(name)
        assert preset_for(cfg) is preset
        spec = preset.build(784, 10, cfg)
        assert spec["class"] in ("Sequential", "NeuralNetMLP") and isinstance(spec["config"], dict)
    assert preset_for({}).settings == {}  # no preset: the MLP of the flags
    with pytest.raises(xpnet.InputError, match=r"no preset builds"):
        preset_for({"model": "gone"})


def test_the_command_line_names_no_preset_or_model():
    """Next to the behaviour above: no string in xpnet/cli/ equals a preset's name or model (a comparison
    like cfg["model"] == "NeuralNetMLP" would be one)."""
    names = set(PRESETS) | {p.settings["model"] for p in PRESETS.values()} | {"NeuralNetMLP", "Sequential"}
    cli = Path(xpnet.__file__).parent / "cli"
    found = [(path.name, node.value) for path in sorted(cli.glob("*.py"))
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names]
    assert found == []
