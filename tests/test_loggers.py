"""Loggers as callbacks (xpnet.training.loggers), read back from their files: the history as CSV and JSON Lines
(resumed runs included), TensorBoard event files through tensorboardX read with tensorboard's event_accumulator,
an MLflow file store read with MlflowClient().search_runs; `xpnet train --history/--tensorboard/--mlflow`, the
one-line error when an extra is missing, and only rank 0 logging."""
import csv
import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import xpnet
from fakes import run_cli
from test_distributed import last_json as mpi_json, mpirun, needs_mpi
from xpnet.training.loggers import HistoryLogger, MLflowLogger, TensorBoard, epoch_metrics, process_rank

RNG = np.random.default_rng(0)
X, Y = RNG.normal(size=(60, 4)), np.arange(60) % 3  # batch_size 8: 8 updates an epoch


def mlp(optimizer=None):
    return xpnet.Sequential(xpnet.mlp_layers([4, 6, 3], "tanh"), optimizer=optimizer or xpnet.SGD(0.1),
                            dtype="float64", seed=0)


def test_csv_history_by_epoch_and_by_steps(tmp_path):
    model = mlp(optimizer=xpnet.SGD(0.1, clip_norm=1e9))  # clip_norm records each update's norm
    log = HistoryLogger(tmp_path / "h.csv", every_steps=3)
    model.fit(X, Y, epochs=3, batch_size=8, validation_split=0.2, callbacks=[log])
    rows = list(csv.DictReader(open(tmp_path / "h.csv")))
    assert list(rows[0]) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds", "grad_norm",
                             *xpnet.metrics.VALIDATION_METRICS]  # with validation data: precision, recall, F1
    assert [float(r["loss"]) for r in rows] == model.history_["loss"]
    assert [float(r["grad_norm"]) for r in rows] == model.history_["grad_norm"]
    steps = list(csv.DictReader(open(tmp_path / "h.steps.csv")))  # 6 updates an epoch: steps 3, 6, ..., 18
    assert [int(r["step"]) for r in steps] == [3, 6, 9, 12, 15, 18]
    assert [float(r["loss"]) for r in steps] == [model.batch_losses_[s - 1] for s in (3, 6, 9, 12, 15, 18)]
    assert all(float(r["grad_norm"]) > 0 for r in steps) and {r["epoch"] for r in steps} == {"1", "2", "3"}


def test_jsonl_history_of_a_resumed_run_has_every_epoch(tmp_path):
    path = tmp_path / "h.jsonl"
    model = mlp()
    model.fit(X, Y, steps=12, batch_size=8, callbacks=[HistoryLogger(path)])  # 8 a epoch: stops inside epoch 2
    assert [json.loads(line)["epoch"] for line in open(path)] == [1]
    model.fit(X, Y, epochs=3, resume=True, callbacks=[HistoryLogger(path, every_steps=8, grad_norm=True)])
    records = [json.loads(line) for line in open(path)]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3] and [r["loss"] for r in epochs] == model.history_["loss"]
    steps = [r for r in records if r["kind"] == "step"]
    assert [r["step"] for r in steps] == [16, 24] and steps[0]["loss"] == model.batch_losses_[15]
    assert steps[0]["grad_norm"] > 0  # computed from the update's gradients (grad_norm=True)


def test_step_logging_on_every_backend(xpnet_backend, tmp_path):
    """The step's loss, rate and computed gradient norm read from each backend's device arrays (array-api-strict
    unrelaxed): the loss the one fit records, the norm the one clipping records."""
    runs = {}
    for name, optimizer, flag in (("clip", xpnet.SGD(0.1, clip_norm=1e9), False), ("computed", xpnet.SGD(0.1), True)):
        model = xpnet.Sequential(xpnet.mlp_layers([4, 6, 3], "tanh"), optimizer=optimizer, dtype="float64", seed=0,
                                 backend=xpnet_backend)
        model.fit(X, Y, epochs=1, batch_size=20, callbacks=[HistoryLogger(tmp_path / f"{name}.jsonl", 1, flag)])
        runs[name] = [json.loads(line) for line in open(tmp_path / f"{name}.jsonl")]
    steps = [r for r in runs["computed"] if r["kind"] == "step"]
    assert [r["loss"] for r in steps] == model.batch_losses_ and len(steps) == 3
    assert [r["grad_norm"] for r in steps] == pytest.approx([r["grad_norm"] for r in runs["clip"]
                                                             if r["kind"] == "step"], rel=1e-12)


