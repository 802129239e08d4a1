"""`xpnet train`: settings from flags and a preset (a row of xpnet/models/presets.py), the model it builds,
checkpoints, resume, signals, progress, history and plots.

The shared helpers (load_dataset, label_names, ...) live in _common and `evaluate`/`predict` in their own
modules; their names are re-exported here for the old path xpnet.train (xpnet/_moved.py)."""
from __future__ import annotations

import argparse
import shlex
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..init import check_seed
from ..models.presets import (DEFAULTS, PRESETS, as_images, default_lr, fit_options, learning_rate,  # noqa: F401
                              model_spec, preset_for, preset_settings, read_model_file, takes_images, with_overrides)
from ..models.presets import AUGMENT_HELP, canonical_augment
from ..layers.base import param_key
from ..data.datasets import CLASS_NAMES, class_mapping_note
from ..data.preprocessing import Scaler
from ..registry import model_from_config
from ..training.callbacks import ModelCheckpoint, ProgressBar
from ._common import (common_flags, data_settings, input_kind, label_names, layer_sizes, load_dataset,  # noqa: F401
                      model_input, model_inputs, print_json, progress_bar)
from . import _datasets
from ._loggers import add_flags as add_logging_flags, make_loggers
from .evaluate import confusion_table, run_evaluate  # noqa: F401  (re-exported: the old xpnet.train had them)
from .predict import run_predict, write_predictions  # noqa: F401

# DEFAULTS, PRESETS (a preset is one row), model_spec and fit_options live in xpnet/models/presets.py; this
# module reads a preset's row and names none (default_lr is imported for code that read it from here).

INTERRUPTED = "xpnet-interrupted.safetensors"


# The flags that configure a run (its model, data and training): the preset and DEFAULTS' keys but epochs.
# Every other flag is a run option (--epochs, --backend, --device, --data-dir, paths, output), free to
# change when a run is resumed.
CONFIG_FLAGS = ("preset", *[k for k in DEFAULTS if k != "epochs"])
#: a text run's run options, which a GPT preset sets and a resumed run may change like --epochs
TEXT_RUN_OPTIONS = ("steps", "eval_every", "eval_batches")


def add_parser(sub) -> None:
    """`xpnet train`'s flags: DEFAULTS' keys (None: the preset's or the default), run options, paths, output.
    --help lists them in the order they are added: the groups below, in this order."""
    sp = sub.add_parser("train", help="train a model (default: an MLP on the embedded 8x8 digits, offline)")
    common_flags(sp)
    for flags in (_source_flags, _network_flags, _optimizer_flags, _gpt_flags, _run_flags, _fit_flags, _output_flags):
        flags(sp)
    sp.set_defaults(func=cmd_train)


def _source_flags(sp) -> None:
    """What is trained on what: --preset, --model, the dataset, where its files are, a file dataset's
    own flags (_datasets.add_flags), its labels."""
    sp.add_argument("--preset", default=None, help=", ".join(f"{name} ({p.about})" for name, p in PRESETS.items()) +
                    "; flags given beside it override it")
    sp.add_argument("--model", dest="model_file", default=None, metavar="FILE.json",
                    help="the model as a registry config (JSON: {\"class\": \"Sequential\", \"config\": {\"layers\": "
                         "[...]}}, e.g. examples/lenet5.json); replaces --hidden and --activation")
    sp.add_argument("--dataset", default=None, help="digits (default), mnist, fashion-mnist, a .npz/.csv file, a "
                    ".npy file or folder of .npy shards read memory-mapped (with --labels), a folder of class "
                    "folders of images (docs/datasets.md), or tinyshakespeare (a character-level language model: "
                    "with a GPT preset or --model; docs/gpt.md)")
    sp.add_argument("--data-dir", default=None, help="folder with the IDX files (default: $XPNET_DATA or a cache)")
    _datasets.add_flags(sp)
    sp.add_argument("--label-column", default=None, help="label column of a .csv dataset (default label; a resumed "
                    "run's own)")
    sp.add_argument("--classes", type=_classes, default=None, metavar="N", help="number of outputs: labels must be "
                    "0..N-1 (default: max label + 1, refused when more than half would get no training sample)")


