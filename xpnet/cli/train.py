"""`xpnet train`: settings from flags and a preset (a row of xpnet/models/presets.py), the model it builds,
checkpoints, resume, signals, progress, history and plots.

The shared helpers (load_dataset, label_names, ...) live in _common and `evaluate`/`predict` in their own
modules; their names are re-exported here for the old path xpnet.train (xpnet/_moved.py)."""
from __future__ import annotations

import csv
import shlex
import signal
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..init import check_seed
from ..models.presets import (DEFAULTS, PRESETS, as_images, default_lr, fit_options, learning_rate,  # noqa: F401
                              model_spec, preset_for, preset_settings, read_model_file, takes_images)
from ..layers.base import param_key
from ..data.datasets import CLASS_NAMES, class_mapping_note
from ..data.preprocessing import Scaler
from ..registry import model_from_config
from ..training.callbacks import ModelCheckpoint, ProgressBar
from ._common import (data_settings, input_kind, label_names, load_dataset, model_input, model_inputs,  # noqa: F401
                      print_json, progress_bar)
from .evaluate import confusion_table, run_evaluate  # noqa: F401  (re-exported: the old xpnet.train had them)
from .predict import run_predict, write_predictions  # noqa: F401

# DEFAULTS, PRESETS (a preset is one row), model_spec and fit_options live in xpnet/models/presets.py; this
# module reads a preset's row and names none (default_lr is imported for code that read it from here).

INTERRUPTED = "xpnet-interrupted.safetensors"


# The flags that configure a run (its model, data and training): the preset and DEFAULTS' keys but epochs.
# Every other flag is a run option (--epochs, --backend, --device, --data-dir, paths, output), free to
# change when a run is resumed.
CONFIG_FLAGS = ("preset", *[k for k in DEFAULTS if k != "epochs"])


def build_model(spec: dict, backend=None, device=None, **options):
    """model_from_config(spec); an allocation failure (a --classes or --hidden too large for the memory)
    becomes one OutOfMemory line saying what to lower."""
    from ..backend import out_of_memory_detail
    from ..training.loop import OutOfMemory
    try:
        return model_from_config(spec, backend, device, **options)
    except Exception as exc:
        why = out_of_memory_detail(exc)  # strings only: the failed arrays are freed below
        if why is None:
            raise
    raise OutOfMemory(f"not enough memory to build the model ({why}); lower --hidden, or --classes (or relabel "
                      f"the classes 0..k-1)")


def resolve_config(args, saved: dict | None = None) -> dict:
    """DEFAULTS < preset < flags given on the command line, refused where the preset refuses a setting; a
    resumed run's saved config as it is (its flags are the saved ones: `check_resume_flags`)."""
    if saved:
        return dict(DEFAULTS, **saved)
    cfg = preset_settings(args.preset) if args.preset else dict(DEFAULTS)
    for key in list(DEFAULTS) + ["dataset"]:
        value = getattr(args, key, None)
        if value is not None:
            cfg[key] = value
    if args.batch_size is not None:
        cfg["minibatches"] = None
    if args.minibatches is not None:
        cfg["batch_size"] = None
    for key, refusal in preset_for(cfg).refuses.items():
        if cfg.get(key):
            raise InputError(refusal)
    return cfg


def _effective(cfg: dict, key: str):
    """A resolved configuration value as the run uses it: no --lr is the optimizer's default rate, neither
    --batch-size nor --minibatches is batches of 32."""
    value = cfg.get(key)
    if key == "lr":
        return learning_rate(cfg)
    if key == "batch_size" and value is None and cfg.get("minibatches") is None:
        return 32
    return value


def _same(key: str, a, b) -> bool:
    if key == "dataset" and a != b and Path(a).is_file() and Path(b).is_file():
        return Path(a).resolve() == Path(b).resolve()
    return a == b