def test_every_finite_number_of_an_epoch_is_a_metric():
    """What TensorBoard and MLflow log of an epoch: fit's figures and any a later fit (or callback) adds."""
    logs = {"epoch": 3, "loss": 0.5, "val_loss": None, "f1": 0.875, "lr": float("nan"), "flag": True, "note": "x"}
    assert epoch_metrics(logs) == {"loss": 0.5, "f1": 0.875}


def test_only_rank_0_logs(tmp_path, monkeypatch):
    assert process_rank() == 0
    fake = SimpleNamespace(Communicator=SimpleNamespace(current=SimpleNamespace(rank=1)))
    monkeypatch.setitem(sys.modules, "xpnet.distributed.communicator", fake)
    assert process_rank() == 1
    mlp().fit(X, Y, epochs=1, batch_size=8, callbacks=[HistoryLogger(tmp_path / "h.csv", every_steps=1)])
    assert not list(tmp_path.iterdir())


def read_events(folder):
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                             reason="the tensorboard package reads event files: pip install tensorboard")
    acc = ea.EventAccumulator(str(folder), size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0, ea.TENSORS: 0})
    acc.Reload()
    return acc


def test_tensorboard_event_files_read_back(tmp_path):
    tbx = pytest.importorskip("tensorboardX", reason='the tensorboard extra: pip install "xpnet[tensorboard]"')
    model = mlp(optimizer=xpnet.SGD(0.1, clip_norm=1.0))
    model.fit(X, Y, epochs=2, batch_size=8, validation_split=0.2,
              callbacks=[TensorBoard(tbx.SummaryWriter(logdir=str(tmp_path)), every_steps=2)])
    acc = read_events(tmp_path)
    scalars = lambda tag: [(e.step, e.value) for e in acc.Scalars(tag)]  # noqa: E731
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "grad_norm"):
        assert scalars(f"epoch/{key}") == [(1, pytest.approx(model.history_[key][0], rel=1e-6)),
                                           (2, pytest.approx(model.history_[key][1], rel=1e-6))], key
    assert [s for s, _ in scalars("step/loss")] == [2, 4, 6, 8, 10, 12]
    assert [v for _, v in scalars("step/loss")] == pytest.approx(model.batch_losses_[1::2], rel=1e-6)
    assert len(scalars("step/grad_norm")) == 6 and scalars("step/lr")[0][1] == pytest.approx(0.1)
    tags = acc.Tags()
    assert {"weights/layers.0.weight", "weights/layers.2.bias"} <= set(tags["histograms"])
    hist = acc.Histograms("weights/layers.0.weight")
    assert [h.step for h in hist] == [1, 2] and hist[-1].histogram_value.num == 24
    assert hist[-1].histogram_value.max == pytest.approx(model.parameters()["layers.0.weight"].max(), rel=1e-6)
    assert any("summary" in t for t in tags["tensors"])  # the model's summary, as text


def test_mlflow_store_read_back(tmp_path, monkeypatch):
    tracking = pytest.importorskip("mlflow.tracking", reason='the mlflow extra: pip install "xpnet[mlflow]"')
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = tracking.MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    experiment = client.create_experiment("t")
    run_id = client.create_run(experiment).info.run_id
    model = mlp()
    model.fit(X, Y, epochs=2, batch_size=8, callbacks=[MLflowLogger(client, run_id, params={"hidden": [6]},
                                                                     every_steps=4)])
    run, = tracking.MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri()).search_runs([experiment])
    assert run.info.status == "FINISHED" and run.data.params == {"hidden": "[6]"}
    assert run.data.metrics["loss"] == pytest.approx(model.history_["loss"][-1])
    assert [m.value for m in client.get_metric_history(run_id, "loss")] == pytest.approx(model.history_["loss"])
    assert [m.step for m in client.get_metric_history(run_id, "step_loss")] == [4, 8, 12, 16]
    artifact, = client.list_artifacts(run_id)
    assert artifact.path == "model.safetensors"
    local = client.download_artifacts(run_id, artifact.path, str(tmp_path))
    np.testing.assert_array_equal(xpnet.load(local).parameters()["layers.0.weight"],
                                  model.parameters()["layers.0.weight"])


