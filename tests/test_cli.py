"""The xpnet command, run as a user would (python -m xpnet), with --json outputs checked."""
import json
import os
import re
import subprocess
import sys

import pytest


def xpnet(*args, env=None, timeout=300):
    full_env = {**os.environ, **(env or {})}
    full_env.pop("XPNET_BACKEND", None) if env is None else None
    proc = subprocess.run([sys.executable, "-m", "xpnet", *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env)
    return proc


def last_json(proc):
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_backends_json():
    rows = last_json(xpnet("backends", "--json"))
    assert [r["name"] for r in rows] == ["numpy", "array_api_strict", "torch", "jax", "cupy"]
    assert all(set(r) == {"name", "available", "version", "devices", "kernels", "reason"} for r in rows)
    assert rows[0]["available"] and rows[0]["devices"] == ["cpu"]


def test_backends_table():
    out = xpnet("backends").stdout
    assert out.splitlines()[0].split()[:3] == ["backend", "available", "version"] and "numpy" in out


def test_gradcheck_json():
    report = last_json(xpnet("gradcheck", "--json", "--activation", "sigmoid", "--hidden", "4,3"))
    assert set(report) == {"checks", "overall_relative_error", "max_relative_error", "passed"}
    assert report["passed"] and report["max_relative_error"] <= 1e-7
    first = report["checks"][0]
    assert first == {"parameter": "layers.0.weight", "relative_error": first["relative_error"], "grade": "Ok",
                     "abs_error": first["abs_error"]}
    assert 0 <= first["abs_error"] < 1e-6
    assert len(report["checks"]) == 6


def test_gradcheck_book(mnist_dir):
    report = last_json(xpnet("gradcheck", "--book", "--data-dir", str(mnist_dir), "--json"))
    assert report["passed"] and len(report["overall_relative_errors"]) == 10
    assert max(report["overall_relative_errors"]) <= 1e-7


def test_parity_default_is_well_conditioned():
    report = last_json(xpnet("parity", "--backends", "numpy,array_api_strict,torch,jax", "--dtype",
                             "float64,float32", "--steps", "100", "--json"))
    assert set(report) == {"reference", "steps", "results", "passed"} and report["passed"]
    for r in report["results"]:
        assert {"backend", "device", "dtype", "max_abs_diff", "max_rel_diff", "free_max_rel_diff",
                "growth_per_step", "passed"} <= set(r)
        if r["dtype"] == "float64":
            assert r["max_rel_diff"] <= 1e-10 and r["free_max_rel_diff"] <= 1e-10


def test_train_digits_json():
    result = last_json(xpnet("train", "--epochs", "10", "--quiet", "--json"))
    assert set(result) == {"backend", "device", "dtype", "precision", "epochs", "seconds", "scoring_seconds",
                           "total_seconds", "train_accuracy", "test_accuracy", "final_loss", "checkpoint"}
    assert result["backend"] == "numpy" and result["epochs"] == 10 and result["test_accuracy"] > 0.9


def test_train_prints_one_line_per_epoch_off_a_terminal():
    """The line fit(verbose=True) prints (training.epoch_line), with the CLI's samples/s."""
    proc = xpnet("train", "--epochs", "2")
    assert proc.returncode == 0, proc.stderr
    epochs = [line for line in proc.stdout.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 2 and all(re.fullmatch(r"epoch \d/2 loss \d\.\d{4} acc \d\.\d{4} lr 0\.1 \d+\.\d\ds "
                                                 r"[\d,]+ samples/s", line) for line in epochs), proc.stdout


def test_train_on_another_backend_by_flag():
    result = last_json(xpnet("train", "--backend", "torch", "--epochs", "2", "--quiet", "--json"))
    assert result["backend"] == "torch" and result["device"] == "cpu"


@pytest.mark.parametrize("args, message", [
    (["train", "--backend", "tensorflow"], "unknown backend 'tensorflow'"),
    (["train", "--backend", "numpy", "--device", "cuda"], "runs on the CPU only"),
    (["train", "--lr", "-1"], "xpnet train: error: --lr -1.0: must be a number > 0; try 0.01 for SGD"),
    (["train", "--dataset", "nope"], "unknown dataset 'nope'"),
    (["parity", "--backends", "numpy,mxnet"], "unknown backend 'mxnet'"),
    (["train", "--batch-size", "0"], "xpnet train: error: --batch-size 0: must be a positive integer"),
    (["train", "--epochs", "0"], "xpnet train: error: --epochs 0: must be a positive integer"),
    (["train", "--validation-split", "1"], "xpnet train: error: --validation-split 1.0: must be a number in [0, 1)"),
    (["train", "--early-stopping", "0"], "xpnet train: error: --early-stopping 0: must be a positive integer"),
    (["parity", "--steps", "0"], "xpnet parity: error: --steps 0: must be a positive integer"),
    (["train", "--batch-size", "32", "--accumulate", "64"],  # issue 23: was accepted, 20x slower
     "xpnet train: error: --accumulate 64: must be an integer from 1 to 32; a minibatch of 32 samples is split"),
])
def test_errors_are_one_line(args, message):
    proc = xpnet(*args, "--quiet") if args[0] == "train" else xpnet(*args)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [["train", "--hidden", "a,b"], ["train", "--lr", "fast"], ["train", "--dtype", "f16"],
                                  ["nosuchcommand"]])
def test_argument_errors_are_one_line(args):
    proc = xpnet(*args)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "error:" in proc.stderr and "--help" in proc.stderr



@pytest.mark.parametrize("argv, prog", [(["train", "--epochs", "1", "--bogus", "3"], "xpnet train"),
                                        (["evaluate", "--checkpoint", "c", "--bogus"], "xpnet evaluate"),
                                        (["--bogus"], "xpnet")])
def test_an_unknown_flag_points_at_its_commands_help(capsys, argv, prog):
    """It said '(see xpnet --help)' of a flag that `xpnet train` does not know (issue 23)."""
    from xpnet.cli import main
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    extra = " ".join(argv[argv.index("--bogus"):])
    assert info.value.code == 2 and err == f"{prog}: error: unrecognized arguments: {extra} (see {prog} --help)\n"

def test_debug_shows_the_traceback():
    proc = xpnet("train", "--backend", "tensorflow", "--debug")
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "BackendError" in proc.stderr


def test_divergence_is_one_line():
    proc = xpnet("train", "--lr", "1e6", "--loss", "mse", "--epochs", "5", "--quiet")
    assert proc.returncode == 2 and "lower the learning rate" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_env_backend_is_used():
    proc = xpnet("train", "--epochs", "1", "--quiet", "--json", env={"XPNET_BACKEND": "array_api_strict"})
    assert last_json(proc)["backend"] == "array_api_strict"


def test_output_into_a_pipe_closed_early_stops_quietly(tmp_path):
    """`xpnet predict ... | head -1`: the reader leaves, and xpnet stops with 141 (128 + SIGPIPE, as a shell
    reports `cat`) and nothing on stderr; an --output file it wrote first is whole."""
    import numpy as np
    from xpnet.data.datasets import load_digits
    ck = tmp_path / "m.safetensors"
    env = {k: v for k, v in os.environ.items() if k != "XPNET_BACKEND"}
    subprocess.run([sys.executable, "-m", "xpnet", "train", "--epochs", "1", "--checkpoint", ck, "--quiet"],
                   env=env, check=True, cwd=tmp_path)
    X = np.tile(load_digits()[2], (60, 1))  # 21,540 rows: far more lines than a pipe holds
    np.save(tmp_path / "x.npy", X)
    proc = subprocess.Popen([sys.executable, "-m", "xpnet", "predict", "--checkpoint", ck, tmp_path / "x.npy",
                             "--output", tmp_path / "p.csv"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b"0: ")
    proc.stdout.close()
    assert proc.wait(timeout=120) == 141 and proc.stderr.read() == b""
    assert len((tmp_path / "p.csv").read_text().splitlines()) == len(X) + 1