def _network_flags(sp) -> None:
    """An MLP's layers and the loss: --hidden, --activation, --loss."""
    from ..layers.activations import ACTIVATION_NAMES as ACTIVATIONS
    from ..registry import aliases
    sp.add_argument("--hidden", type=layer_sizes, default=None, help="hidden layer sizes, e.g. 100,50 (default 100)")
    sp.add_argument("--activation", choices=list(ACTIVATIONS), default=None, help="hidden activation (default relu)")
    sp.add_argument("--loss", choices=list(aliases("loss")), default=None, help="default softmax_cross_entropy")


def _optimizer_flags(sp) -> None:
    """The optimizer and its regimes: the rate, epochs and minibatches, accumulation, clipping, weight
    decay and its parameter groups, per-step schedules."""
    from ..registry import aliases
    sp.add_argument("--optimizer", choices=list(aliases("optimizer")), default=None, help="default sgd")
    sp.add_argument("--lr", type=float, default=None, help="learning rate (default 0.1 for SGD, 0.001 for Adam)")
    sp.add_argument("--momentum", type=float, default=None, help="SGD momentum (default 0.9)")
    sp.add_argument("--l1", type=float, default=None)
    sp.add_argument("--l2", type=float, default=None)
    sp.add_argument("--epochs", type=int, default=None, help="default 30")
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--batch-size", type=int, default=None, help="minibatch size (default 32)")
    g.add_argument("--minibatches", type=int, default=None, help="number of minibatches per epoch (the book's)")
    sp.add_argument("--accumulate", type=int, default=None, metavar="K",
                    help="compute each minibatch as K micro-batches and sum their gradients before one update "
                         "(the same training in 1/K of the activation memory; default 1)")
    # training regimes (docs/regimes.md): clipping, weight decay and its parameter groups, per-step schedules
    sp.add_argument("--clip-norm", type=float, default=None, metavar="MAX",
                    help="clip the gradients by their global norm (PyTorch's clip_grad_norm_), e.g. 1.0; the norm "
                         "before clipping is in the history (grad_norm)")
    sp.add_argument("--clip-value", type=float, default=None, metavar="V", help="clip each gradient element to [-V, V]")
    sp.add_argument("--weight-decay", type=float, default=None, help="the optimizer's weight decay (adamw: "
                    "decoupled, default 0.01; adam and sgd: added to the gradient, default 0)")
    sp.add_argument("--param-groups", choices=["nanogpt", "mingpt"], default=None,
                    help="weight decay by parameter kind: nanogpt (weights and embeddings decay, biases and "
                         "normalization weights do not) or mingpt (embeddings do not decay either)")
    sp.add_argument("--warmup-steps", type=int, default=None, metavar="N",
                    help="a per-step schedule: the rate rises linearly over N updates to --lr, then decays")
    sp.add_argument("--decay-steps", type=int, default=None, metavar="N",
                    help="the per-step decay ends at update N, at --min-lr (default: no decay after the warmup)")
    sp.add_argument("--min-lr", type=float, default=None, help="the rate the per-step decay ends at (default 0)")
    sp.add_argument("--lr-decay", choices=["cosine", "linear"], default=None,
                    help="the shape of the per-step decay (default cosine)")


def _gpt_flags(sp) -> None:
    """A text dataset's language model (docs/gpt.md): its shape."""
    sp.add_argument("--layers", type=int, default=None, help="a GPT's transformer blocks (its preset's: 4 on CPU)")
    sp.add_argument("--heads", type=int, default=None, help="a GPT's attention heads")
    sp.add_argument("--dim", type=int, default=None, help="a GPT's embedding width")
    sp.add_argument("--block", type=int, default=None, help="a GPT's context length (tokens)")
    sp.add_argument("--dropout", type=float, default=None, help="a GPT's dropout probability")