def test_cli_logs_to_history_tensorboard_and_mlflow(tmp_path, monkeypatch):
    pytest.importorskip("tensorboardX", reason='the tensorboard extra: pip install "xpnet[tensorboard]"')
    tracking = pytest.importorskip("mlflow.tracking", reason='the mlflow extra: pip install "xpnet[mlflow]"')
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    rc, out, err = run_cli("train", "--epochs", "2", "--hidden", "8", "--history", tmp_path / "h.csv", "--log-every",
                           "20", "--tensorboard", "--mlflow", "--log-dir", tmp_path / "runs", "--quiet", "--json")
    assert rc == 0, err
    assert len(list(csv.DictReader(open(tmp_path / "h.csv")))) == 2
    assert len(list(csv.DictReader(open(tmp_path / "h.steps.csv")))) == 2 * 45 // 20  # 45 updates an epoch
    run_dir, = (tmp_path / "runs" / "tensorboard").iterdir()
    assert run_dir.name.startswith("mlp-") and len(read_events(run_dir).Scalars("epoch/loss")) == 2
    client = tracking.MlflowClient(tracking_uri=(tmp_path / "runs" / "mlruns").as_uri())
    run, = client.search_runs([client.get_experiment_by_name("xpnet").experiment_id])
    assert run.data.params["hidden"] == "[8]" and run.data.params["backend"] == "numpy"
    assert run.data.metrics["loss"] == pytest.approx(json.loads(out.splitlines()[-1])["final_loss"])
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["model.safetensors"]


@pytest.mark.parametrize("flag, module, extra", [("--tensorboard", "tensorboardX", "tensorboard"),
                                                 ("--mlflow", "mlflow.tracking", "mlflow")])
def test_a_missing_extra_is_one_line_naming_the_pip_command(monkeypatch, flag, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as when not installed
    rc, out, err = run_cli("train", "--epochs", "1", flag, "--quiet")
    assert rc == 2 and len(err.splitlines()) == 1 and f'pip install "xpnet[{extra}]"' in err, err


def test_logging_flags_that_would_do_nothing_are_refused():
    rc, _, err = run_cli("train", "--epochs", "1", "--log-every", "5", "--quiet")
    assert rc == 2 and "--log-every 5 sets how often --history, --tensorboard or --mlflow log" in err
    rc, _, err = run_cli("train", "--epochs", "1", "--log-dir", "x", "--quiet")
    assert rc == 2 and "give one of them too" in err
    rc, _, err = run_cli("train", "--log-every", "0")
    assert rc == 2 and "expected a number of updates" in err
    rc, _, err = run_cli("train", "--epochs", "1", "--history", "h.csv", "--log-grad-norm", "--quiet")
    assert rc == 2 and "--log-grad-norm computes the gradient norm of the steps --log-every N logs" in err


def test_cli_computes_the_gradient_norm_when_asked(tmp_path):
    rc, out, err = run_cli("train", "--epochs", "1", "--history", tmp_path / "h.jsonl", "--log-every", "15",
                           "--log-grad-norm", "--quiet")
    steps = [json.loads(line) for line in open(tmp_path / "h.jsonl") if '"step"' in line]
    assert rc == 0 and [r["step"] for r in steps] == [15, 30, 45] and all(r["grad_norm"] > 0 for r in steps), err


@needs_mpi
def test_only_rank_0_logs_in_a_distributed_run(tmp_path, monkeypatch):
    """Two ranks, each with --mlflow: one MLflow run (a second rank logging would create its own), one history."""
    tracking = pytest.importorskip("mlflow.tracking", reason='the mlflow extra: pip install "xpnet[mlflow]"')
    result = mpi_json(mpirun(2, "-m", "xpnet", "train", "--distributed", "--epochs", 2, "--hidden", 8, "--mlflow",
                             "--log-dir", tmp_path, "--history", tmp_path / "h.jsonl", "--log-every", 10, "--quiet",
                             "--json", timeout=120))
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = tracking.MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    run, = client.search_runs([client.get_experiment_by_name("xpnet").experiment_id])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2]
    assert run.data.metrics["loss"] == pytest.approx(result["final_loss"]) and result["world_size"] == 2
    records = [json.loads(line) for line in open(tmp_path / "h.jsonl")]
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [1, 2]
    assert [r["step"] for r in records if r["kind"] == "step"] == [10, 20, 30, 40, 50, 60, 70, 80, 90]
