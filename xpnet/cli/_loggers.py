"""`xpnet train`'s logging flags (--history, --log-every, --log-grad-norm, --log-dir, --tensorboard, --mlflow) and the logger
callbacks they make (xpnet.training.loggers): this module makes the tensorboardX writer and the MLflow client the
callbacks are given. Only rank 0 of a distributed run logs."""
from __future__ import annotations

import os
import time
from pathlib import Path

from ..errors import InputError
from ._common import whole_number

DEFAULT_LOG_DIR = "runs"


def add_flags(sp) -> None:
    sp.add_argument("--history", default=None, metavar="PATH",
                    help="write the history as it trains: CSV, one row per epoch (a .jsonl path: JSON Lines); with "
                         "--log-every N also every N updates (a CSV's steps go to PATH's .steps.csv)")
    sp.add_argument("--log-every", type=whole_number("a number of updates, a whole number from 1"), default=None, metavar="N",
                    help="--history, --tensorboard and --mlflow also log every N updates: the step's loss, "
                         "learning rate and gradient norm (reads the loss from the device every N steps)")
    sp.add_argument("--log-grad-norm", action="store_true",
                    help="with --log-every: also compute each logged step's global gradient norm (--clip-norm "
                         "records it without this flag; eager steps only)")
    sp.add_argument("--log-dir", default=None, metavar="DIR",
                    help=f"where --tensorboard and --mlflow write (default {DEFAULT_LOG_DIR}): event files in "
                         f"DIR/tensorboard/RUN, an MLflow store file:DIR/mlruns")
    sp.add_argument("--tensorboard", action="store_true",
                    help='write TensorBoard event files: losses, metrics, learning rate, gradient norm, weight '
                         'histograms (needs tensorboardX: pip install "xpnet[tensorboard]")')
    sp.add_argument("--mlflow", action="store_true",
                    help='log the run\'s parameters, metrics and final checkpoint to a local MLflow store (needs '
                         'mlflow-skinny: pip install "xpnet[mlflow]")')


def _need(module: str, flag: str, extra: str, package: str):
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(f"{flag} needs {package}, which is not installed; install it with "
                         f"pip install \"xpnet[{extra}]\" (or drop {flag})") from None


def run_name(cfg: dict) -> str:
    """A run's name in TensorBoard and MLflow: its model (preset) and the start time, e.g. lenet5-20260105-101500."""
    return f"{cfg.get('model') or 'mlp'}-{time.strftime('%Y%m%d-%H%M%S')}"


def make_loggers(args, model, cfg: dict, checkpointer, rank: int) -> list:
    """The logger callbacks the flags ask for ([] on ranks other than 0, and without the flags)."""
    every = getattr(args, "log_every", None)
    if every is not None and not (args.history or args.tensorboard or args.mlflow):
        raise InputError(f"--log-every {every} sets how often --history, --tensorboard or --mlflow log; give one "
                         f"of them too")
    if getattr(args, "log_grad_norm", False) and every is None:
        raise InputError("--log-grad-norm computes the gradient norm of the steps --log-every N logs; give "
                         "--log-every too")
    if getattr(args, "log_grad_norm", False) and getattr(args, "compile", False):
        raise InputError("--log-grad-norm reads the gradients an eager step keeps, and a compiled step keeps none; "
                         "drop --compile, or use --clip-norm, whose pre-clip norm the compiled step records")
    if args.log_dir is not None and not (args.tensorboard or args.mlflow):
        raise InputError(f"--log-dir {args.log_dir} is where --tensorboard and --mlflow write; give one of them too")
    writer_module = _need("tensorboardX", "--tensorboard", "tensorboard", "tensorboardX") if args.tensorboard else None
    tracking = _need("mlflow.tracking", "--mlflow", "mlflow", "mlflow-skinny") if args.mlflow else None
    if rank != 0:
        return []
    from ..training.loggers import HistoryLogger, MLflowLogger, TensorBoard
    loggers, norm = [], bool(getattr(args, "log_grad_norm", False))
    if args.history:
        loggers.append(HistoryLogger(args.history, every_steps=every, grad_norm=norm))
    log_dir, name = Path(args.log_dir or DEFAULT_LOG_DIR), run_name(cfg)
    if writer_module is not None:
        writer = writer_module.SummaryWriter(logdir=str(log_dir / "tensorboard" / name))
        loggers.append(TensorBoard(writer, every_steps=every, grad_norm=norm))
    if tracking is not None:
        # MLflow 3 keeps the file store (what mlflow-skinny can write without a database) behind this switch
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        client = tracking.MlflowClient(tracking_uri=(log_dir / "mlruns").resolve().as_uri())
        experiment = client.get_experiment_by_name("xpnet")
        experiment_id = experiment.experiment_id if experiment else client.create_experiment("xpnet")
        run_id = client.create_run(experiment_id, run_name=name).info.run_id
        params = dict(cfg, backend=model.bk.name, device=str(model.bk.device))
        checkpoint = args.checkpoint or (lambda folder: checkpointer.save(Path(folder) / "model.safetensors", model))
        loggers.append(MLflowLogger(client, run_id, params=params, every_steps=every, checkpoint=checkpoint,
                                    grad_norm=norm))
    return loggers