def _run_flags(sp) -> None:
    """A text run's steps and estimates, compile, distributed, prefetch, kernels, seed, dtype, precision."""
    sp.add_argument("--steps", type=int, default=None, help="a text run's total updates (its preset's: 2000 on CPU); "
                    "a run option")
    sp.add_argument("--eval-every", type=int, default=None, metavar="N",
                    help="a text run: estimate the validation loss every N steps (and checkpoint); a run option")
    sp.add_argument("--eval-batches", type=int, default=None, metavar="K",
                    help="a text run: each estimate on K minibatches of random validation blocks; a run option")
    sp.add_argument("--compile", action="store_true",
                    help="run each training step as one compiled call (jax: jax.jit); a run option, not configuration")
    sp.add_argument("--distributed", action="store_true",
                    help="data-parallel over the processes an MPI launcher started (mpiexec -n 4 xpnet train "
                         "--distributed ...): --batch-size is the global minibatch; a run option")
    sp.add_argument("--prefetch", type=int, default=None, metavar="N",
                    help="read and stage the next N minibatches of a dataset in N background threads while the "
                         "step runs, and while it is scored (the same batches, order and results; default 0: each "
                         "step reads its own); in-memory arrays have nothing to prefetch; a run option")
    sp.add_argument("--no-native-kernels", action="store_true", help="run convolution and pooling by xpnet's "
                    "array-API code even where the backend has its own kernels (torch, jax); a run option")
    sp.add_argument("--seed", type=int, default=None, help="default 1")
    sp.add_argument("--dtype", choices=["float32", "float64"], default=None, help="default float32")
    sp.add_argument("--precision", choices=["bf16-mixed", "fp16-mixed"], default=None,
                    help="mixed precision: compute in bfloat16 or float16, weights and optimizer in --dtype "
                         "(docs/precision.md); saved with the model")


def _fit_flags(sp) -> None:
    """How the data is fit: scaling, validation, early stopping, class weights, the task, label smoothing,
    augmentation, the figure early stopping and the best checkpoint watch."""
    sp.add_argument("--scale", choices=["raw", "unit", "symmetric", "standardize"], default=None,
                    help="input scaling (default unit: [0, 1])")
    sp.add_argument("--validation-split", type=float, default=None, help="hold out the last fraction for validation")
    sp.add_argument("--early-stopping", type=int, default=None, metavar="PATIENCE")
    sp.add_argument("--class-weight", choices=["balanced"], default=None,
                    help="weigh each class's samples by n / (classes x its count) (scikit-learn's 'balanced')")
    sp.add_argument("--task", choices=["classification", "regression"], default=None,
                    help="regression: fit continuous targets (a .csv's label column, an .npz's y of shape (samples,) "
                         "or (samples, outputs)) with the identity output and MSE, scored by R² (default "
                         "classification)")
    sp.add_argument("--label-smoothing", type=float, default=None, metavar="E",
                    help="softmax cross-entropy against (1 - E) one-hot + E / classes (a new run's loss)")
    sp.add_argument("--augment", type=_augment, default=None, metavar="LIST",
                    help=f"augment training images on the device, per sample, from the run's seed: {AUGMENT_HELP} "
                         f"(RandomCrop(padding) and RandomFlip(p) layers put first in the model; identity when "
                         f"evaluating and predicting; image models only)")
    sp.add_argument("--monitor", default=None, metavar="NAME",
                    help="the validation figure --early-stopping and --best-checkpoint watch: val_loss (default), "
                         "val_accuracy, val_f1_macro, val_precision_weighted, ... (min/max from the name)")
    sp.add_argument("--best-checkpoint", default=None, metavar="PATH",
                    help="write the model of the best epoch by --monitor here")


def _output_flags(sp) -> None:
    """Downloads, checkpoints and resume, logging, plots, the per-epoch output."""
    sp.add_argument("--offline", action="store_true", help="never download data")
    sp.add_argument("--checkpoint", default=None, metavar="PATH", help="write a checkpoint here after every epoch")
    sp.add_argument("--resume", default=None, metavar="PATH", help="continue the run saved in this checkpoint")
    add_logging_flags(sp)  # --history, --log-every, --log-grad-norm, --log-dir, --tensorboard, --mlflow
    sp.add_argument("--plot", default=None, metavar="DIR",
                    help='write cost, accuracy and misclassified-digit PNGs, and the first Conv2D layer filters '
                    '(needs matplotlib: pip install "xpnet[plot]")')
    sp.add_argument("--quiet", action="store_true", help="no per-epoch output")


def _classes(text: str) -> int:
    """argparse type of --classes: a whole number from 2 to MAX_CLASSES."""
    from ..data.datasets import MAX_CLASSES
    try:
        n = int(text)
    except ValueError:
        n = None
    if n is None or not 2 <= n <= MAX_CLASSES:
        raise argparse.ArgumentTypeError(f"expected the number of classes, a whole number from 2 to {MAX_CLASSES}, "
                                         f"got {text!r}")
    return n