def _shown(value) -> str:
    if value is None:
        return "none"
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def check_resume_flags(args, saved: dict) -> None:
    """`xpnet train ... --resume PATH` may repeat the command that started the run: each configuration flag
    given (CONFIG_FLAGS, --preset included) must configure what the checkpoint's run used, presets and
    defaults resolved as a new run resolves them. Run options may differ. Raises one line naming every
    flag that differs, its value and what the checkpoint holds."""
    given = [k for k in CONFIG_FLAGS if getattr(args, k, None) is not None]
    if not given:
        return
    fresh, saved = resolve_config(args), dict(DEFAULTS, **saved)  # what the command configures as a new run
    diffs = []
    for key in given:
        if key == "preset" or _same(key, _effective(fresh, key), _effective(saved, key)):
            continue
        held = key
        if key in ("batch_size", "minibatches") and _effective(saved, key) is None:
            held = "minibatches" if key == "batch_size" else "batch_size"  # it trained by the other one
        diffs.append(f"--{key.replace('_', '-')} {_shown(getattr(args, key))} differs from the checkpoint's "
                     f"{held.replace('_', '-')} {_shown(_effective(saved, held))}")
    if args.preset:
        preset = PRESETS[args.preset].settings
        if preset.get("model") != saved.get("model"):
            theirs = next((name for name, p in PRESETS.items() if p.settings.get("model") == saved.get("model")),
                          None)
            diffs.append(f"--preset {args.preset} differs from the checkpoint's run, which used "
                         f"{'--preset ' + theirs if theirs else 'no preset'}")
        else:
            diffs += [f"--preset {args.preset} sets {k.replace('_', '-')} {_shown(_effective(fresh, k))}, which "
                      f"differs from the checkpoint's {_shown(_effective(saved, k))}" for k in preset
                      if k not in ("epochs", "model") and getattr(args, k, None) is None
                      and not _same(k, _effective(fresh, k), _effective(saved, k))]
    if diffs:
        raise InputError(f"{'; '.join(diffs)}; drop {'it' if len(diffs) == 1 else 'them'} or start a new run")


def _resume_command(path, args) -> str:
    """The command that continues an interrupted run: the one given (its flags as parsed), with
    --resume PATH in place of an earlier --resume."""
    parts = ["xpnet", "train"]
    for key, value in vars(args).items():
        if key in ("command", "func", "resume") or value is None or value is False or \
                (key == "label_column" and value == "label"):
            continue
        flag = "--" + key.replace("_", "-")
        parts += [flag] if value is True else [flag, _shown(value)]
    return " ".join(shlex.quote(str(p)) for p in parts + ["--resume", path])


def _distributed(args):
    """The communicator of `xpnet train --distributed` (None without the flag); on a GPU, rank r of a
    machine takes --device cuda as cuda:{r modulo the GPUs it sees}."""
    if not getattr(args, "distributed", False):
        return None
    if args.compile:
        raise InputError("--compile cannot be combined with --distributed: the compiled step fuses backward and "
                         "update, leaving no place for the all-reduce between them; drop --compile")
    from ..distributed.communicator import Communicator
    comm = Communicator()
    args.device = comm.device_for(args.backend, args.device)
    return comm


def cmd_train(args) -> int:
    result = run_train(args)
    if args.json and result.get("rank", 0) == 0:
        print_json(result)
    return 0


