"""`xpnet train / evaluate / predict` as a user runs them: checkpoints, exact resume after SIGINT/SIGTERM,
history, plots, presets on real MNIST, user files, images."""
import csv
import json
import os
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import xpnet
from safetensors.numpy import load_file


def cli(*args, cwd=None, timeout=600):
    env = {k: v for k, v in os.environ.items() if not k.startswith("XPNET_")}
    return subprocess.run([sys.executable, "-m", "xpnet", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)


def last_json(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def params(path):
    return {k: v for k, v in load_file(path).items() if k.startswith("param/")}


def test_checkpoint_history_evaluate_predict(tmp_path):
    ck = tmp_path / "digits.safetensors"
    result = last_json(cli("train", "--epochs", "4", "--checkpoint", ck, "--history", tmp_path / "h.csv", "--quiet",
                           "--json", "--scale", "standardize"))
    assert result["checkpoint"] == str(ck) and ck.exists()
    rows = list(csv.DictReader(open(tmp_path / "h.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"] and float(rows[-1]["loss"]) < float(rows[0]["loss"])
    ev = last_json(cli("evaluate", "--checkpoint", ck, "--json"))
    assert set(ev) >= {"accuracy", "loss", "n", "confusion_matrix", "classes", "class_names"} and ev["n"] == 359
    assert ev["accuracy"] == pytest.approx(result["test_accuracy"])
    assert np.asarray(ev["confusion_matrix"]).sum() == 359
    from xpnet.data.datasets import load_digits
    X_test = load_digits()[2]
    np.save(tmp_path / "x.npy", X_test[:5])
    pr = last_json(cli("predict", "--checkpoint", ck, tmp_path / "x.npy", "--json"))
    assert len(pr["predictions"]) == 5 and np.allclose(np.sum(pr["probabilities"], axis=1), 1.0)


def test_predict_an_image(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    ck = tmp_path / "m.safetensors"
    last_json(cli("train", "--epochs", "20", "--checkpoint", ck, "--quiet", "--json"))
    from xpnet.data.datasets import load_digits
    X, y, X_test, y_test = load_digits()
    right = []
    for i in range(10):
        # a dark digit on white paper, 32x32: predict resizes to 8x8 and inverts it back
        img = (255 - X_test[i].reshape(8, 8) * 255 / 16).astype(np.uint8)
        Image.fromarray(img).resize((32, 32), Image.NEAREST).save(tmp_path / f"d{i}.png")
        pr = last_json(cli("predict", "--checkpoint", ck, tmp_path / f"d{i}.png", "--json"))
        right.append(pr["predictions"][0] == y_test[i])
    assert sum(right) >= 7


def wait_for(path, proc, timeout=120):
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout
        time.sleep(0.05)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_and_resume_is_exact(tmp_path, sig, code):
    args = ["train", "--epochs", "12", "--batch-size", "2", "--dtype", "float64", "--optimizer", "adam", "--quiet"]
    full = tmp_path / "full.safetensors"
    last_json(cli(*args, "--checkpoint", full, "--json"))
    ck = tmp_path / "run.safetensors"
    env = {k: v for k, v in os.environ.items() if not k.startswith("XPNET_")}
    proc = subprocess.Popen([sys.executable, "-m", "xpnet", *args, "--checkpoint", str(ck)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    wait_for(ck, proc)
    time.sleep(0.3)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("training finished before the signal arrived")
    assert proc.returncode == code, err
    # the command it prints is the one given, with --resume appended: what a user re-runs
    printed = shlex.split(err.split("resume with: ", 1)[1].splitlines()[0])
    assert "Traceback" not in err and printed[:2] == ["xpnet", "train"] and printed[-2:] == ["--resume", str(ck)], err
    assert sorted(printed) == sorted(["xpnet", *args, "--checkpoint", str(ck), "--resume", str(ck)]), err
    resumed = last_json(cli(*printed[1:], "--json"))
    assert resumed["epochs"] == 12
    a, b = params(full), params(ck)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)  # bit-identical, NumPy float64



@pytest.mark.parametrize("stop_at, where", [(3, "in epoch 2, after step 3 of 45"),
                                            (45, "after the last step of epoch 2 (45 of 45)")])
def test_the_interrupt_message_names_the_epoch_it_stopped_in(tmp_path, monkeypatch, capsys, stop_at, where):
    """A SIGINT inside epoch 2 said 'saved the state after epoch 2, step 3' (issue 23); in-process, the signal
    sent from the progress callback after step `stop_at` of epoch 2 (digits: 1438 rows, batch 32, 45 steps)."""
    from xpnet.cli import main

    def on_batch_end(self, batch, logs):
        if self.model.state.epoch == 1 and batch + 1 == stop_at:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(xpnet.ProgressBar, "on_batch_end", on_batch_end)
    ck = tmp_path / "run.safetensors"
    with pytest.raises(SystemExit) as info:
        main(["train", "--epochs", "3", "--checkpoint", str(ck), "--backend", "numpy"])
    err = capsys.readouterr().err
    assert info.value.code == 130 and f"xpnet train: SIGINT received; saved the state {where} to {ck}\n" in err, err
    assert err.splitlines()[-1].startswith("resume with: xpnet train ") and ck.exists()

def parse(*args):
    from xpnet.cli.app import build_parser
    return build_parser().parse_args(["train", *map(str, args)])


def test_resume_accepts_the_original_command_and_names_a_changed_flag():
    from xpnet import InputError
    from xpnet.cli.train import check_resume_flags, resolve_config
    original = ["--preset", "book2017", "--data-dir", "D", "--checkpoint", "c.st"]
    saved = resolve_config(parse(*original))  # what a checkpoint of that run records
    check_resume_flags(parse(*original, "--resume", "c.st"), saved)
    check_resume_flags(parse(*original, "--lr", "0.0005", "--batch-size", "100", "--seed", "1", "--resume", "c.st"),
                       saved)
    check_resume_flags(parse("--resume", "c.st", "--epochs", "300", "--backend", "torch", "--device", "cpu",
                             "--data-dir", "E", "--checkpoint", "d.st", "--history", "h.csv", "--plot", "p",
                             "--quiet", "--json", "--offline", "--debug"), saved)  # run options, all free
    with pytest.raises(InputError, match=r"^--lr 0\.1 differs from the checkpoint's lr 0\.0005; drop it or start a "
                                         r"new run$"):
        check_resume_flags(parse(*original, "--lr", "0.1", "--resume", "c.st"), saved)
    with pytest.raises(InputError, match=r"^--hidden 50 differs from the checkpoint's hidden 100; --accumulate 2 "
                                         r"differs from the checkpoint's accumulate 1; drop them or start a new run$"):
        check_resume_flags(parse(*original, "--accumulate", "2", "--hidden", "50"), saved)
    with pytest.raises(InputError, match=r"^--minibatches 10 differs from the checkpoint's batch-size 100; drop it"):
        check_resume_flags(parse("--minibatches", "10"), saved)
    with pytest.raises(InputError, match=r"^--preset book2015 differs from the checkpoint's run, which used --preset "
                                         r"book2017; drop it or start a new run$"):
        check_resume_flags(parse("--preset", "book2015"), saved)
    # defaults resolve as a new run resolves them: no --lr is SGD's 0.1 (Adam's 0.001), no batch flag is 32
    plain = resolve_config(parse("--optimizer", "adam"))
    check_resume_flags(parse("--optimizer", "adam", "--lr", "0.001", "--batch-size", "32", "--dataset", "digits"), plain)
    with pytest.raises(InputError, match=r"^--preset book2017 differs from the checkpoint's run, which used no preset"):
        check_resume_flags(parse("--preset", "book2017"), plain)
    # a preset's rate goes with its optimizer: another one named without --lr trains at its own default rate
    assert resolve_config(parse("--preset", "resnet-fashion"))["lr"] == 0.1
    assert resolve_config(parse("--preset", "resnet-fashion", "--optimizer", "adam"))["lr"] is None
    assert resolve_config(parse("--preset", "resnet-fashion", "--optimizer", "adam", "--lr", "0.01"))["lr"] == 0.01
    assert resolve_config(parse("--preset", "resnet-fashion", "--optimizer", "nesterov"))["lr"] == 0.1
    faster = resolve_config(parse("--preset", "book2017", "--lr", "0.1"))  # a preset with a flag beside it
    check_resume_flags(parse("--preset", "book2017", "--lr", "0.1"), faster)
    with pytest.raises(InputError, match=r"^--preset book2017 sets lr 0\.0005, which differs from the checkpoint's "
                                         r"0\.1; drop it or start a new run$"):
        check_resume_flags(parse("--preset", "book2017"), faster)


def test_interrupt_without_checkpoint_flag_writes_default_file(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "xpnet", "train", "--epochs", "100000", "--batch-size", "1",
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    time.sleep(4)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert (tmp_path / "xpnet-interrupted.safetensors").exists()


def test_plots(tmp_path):
    pytest.importorskip("matplotlib")
    proc = cli("train", "--epochs", "3", "--plot", tmp_path / "plots", "--quiet")
    assert proc.returncode == 0, proc.stderr
    for name in ("cost.png", "accuracy.png", "misclassified.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:4] == b"\x89PNG"


def test_book2015_short_on_mnist(mnist_dir):
    """A few epochs of the book's run on real MNIST: a correct implementation reaches about 88 % test
    accuracy after 10 epochs (measured 87.6 %); a wrong gradient or update stays far below."""
    result = last_json(cli("train", "--preset", "book2015", "--data-dir", mnist_dir, "--epochs", "10", "--quiet",
                           "--json"))
    assert result["dtype"] == "float64" and result["epochs"] == 10
    assert result["test_accuracy"] > 0.85, result


def test_book2017_short_on_mnist(mnist_dir):
    """Two epochs of the later editions' run: measured 89.5 % test accuracy."""
    result = last_json(cli("train", "--preset", "book2017", "--data-dir", mnist_dir, "--epochs", "2", "--quiet",
                           "--json"))
    assert result["test_accuracy"] > 0.87, result


def test_book2017_resumes_with_its_own_command(mnist_dir, tmp_path):
    """The preset's command, re-run with --resume appended, continues the run (its flags resolve to the
    checkpoint's configuration); a different preset is refused by name."""
    ck = tmp_path / "b.safetensors"
    command = ["train", "--preset", "book2017", "--data-dir", mnist_dir, "--checkpoint", ck, "--quiet", "--json"]
    last_json(cli(*command, "--epochs", "1"))
    resumed = last_json(cli(*command, "--epochs", "2", "--resume", ck))
    assert resumed["epochs"] == 2 and len(params(ck)) == 4
    proc = cli("train", "--preset", "book2015", "--data-dir", mnist_dir, "--resume", ck)
    assert proc.returncode == 2 and "--preset book2015 differs from the checkpoint's run, which used --preset " \
                                    "book2017; drop it or start a new run" in proc.stderr, proc.stderr


def test_user_files(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 5))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    np.savez(tmp_path / "d.npz", X=X[:240], y=y[:240], X_test=X[240:], y_test=y[240:])
    r = last_json(cli("train", "--dataset", tmp_path / "d.npz", "--epochs", "20", "--scale", "standardize",
                      "--quiet", "--json"))
    assert r["test_accuracy"] > 0.9
    with open(tmp_path / "d.csv", "w") as f:
        f.write("a,b,c,d,e,target\n")
        for row, label in zip(X, y):
            f.write(",".join(f"{v:.6f}" for v in row) + f",{label}\n")
    r = last_json(cli("train", "--dataset", tmp_path / "d.csv", "--label-column", "target", "--epochs", "20",
                      "--quiet", "--json"))
    assert r["test_accuracy"] is None and r["train_accuracy"] > 0.9


@pytest.mark.parametrize("args, message", [
    (["train", "--resume", "nope.safetensors"], "does not exist"),
    (["train", "--preset", "book1999"], "unknown preset 'book1999'"),
    (["train", "--dataset", "mnist", "--data-dir", "{tmp}", "--offline"], "train-images-idx3-ubyte.gz"),
    (["evaluate", "--checkpoint", "{tmp}/none.safetensors"], "does not exist"),
])
def test_clear_errors(tmp_path, args, message):
    proc = cli(*[a.replace("{tmp}", str(tmp_path)) for a in args], cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_untrusted_and_mismatched_inputs(tmp_path):
    ck = tmp_path / "m.safetensors"
    last_json(cli("train", "--epochs", "1", "--checkpoint", ck, "--quiet", "--json"))
    np.save(tmp_path / "evil.npy", np.array([{"a": 1}], dtype=object))  # a pickled object inside
    proc = cli("predict", "--checkpoint", ck, tmp_path / "evil.npy")
    assert proc.returncode == 2 and "never unpickles" in proc.stderr, proc.stderr
    np.save(tmp_path / "wide.npy", np.zeros((2, 65)))
    proc = cli("predict", "--checkpoint", ck, tmp_path / "wide.npy")
    assert proc.returncode == 2 and "65 features" in proc.stderr
    proc = cli("train", "--resume", ck, "--lr", "0.5", "--dataset", "mnist", "--quiet")
    assert proc.returncode == 2 and proc.stderr == ("xpnet train: error: --dataset mnist differs from the checkpoint's "
                                                    "dataset digits; --lr 0.5 differs from the checkpoint's lr 0.1; "
                                                    "drop them or start a new run\n"), proc.stderr
    assert last_json(cli("train", "--epochs", "2", "--checkpoint", ck, "--quiet", "--json", "--resume", ck))["epochs"] == 2
    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    np.savez(data, X=rng.random((50, 4)), y=rng.integers(0, 3, 50))
    ck2 = tmp_path / "d.safetensors"
    last_json(cli("train", "--dataset", data, "--epochs", "1", "--checkpoint", ck2, "--quiet", "--json"))
    np.savez(data, X=rng.random((50, 4)), y=rng.integers(0, 3, 50))  # the file changed under the checkpoint
    proc = cli("train", "--resume", ck2, "--epochs", "3", "--quiet")
    assert proc.returncode == 2 and "fingerprints differ" in proc.stderr, proc.stderr