def _augment(text: str) -> str:
    """argparse type of --augment: its canonical form ("crop,flip" -> "crop=4,flip=0.5"), as the run records it."""
    try:
        return canonical_augment(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
    cfg = with_overrides(preset_settings(args.preset) if args.preset else dict(DEFAULTS),
                         {key: getattr(args, key, None) for key in list(DEFAULTS) + ["dataset"]})
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
                      if k not in ("epochs", "model", *TEXT_RUN_OPTIONS) and getattr(args, k, None) is None
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


@dataclass
class _Run:
    """What `xpnet train` resolved before it builds a model: the checkpoint resumed (model None for a new run;
    saved: its `cli` settings, {} for a new run), the settings (cfg), where the data came from (source,
    data_dir, label_column), the data as the model takes it (X: (N, features) or images (N, C, H, W); y
    labels), what the samples are (kind, image_shape: None for flat rows), the classes and the fingerprint."""
    saved_model: object
    saved: dict
    cfg: dict
    source: str
    data_dir: object
    label_column: str
    X: object
    y: object
    X_test: object
    y_test: object
    kind: object
    image_shape: object
    n_classes: int
    classes_: object
    fp: str
    shape: tuple = None  # one sample's shape as the model takes it (a dataset's; arrays: X.shape[1:])

    def __post_init__(self):
        if self.shape is None:
            self.shape = tuple(self.X.shape[1:])


def run_train(args) -> dict:
    """`xpnet train` in its steps: the run resolved (resume, settings, dataset), the model built or
    restored, callbacks and signal handling around fit, then scoring, history, plots and the report
    (returned: what --json prints)."""
    from ..data.text import is_text_dataset
    if is_text_dataset(args.dataset or _resumed_dataset(args) or (preset_settings(args.preset)["dataset"]
                                                                  if args.preset else None)):
        from ._text import run_text_train
        if getattr(args, "distributed", False):
            raise InputError("--distributed trains on arrays; a text dataset trains on one process: drop it")
        return run_text_train(args, resolve_config, check_resume_flags, build_model)
    given = [f"--{k.replace('_', '-')}" for k in ("steps", "eval_every", "eval_batches") if getattr(args, k, None)]
    if given:
        raise InputError(f"{', '.join(given)} train a text dataset by steps (--dataset tinyshakespeare); this run "
                         f"trains by --epochs: drop {'it' if len(given) == 1 else 'them'}")
    started = time.perf_counter()
    comm = _distributed(args)
    rank = 0 if comm is None else comm.rank
    quiet = args.quiet or rank != 0
    run = _resolve_run(args)
    model = _model_for(args, run)
    cfg = run.cfg
    # where the data came from travels with the run, so evaluate and predict find it again (run options, not
    # compared on resume: --data-dir may change)
    cli_cfg = dict(cfg, **data_record(run.source, run.data_dir, run.label_column),
                   inputs="images" if run.image_shape is not None else run.kind)
    checkpointer = ModelCheckpoint(args.checkpoint, {"data_fingerprint": run.fp, "cli": cli_cfg}, writer=rank == 0)
    bar = not quiet and sys.stderr.isatty()
    callbacks = [checkpointer] + ([] if quiet else [ProgressBar(cfg["epochs"], bar=bar)])
    callbacks += make_loggers(args, model, cli_cfg, checkpointer, rank)  # --history, --tensorboard, --mlflow
    if not quiet:
        _announce(run, model, comm)
    seconds = _fit_with_signals(args, run, model, callbacks, checkpointer, comm)
    train_acc, test_pred, test_acc, scoring = _score(run, model, bar, getattr(args, "prefetch", None) or 0)
    history = model.history_
    if args.plot and rank == 0:
        _plot(args, run, model, None if model.regression else test_pred, quiet)
    total = time.perf_counter() - started
    figure = "R²" if model.regression else "accuracy"  # a regression run scores R² (model.score)
    precision = {"precision": None if model.precision is None else model.precision.name}
    if not quiet:
        print(f"train {figure} {train_acc:.4f}" + ("" if test_acc is None else f"  test {figure} {test_acc:.4f}") +
              f"  (training {seconds:.1f} s, scoring {scoring:.1f} s; {total:.1f} s in all)", flush=True)
    if model.regression:
        return {"backend": model.bk.name, "device": model.bk.device, "dtype": cfg["dtype"], **precision,
                "task": "regression",
                "epochs": len(history["epoch"]), "seconds": seconds, "scoring_seconds": scoring,
                "total_seconds": total, "train_r2": train_acc, "test_r2": test_acc,
                "final_loss": history["loss"][-1] if history["loss"] else None,
                "checkpoint": str(args.checkpoint) if args.checkpoint else None,
                **({} if comm is None else {"rank": rank, "world_size": comm.size})}
    return {"backend": model.bk.name, "device": model.bk.device, "dtype": cfg["dtype"], **precision,
            "epochs": len(history["epoch"]), "seconds": seconds, "scoring_seconds": scoring, "total_seconds": total,
            "train_accuracy": train_acc,
            "test_accuracy": test_acc, "final_loss": history["loss"][-1] if history["loss"] else None,
            "checkpoint": str(args.checkpoint) if args.checkpoint else None,
            **({} if comm is None else {"rank": rank, "world_size": comm.size})}


def _resumed_dataset(args):
    """The dataset the run in --resume's checkpoint trained on (None without --resume, or where it says none)."""
    if not getattr(args, "resume", None):
        return None
    from ..saving.checkpoint import read
    return (read(args.resume)[0].get("cli") or {}).get("dataset")


def _resume(args):
    """(the model of --resume's checkpoint, its `cli` settings), checked against the flags given; (None, {})
    for a new run."""
    from ..saving.checkpoint import load
    if not args.resume:
        return None, {}
    saved_model = load(args.resume, backend=args.backend, device=args.device, compile=args.compile)
    saved = saved_model.checkpoint_meta_.get("cli")
    if not saved:
        raise InputError(f"{args.resume} was not written by `xpnet train`; resume it from Python with "
                         f"xpnet.load(path).fit(X, y, resume=True)")
    check_resume_flags(args, saved)
    return saved_model, saved


def _resolve_run(args) -> _Run:
    """The run to train: the checkpoint resumed, the settings, the dataset loaded and checked (its classes
    against the checkpoint's, its fingerprint against the one the run was trained on)."""
    from ..saving.checkpoint import fingerprint
    from ..data.datasets import check_dataset
    saved_model, saved = _resume(args)
    cfg = resolve_config(args, saved or None)
    check_seed("seed", cfg["seed"])
    if args.epochs is not None:
        cfg["epochs"] = args.epochs
    data_dir, label_column = data_settings(args, saved)
    source = cfg["dataset"]  # a resumed run's file, wherever this command runs (unless --dataset names one)
    if saved and not args.dataset and saved.get("dataset_file") and not Path(source).is_file():
        source = saved["dataset_file"]
    if _datasets.is_file_dataset(source):
        return _resolve_dataset_run(args, cfg, saved_model, saved, source, data_dir, label_column)
    X, y, X_test, y_test = load_dataset(source, data_dir, label_column, download=not args.offline)
    cfg["task"] = _task(args, cfg, saved_model)
    kind = input_kind(cfg["dataset"], X)
    image_shape = image_input(cfg, saved_model)
    if image_shape is not None:  # a convolutional model: (N, C, H, W), checked as flat rows below
        X = as_images(X, image_shape or None, cfg["dataset"])
        X_test = None if X_test is None else as_images(X_test, X.shape[1:], cfg["dataset"], "X_test")
    flat = (lambda a: a) if image_shape is None else (lambda a: None if a is None else a.reshape(len(a), -1))
    if cfg["task"] == "regression":  # continuous targets: their columns are the outputs, there are no classes
        n_classes, classes_ = _regression_outputs(flat(X), y, flat(X_test), y_test, cfg["dataset"]), None
    elif saved_model is None:
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
    if saved_model is not None and saved_model.checkpoint_meta_.get("data_fingerprint") != fp:
        raise InputError(f"{args.resume} was trained on other data than {cfg['dataset']!r} gives now (data "
                         f"fingerprints differ); resume with the same dataset and files")
    return _Run(saved_model, saved, cfg, source, data_dir, label_column, X, y, X_test, y_test, kind, image_shape,
                n_classes, classes_, fp)


def _resolve_dataset_run(args, cfg, saved_model, saved, source, data_dir, label_column) -> _Run:
    """_resolve_run for data read batch by batch (a .npy file or shard folder, an image folder): X the dataset,
    y None, no test split; the model's input shape from the dataset's rows, the classes from its labels."""
    opts = _datasets.settings(args, saved)
    ds = _datasets.open_dataset(source, opts)
    if hasattr(ds, "class_names"):  # an image folder: the size and color it was read with, as the run records them
        opts.update(image_size="x".join(map(str, ds.size)), color=ds.color)
    cfg.update(opts)
    cfg["task"] = _task(args, cfg, saved_model)
    if cfg["task"] == "regression":
        raise InputError(f"--task regression fits continuous targets from arrays; {source} is read batch by batch "
                         f"with class labels: use a .npz or .csv file")
    if cfg.get("validation_split"):
        raise InputError(f"--validation-split holds out the last rows of arrays; {source} is read batch by batch "
                         f"and has no validation split yet: drop it")
    image_shape = image_input(cfg, saved_model)
    shape = _datasets.input_shape(ds, image_shape)
    kind = "images" if hasattr(ds, "class_names") or len(ds.sample_shape) >= 2 else "table"
    n_classes = _datasets.classes(ds, cfg.get("classes"), saved_model)
    fp = ds.fingerprint()
    if saved_model is not None and saved_model.checkpoint_meta_.get("data_fingerprint") != fp:
        raise InputError(f"{args.resume} was trained on other data than {source!r} gives now (data fingerprints "
                         f"differ); resume with the same dataset and files")
    return _Run(saved_model, saved, cfg, source, data_dir, label_column, ds, None, None, None, kind,
                None if image_shape is None else shape, n_classes, None, fp, shape)


def _model_for(args, run: _Run):
    """The model to train: the resumed checkpoint's, or a new one built from the settings (its input scaling,
    classes and class names set), checked against the settings' dtype."""
    cfg, X = run.cfg, run.X
    if run.saved_model is not None:
        model = run.saved_model
        e = getattr(args, "label_smoothing", None)
        if e is not None and e != getattr(model.loss, "label_smoothing", None):
            raise InputError(f"--label-smoothing {e}: the run being resumed trains its saved loss ({model.loss!r}); "
                             f"drop the flag, or start a new run")
    else:
        spec = _with_label_smoothing(model_spec(run.shape[0], run.n_classes, cfg), args)
        if cfg["task"] == "regression":
            _as_regression(spec, args)
        if run.image_shape is not None:
            spec["config"].setdefault("input_shape", list(run.shape))
        options = {"compile": True} if args.compile else {}
        if getattr(args, "precision", None):
            options["precision"] = args.precision
        model = build_model(spec, args.backend, args.device, **options)
        if cfg.get("model_file"):
            cfg["dtype"] = model.dtype_name
            check_outputs(model, run.n_classes, cfg["model_file"])
        model.preprocessing = Scaler(cfg["scale"])  # fitted on X by fit, saved with the model
        if not model.regression:
            model.classes_ = run.classes_
            model.class_names_ = getattr(X, "class_names", None) or CLASS_NAMES.get(cfg["dataset"])
    if getattr(args, "no_native_kernels", False):
        model.native_kernels = False  # --no-native-kernels: the layers' array-API code (a run option, not saved)
    if model.dtype_name != cfg["dtype"]:
        raise InputError(f"{args.resume} holds a {model.dtype_name} model but records a {cfg['dtype']} run; the "
                         f"checkpoint is inconsistent, start a new run")
    if model.preprocessing is None:  # a checkpoint that recorded no scaling: its data was used as it was
        model.preprocessing = Scaler("raw")
    return model


def _announce(run: _Run, model, comm) -> None:
    """The lines printed before training: the data, the model's backend, device and dtype, a note on how
    labels map to outputs (new runs), the ranks of a distributed run, the model's summary (layers, parameters,
    FLOPs)."""
    cfg, X = run.cfg, run.X
    what = "resuming" if run.saved_model is not None else "training"
    sample = f"{run.shape[0]} features" if len(run.shape) == 1 else f"images {'x'.join(map(str, run.shape))}"
    outputs = f"{run.n_classes} target{'s' if run.n_classes != 1 else ''} (regression)" if model.regression \
        else f"{run.n_classes} classes"
    print(f"{what} on {cfg['dataset']}: {len(X)} samples x {sample}, {outputs}; "
          f"{model.bk.name} on {model.bk.device}, {cfg['dtype']}" +
          ("" if model.precision is None else f" weights, {model.precision.name} compute"), flush=True)
    note = class_mapping_note(run.classes_)
    if note and run.saved_model is None:
        print(note, flush=True)
    if comm is not None:
        print(f"distributed over {comm.size} rank(s), global minibatch split between them: {comm.describe()}",
              flush=True)
    model.summary()


def _task(args, cfg: dict, saved_model) -> str:
    """The run's task: --task, else a resumed run's (its model's), else classification; a resumed run keeps its
    own (refused when --task names the other)."""
    task = getattr(args, "task", None)
    if saved_model is not None:
        if task is not None and task != saved_model.task:
            raise InputError(f"--task {task} differs from the checkpoint's run, which is a {saved_model.task}; drop "
                             f"it or start a new run")
        return saved_model.task
    return task or cfg.get("task") or "classification"


def _regression_outputs(X, y, X_test, y_test, source) -> int:
    """--task regression: the number of target columns (1 for (samples,) targets), every target a finite number
    and the test split's as wide; refused in one line naming the dataset otherwise."""
    from ..data.regression import check_targets
    y = np.asarray(y)
    outputs = 1 if y.ndim == 1 else y.shape[1] if y.ndim == 2 else 0
    if outputs < 1 or len(y) != len(X):
        raise InputError(f"{source}: --task regression takes targets of shape (samples,) or (samples, outputs) for "
                         f"{len(X)} samples, got {y.shape}")
    check_targets(y, len(X), outputs, f"{source}'s targets")
    if y_test is not None:
        check_targets(y_test, len(X_test), outputs, f"{source}'s test targets")
    return outputs


def _as_regression(spec: dict, args) -> None:
    """A new regression run's model config: task regression with the MSE loss (the identity output)."""
    loss = getattr(args, "loss", None)
    if loss is not None and loss not in ("mse", "MSE.v1", "MSE"):
        raise InputError(f"--loss {loss} squashes the outputs into probabilities; --task regression fits continuous "
                         f"targets with --loss mse (its default)")
    if getattr(args, "label_smoothing", None) is not None:
        raise InputError("--label-smoothing smooths class labels; --task regression has none: drop it")
    spec["config"]["loss"] = "mse"
    spec["config"]["task"] = "regression"


def _with_label_smoothing(spec: dict, args) -> dict:
    """The model config with --label-smoothing E in its softmax cross-entropy loss (refused for another loss)."""
    e = getattr(args, "label_smoothing", None)
    if e is None:
        return spec
    loss = spec["config"].get("loss", "softmax_cross_entropy")
    name = loss if isinstance(loss, str) else loss.get("class")
    if name not in ("softmax_cross_entropy", "SoftmaxCrossEntropy.v1", "SoftmaxCrossEntropy"):
        raise InputError(f"--label-smoothing applies to the softmax_cross_entropy loss, and this run's is {name}; "
                         f"drop it or use --loss softmax_cross_entropy")
    config = dict(loss.get("config") or {}) if isinstance(loss, dict) else {}
    spec["config"]["loss"] = {"class": "SoftmaxCrossEntropy.v1", "config": dict(config, label_smoothing=e)}
    return spec


def _weight_and_monitor_options(args, cfg: dict, callbacks: list, comm) -> dict:
    """fit's class_weight (--class-weight) and the monitored early stopping (--monitor with --early-stopping);
    --best-checkpoint adds its ModelCheckpoint(monitor=) to `callbacks` (rank 0 writes)."""
    from ..training.callbacks import EarlyStopping
    options = {}
    if getattr(args, "class_weight", None):
        options["class_weight"] = args.class_weight
    monitor, best = getattr(args, "monitor", None), getattr(args, "best_checkpoint", None)
    if monitor is None and best is None:
        return options
    monitor = monitor or "val_loss"
    if monitor.startswith("val_") and monitor != "val_loss" and not cfg.get("validation_split"):
        raise InputError(f"--monitor {monitor} is a validation figure: give --validation-split (e.g. 0.1) too")
    if cfg.get("early_stopping"):
        options["early_stopping"] = EarlyStopping(cfg["early_stopping"], monitor=monitor)
    elif best is None:
        raise InputError("--monitor names the figure --early-stopping and --best-checkpoint watch; give one of them")
    if best is not None:
        callbacks.append(ModelCheckpoint(best, writer=comm is None or comm.rank == 0, monitor=monitor))
    return options


def _fit_with_signals(args, run: _Run, model, callbacks: list, checkpointer, comm) -> float:
    """model.fit with SIGINT and SIGTERM caught: either stops the run after the current step, saves its state
    (rank 0; to --checkpoint or INTERRUPTED), says how to resume, and exits 130 (SIGINT) or 143 (SIGTERM).
    The handlers before are put back. Returns the seconds fit took."""
    from ..training.loop import TrainingInterrupted
    received = []

    def on_signal(signum, frame):
        received.append(signum)
        model.state.stop_requested = True

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    t0 = time.perf_counter()
    try:
        options = dict(fit_options(run.cfg), **_weight_and_monitor_options(args, run.cfg, callbacks, comm))
        model.fit(run.X, run.y, resume=run.saved_model is not None, callbacks=callbacks, **options,
                  **({} if comm is None else {"distributed": comm}),
                  **_prefetch_option(args, run.X))
    except TrainingInterrupted as stopped:
        path = args.checkpoint or INTERRUPTED
        signum = received[-1] if received else signal.SIGINT
        if comm is None or comm.rank == 0:  # every rank stopped after the same step; one writes
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
    return time.perf_counter() - t0


def _prefetch_option(args, X) -> dict:
    """fit's prefetch= from --prefetch N: given for a dataset only (arrays are on the device already, and the
    book's NeuralNetMLP.fit takes arrays alone), so --prefetch with arrays changes nothing."""
    from ..checks import Interval, check
    from ..training.sources import is_dataset
    prefetch = getattr(args, "prefetch", None)
    if prefetch is not None:  # refused with arrays too
        check("prefetch", prefetch, Interval(int, 0, None), hint="the minibatches of a dataset read ahead (0: none)")
    return {"prefetch": prefetch} if prefetch and is_dataset(X) else {}


def _score(run: _Run, model, bar: bool, prefetch: int = 0) -> tuple:
    """(train accuracy, test predictions, test accuracy, seconds): one inference pass over the training rows
    (those fit did not hold out for validation), one over the test split when there is one (else None, None).
    prefetch: a dataset's batches read ahead by as many threads (--prefetch)."""
    X, y, X_test, y_test = run.X, run.y, run.X_test, run.y_test
    t1 = time.perf_counter()
    if y is None:  # a dataset read batch by batch: its accuracy, one pass
        return _datasets.evaluate(model, X, prefetch)[1], None, None, time.perf_counter() - t1
    n_train = len(X) - int(round(len(X) * fit_options(run.cfg).get("validation_split", 0.0)))  # held out by fit
    with progress_bar(n_train, "train accuracy", bar) as update:
        train_acc = model.score(X[:n_train], y[:n_train], progress=update)
    test_pred = test_acc = None
    if X_test is not None and model.regression:  # R² of the test split
        test_acc = model.score(X_test, y_test)
    elif X_test is not None:
        with progress_bar(len(X_test), "test accuracy", bar) as update:
            test_pred = np.asarray(model.predict(X_test, progress=update))
        test_acc = float(np.mean(model.encode_labels(test_pred, len(test_pred)) ==
                                 model.encode_labels(y_test, len(y_test))))  # == model.score(X_test, y_test)
    return train_acc, test_pred, test_acc, time.perf_counter() - t1


def _plot(args, run: _Run, model, test_pred, quiet: bool) -> None:
    """--plot DIR: cost, accuracy and misclassified samples (tools/plots.py), and the first Conv2D's filters."""
    from ..tools.plots import write_plots
    history = model.history_
    nb = max(1, len(model.batch_losses_) // max(1, len(history["epoch"]))) if history["epoch"] else 1
    paths = write_plots(args.plot, model.batch_losses_, history, nb, run.X_test, run.y_test, test_pred,
                        names=label_names(model, by_label=True))
    first = model.layers[0]
    if getattr(first, "registered_name", "") == "Conv2D.v1":
        from ..tools.plots import write_filters
        paths.append(write_filters(args.plot, model.bk.to_numpy(model.state.params[param_key(0, "weight")])))
    if not quiet:
        print("plots: " + ", ".join(map(str, paths)))


FILE_DATASETS = (".npz", ".csv")


def data_record(dataset: str, data_dir, label_column: str) -> dict:
    """What a checkpoint records of where its data was: the IDX folder (absolute; the default one resolved
    now) for mnist and fashion-mnist, the file's absolute path for a .npz or .csv, and the label column."""
    from ..data.datasets import default_data_dir
    record = {"label_column": label_column}
    if dataset in ("mnist", "fashion-mnist"):
        record["data_dir"] = str(Path(data_dir or default_data_dir()).expanduser().resolve())
    elif str(dataset).endswith(FILE_DATASETS) or _datasets.is_file_dataset(dataset):
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