def run_train(args) -> dict:
    started = time.perf_counter()
    from ..saving.checkpoint import fingerprint, load
    from ..training.loop import TrainingInterrupted
    from ..data.datasets import check_dataset

    comm = _distributed(args)
    rank = 0 if comm is None else comm.rank
    quiet = args.quiet or rank != 0
    saved_model, saved_meta = None, None
    if args.resume:
        saved_model = load(args.resume, backend=args.backend, device=args.device, compile=args.compile)
        saved_meta = saved_model.checkpoint_meta_
        if not saved_meta.get("cli"):
            raise InputError(f"{args.resume} was not written by `xpnet train`; resume it from Python with "
                             f"xpnet.load(path).fit(X, y, resume=True)")
        check_resume_flags(args, saved_meta["cli"])
    cfg = resolve_config(args, saved_meta["cli"] if saved_meta else None)
    check_seed("seed", cfg["seed"])
    if args.epochs is not None:
        cfg["epochs"] = args.epochs
    data_dir, label_column = data_settings(args, saved_meta["cli"] if saved_meta else {})
    source = cfg["dataset"]  # a resumed run's file, wherever this command runs (unless --dataset names one)
    if saved_meta and not args.dataset and saved_meta["cli"].get("dataset_file") and not Path(source).is_file():
        source = saved_meta["cli"]["dataset_file"]
    X, y, X_test, y_test = load_dataset(source, data_dir, label_column, download=not args.offline)
    kind = input_kind(cfg["dataset"], X)
    image_shape = image_input(cfg, saved_model)
    if image_shape is not None:  # a convolutional model: (N, C, H, W), checked as flat rows below
        X = as_images(X, image_shape or None, cfg["dataset"])
        X_test = None if X_test is None else as_images(X_test, X.shape[1:], cfg["dataset"], "X_test")
    flat = (lambda a: a) if image_shape is None else (lambda a: None if a is None else a.reshape(len(a), -1))
    if saved_model is None:
        n_classes, classes_ = check_dataset(flat(X), y, flat(X_test), y_test, cfg["dataset"], cfg.get("classes"),
                                            label_column)
    elif saved_model.default_classes:  # resumed: the checkpoint's outputs 0..n-1
        n_classes, classes_ = check_dataset(flat(X), y, flat(X_test), y_test, cfg["dataset"], saved_model.n_outputs,
                                            label_column)
    else:
        n_classes, classes_ = check_dataset(flat(X), y, flat(X_test), y_test, cfg["dataset"], None, label_column,
                                            known=saved_model.classes_)
    y = np.asarray(y)
    fp = fingerprint(X, y)
    if saved_meta and saved_meta.get("data_fingerprint") != fp:
        raise InputError(f"{args.resume} was trained on other data than {cfg['dataset']!r} gives now (data "
                         f"fingerprints differ); resume with the same dataset and files")
    if saved_model is not None:
        model = saved_model
    else:
        spec = model_spec(X.shape[1], n_classes, cfg)
        if image_shape is not None:
            spec["config"].setdefault("input_shape", list(X.shape[1:]))
        model = build_model(spec, args.backend, args.device, **({"compile": True} if args.compile else {}))
        if cfg.get("model_file"):
            cfg["dtype"] = model.dtype_name
            check_outputs(model, n_classes, cfg["model_file"])
        model.preprocessing = Scaler(cfg["scale"])  # fitted on X by fit, saved with the model
        model.classes_ = classes_
        model.class_names_ = CLASS_NAMES.get(cfg["dataset"])
    if getattr(args, "no_native_kernels", False):
        model.native_kernels = False  # --no-native-kernels: the layers' array-API code (a run option, not saved)
    if model.dtype_name != cfg["dtype"]:
        raise InputError(f"{args.resume} holds a {model.dtype_name} model but records a {cfg['dtype']} run; the "
                         f"checkpoint is inconsistent, start a new run")
    if model.preprocessing is None:  # a checkpoint that recorded no scaling: its data was used as it was
        model.preprocessing = Scaler("raw")
    # where the data came from travels with the run, so evaluate and predict find it again (run options, not
    # compared on resume: --data-dir may change)
    cli_cfg = dict(cfg, **data_record(source, data_dir, label_column),
                   inputs="images" if image_shape is not None else kind)
    checkpointer = ModelCheckpoint(args.checkpoint, {"data_fingerprint": fp, "cli": cli_cfg}, writer=rank == 0)
    bar = not quiet and sys.stderr.isatty()
    callbacks = [checkpointer] + ([] if quiet else [ProgressBar(cfg["epochs"], bar=bar)])
    ranks = None if comm is None else comm.describe()
    if not quiet:
        what = "resuming" if saved_model is not None else "training"
        sample = f"{X.shape[1]} features" if X.ndim == 2 else f"images {'x'.join(map(str, X.shape[1:]))}"
        print(f"{what} on {cfg['dataset']}: {X.shape[0]} samples x {sample}, {n_classes} classes; "
              f"{model.bk.name} on {model.bk.device}, {cfg['dtype']}", flush=True)
        note = class_mapping_note(classes_)
        if note and saved_model is None:
            print(note, flush=True)
        if comm is not None:
            print(f"distributed over {comm.size} rank(s), global minibatch split between them: {ranks}", flush=True)

    received = []

    def on_signal(signum, frame):
        received.append(signum)
        model.state.stop_requested = True

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    t0 = time.perf_counter()
    try:
        model.fit(X, y, resume=saved_model is not None, callbacks=callbacks, **fit_options(cfg),
                  **({} if comm is None else {"distributed": comm}))
    except TrainingInterrupted as stopped:
        path = args.checkpoint or INTERRUPTED
        signum = received[-1] if received else signal.SIGINT
        if rank == 0:  # every rank stopped after the same step; one writes
            checkpointer.save(path, model)
            name = "SIGTERM" if signum == signal.SIGTERM else "SIGINT"
            launch = "" if comm is None else f"mpiexec -n {comm.size} "
            print(f"\nxpnet train: {name} received; saved the state {stopped.where} to {path}\n"
                  f"resume with: {launch}{_resume_command(path, args)}",
                  file=sys.stderr)
        raise SystemExit(143 if signum == signal.SIGTERM else 130) from None
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()  # scoring: one inference pass over the training data, one over the test split
    n_train = len(X) - int(round(len(X) * fit_options(cfg).get("validation_split", 0.0)))  # fit's last rows held out
    with progress_bar(n_train, "train accuracy", bar) as update:
        train_acc = model.score(X[:n_train], y[:n_train], progress=update)
    test_pred = test_acc = None
    if X_test is not None:
        with progress_bar(len(X_test), "test accuracy", bar) as update:
            test_pred = np.asarray(model.predict(X_test, progress=update))
        test_acc = float(np.mean(model.encode_labels(test_pred, len(test_pred)) ==
                                 model.encode_labels(y_test, len(y_test))))  # == model.score(X_test, y_test)
    scoring = time.perf_counter() - t1
    history = model.history_
    if args.history and rank == 0:
        write_history(args.history, history)
    if args.plot and rank == 0:
        from ..tools.plots import write_plots
        pred = test_pred
        nb = max(1, len(model.batch_losses_) // max(1, len(history["epoch"]))) if history["epoch"] else 1
        paths = write_plots(args.plot, model.batch_losses_, history, nb, X_test, y_test, pred,
                            names=label_names(model, by_label=True))
        first = model.layers[0]
        if getattr(first, "registered_name", "") == "Conv2D.v1":
            from ..tools.plots import write_filters
            paths.append(write_filters(args.plot, model.bk.to_numpy(model.state.params[param_key(0, "weight")])))
        if not quiet:
            print("plots: " + ", ".join(map(str, paths)))
    total = time.perf_counter() - started
    if not quiet:
        print(f"train accuracy {train_acc:.4f}" + ("" if test_acc is None else f"  test accuracy {test_acc:.4f}") +
              f"  (training {seconds:.1f} s, scoring {scoring:.1f} s; {total:.1f} s in all)", flush=True)
    return {"backend": model.bk.name, "device": model.bk.device, "dtype": cfg["dtype"],
            "epochs": len(history["epoch"]), "seconds": seconds, "scoring_seconds": scoring, "total_seconds": total,
            "train_accuracy": train_acc,
            "test_accuracy": test_acc, "final_loss": history["loss"][-1] if history["loss"] else None,
            "checkpoint": str(args.checkpoint) if args.checkpoint else None,
            **({} if comm is None else {"rank": rank, "world_size": comm.size})}


FILE_DATASETS = (".npz", ".csv")


def data_record(dataset: str, data_dir, label_column: str) -> dict:
    """What a checkpoint records of where its data was: the IDX folder (absolute; the default one resolved
    now) for mnist and fashion-mnist, the file's absolute path for a .npz or .csv, and the label column."""
    from ..data.datasets import default_data_dir
    record = {"label_column": label_column}
    if dataset in ("mnist", "fashion-mnist"):
        record["data_dir"] = str(Path(data_dir or default_data_dir()).expanduser().resolve())
    elif str(dataset).endswith(FILE_DATASETS):
        record["dataset_file"] = str(Path(dataset).expanduser().resolve())
    return record


def image_input(cfg: dict, saved_model=None):
    """None for a model taking flat rows; for one taking images, their (C, H, W), or () when only the data can
    say (a --model file without input_shape)."""
    if saved_model is not None:
        return tuple(saved_model.input_shape) if len(saved_model.input_shape) == 3 else None
    shape = preset_for(cfg).input_shape
    if shape is not None:
        return shape
    if cfg.get("model_file"):
        spec = read_model_file(cfg["model_file"])
        if takes_images(spec):
            return tuple(spec["config"].get("input_shape") or ())
    return None


def check_outputs(model, n_classes: int, path) -> None:
    if model.n_outputs != n_classes:
        raise InputError(f"--model {path}: the model has {model.n_outputs} outputs but the data has {n_classes} "
                         f"classes; make its last layer Dense(..., {n_classes})")


def write_history(path, history: dict) -> None:
    from ..training.loop import HISTORY_KEYS
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HISTORY_KEYS)
        for row in zip(*(history[k] for k in HISTORY_KEYS)):
            w.writerow(["" if v is None else v for v in row])
