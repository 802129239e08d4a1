"""The `xpnet` command: backends, gradcheck, parity, train, evaluate, predict, export. Configuration is read
here, at run time."""
from __future__ import annotations

import argparse
import os
import sys
import warnings

from .._version import __version__
from ..backend import NAMES, BackendError
from ..models.presets import PRESETS
from ._common import csv_values
from .backends import cmd_backends
from .evaluate import cmd_evaluate
from .export import cmd_export
from .gradcheck import cmd_gradcheck
from .parity import cmd_parity
from .predict import cmd_predict
from .train import cmd_train

EPILOG = "Environment: XPNET_BACKEND, XPNET_DEVICE (defaults for --backend/--device), XPNET_DATA (data directory)."


def _ints(text: str) -> list[int]:
    try:
        values = [int(t) for t in csv_values(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer sizes such as 100,50, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"layer sizes must be positive integers, got {text!r}")
    return values


def _classes(text: str) -> int:
    from ..data.datasets import MAX_CLASSES
    try:
        n = int(text)
    except ValueError:
        n = None
    if n is None or not 2 <= n <= MAX_CLASSES:
        raise argparse.ArgumentTypeError(f"expected the number of classes, a whole number from 2 to {MAX_CLASSES}, "
                                         f"got {text!r}")
    return n


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: 'xpnet train: error: ... (see xpnet train --help)', exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):
        # argparse reports flags its command does not know from the top parser ('see xpnet --help'):
        # report them from the command's own parser, whose help lists the flags it takes
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            commands = getattr(self, "commands", {})
            commands.get(getattr(parsed, "command", None), self).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed


def build_parser() -> argparse.ArgumentParser:
    from ..layers.activations import ACTIVATION_NAMES as ACTIVATIONS
    from ..registry import aliases
    LOSSES, OPTIMIZERS = aliases("loss"), aliases("optimizer")

    p = _Parser(prog="xpnet", description="Train neural networks on NumPy, CuPy, PyTorch or JAX "
                                "from one Array API implementation.", epilog=EPILOG)
    p.add_argument("--version", action="version", version=f"xpnet {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    p.commands = sub.choices  # name -> its parser, filled in below

    def common(sp, device_help="cpu, cuda or cuda:N"):
        sp.add_argument("--backend", default=None, help=f"{', '.join(NAMES)} or auto (default: $XPNET_BACKEND or auto)")
        sp.add_argument("--device", default=None, help=f"{device_help} (default: $XPNET_DEVICE or the backend's)")
        sp.add_argument("--json", action="store_true", help="print one JSON object as the last line of output")
        sp.add_argument("--debug", action="store_true", help="show tracebacks on errors")

    sp = sub.add_parser("backends", help="list backends: available, version, devices")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_backends)

    sp = sub.add_parser("gradcheck", help="check backprop against central differences (float64)")
    common(sp)
    sp.add_argument("--hidden", type=_ints, default=[6, 5], help="hidden layer sizes (default 6,5)")
    sp.add_argument("--activation", choices=list(ACTIVATIONS), default="tanh")
    sp.add_argument("--loss", choices=list(LOSSES), default="softmax_cross_entropy")
    sp.add_argument("--l1", type=float, default=0.01)
    sp.add_argument("--l2", type=float, default=0.1)
    sp.add_argument("--features", type=int, default=8)
    sp.add_argument("--classes", type=int, default=3)
    sp.add_argument("--samples", type=int, default=16)
    sp.add_argument("--epsilon", type=float, default=1e-5)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--book", action="store_true",
                    help="the book's check: NeuralNetMLP, n_hidden=10, first 5 MNIST images, 10 checks")
    sp.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files (for --book)")
    sp.add_argument("--offline", action="store_true", help="never download data")
    sp.set_defaults(func=cmd_gradcheck)

    sp = sub.add_parser("parity", help="compare backends with NumPy float64: lockstep and free-running")
    common(sp, "device for the GPU-capable backends")
    sp.add_argument("--backends", default="numpy,array_api_strict,torch,jax")
    sp.add_argument("--dtype", default=None, help="one or more of float64,float32 (default float64; with "
                    "--distributed float64,float32)")
    sp.add_argument("--steps", type=int, default=100)
    sp.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd", help="the built-in models' optimizer")
    sp.add_argument("--model", default="mlp", metavar="MODEL", help="mlp (default), cnn (Conv2D, max-pool, "
                    "average-pool and dense layers on 8x8 images), or your own model: a .json file (or JSON text) in "
                    "the registry's config format, as xpnet.serialize(model) gives, on data of its input shape")
    sp.add_argument("--free-tol", type=float, default=None, help="also fail when the free-running difference exceeds this")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--compile", action="store_true", help="also compare each backend's compiled step (compile=True) "
                    "with the reference and with its own eager step; backends without a compiler say so")
    sp.add_argument("--batch-size", type=int, default=64, help="rows per step (default 64)")
    sp.add_argument("--kernels", choices=["default", "native", "reference", "both"], default="default",
                    help="the backends' layers on their native kernels (torch, jax: convolution, pooling), on the "
                    "array-API reference, or both (two rows each); default: native unless XPNET_NATIVE_KERNELS=0")
    sp.add_argument("--distributed", action="store_true", help="under an MPI launcher (mpiexec -n 2 xpnet parity "
                    "--distributed): all ranks together against one process, same backend and dtype (float64 "
                    "and float32 unless --dtype says otherwise)")
    sp.set_defaults(func=cmd_parity)

    sp = sub.add_parser("train", help="train a model (default: an MLP on the embedded 8x8 digits, offline)")
    common(sp)
    sp.add_argument("--preset", default=None, help=", ".join(f"{name} ({p.about})" for name, p in PRESETS.items()) +
                    "; flags given beside it override it")
    sp.add_argument("--model", dest="model_file", default=None, metavar="FILE.json",
                    help="the model as a registry config (JSON: {\"class\": \"Sequential\", \"config\": {\"layers\": "
                         "[...]}}, e.g. examples/lenet5.json); replaces --hidden and --activation")
    sp.add_argument("--dataset", default=None, help="digits (default), mnist, fashion-mnist, or a .npz/.csv file")
    sp.add_argument("--data-dir", default=None, help="folder with the IDX files (default: $XPNET_DATA or a cache)")
    sp.add_argument("--label-column", default=None, help="label column of a .csv dataset (default label; a resumed "
                    "run's own)")
    sp.add_argument("--classes", type=_classes, default=None, metavar="N", help="number of outputs: labels must be "
                    "0..N-1 (default: max label + 1, refused when more than half would get no training sample)")
    sp.add_argument("--hidden", type=_ints, default=None, help="hidden layer sizes, e.g. 100,50 (default 100)")
    sp.add_argument("--activation", choices=list(ACTIVATIONS), default=None, help="hidden activation (default relu)")
    sp.add_argument("--loss", choices=list(LOSSES), default=None, help="default softmax_cross_entropy")
    sp.add_argument("--optimizer", choices=list(OPTIMIZERS), default=None, help="default sgd")
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
    sp.add_argument("--compile", action="store_true",
                    help="run each training step as one compiled call (jax: jax.jit); a run option, not configuration")
    sp.add_argument("--distributed", action="store_true",
                    help="data-parallel over the processes an MPI launcher started (mpiexec -n 4 xpnet train "
                         "--distributed ...): --batch-size is the global minibatch; a run option")
    sp.add_argument("--no-native-kernels", action="store_true", help="run convolution and pooling by xpnet's "
                    "array-API code even where the backend has its own kernels (torch, jax); a run option")
    sp.add_argument("--seed", type=int, default=None, help="default 1")
    sp.add_argument("--dtype", choices=["float32", "float64"], default=None, help="default float32")
    sp.add_argument("--scale", choices=["raw", "unit", "symmetric", "standardize"], default=None,
                    help="input scaling (default unit: [0, 1])")
    sp.add_argument("--validation-split", type=float, default=None, help="hold out the last fraction for validation")
    sp.add_argument("--early-stopping", type=int, default=None, metavar="PATIENCE")
    sp.add_argument("--offline", action="store_true", help="never download data")
    sp.add_argument("--checkpoint", default=None, metavar="PATH", help="write a checkpoint here after every epoch")
    sp.add_argument("--resume", default=None, metavar="PATH", help="continue the run saved in this checkpoint")
    sp.add_argument("--history", default=None, metavar="PATH", help="write per-epoch history as CSV")
    sp.add_argument("--plot", default=None, metavar="DIR",
                    help='write cost, accuracy and misclassified-digit PNGs, and the first Conv2D layer filters '
                    '(needs matplotlib: pip install "xpnet[plot]")')
    sp.add_argument("--quiet", action="store_true", help="no per-epoch output")
    sp.set_defaults(func=cmd_train)

    for name, helptext in (("evaluate", "accuracy, loss and confusion matrix of a checkpoint on a dataset"),
                           ("predict", "labels and probabilities for .npy, .npz, .csv files or images")):
        sp = sub.add_parser(name, help=helptext)
        common(sp)
        sp.add_argument("--checkpoint", required=True, metavar="PATH")
        sp.add_argument("--quiet", action="store_true")
        if name == "evaluate":
            sp.add_argument("--dataset", default=None, help="default: the dataset it was trained on (its test split)")
            sp.add_argument("--data-dir", default=None, help="default: where the data was when it was trained")
            sp.add_argument("--label-column", default=None, help="default: the one it was trained with")
            sp.add_argument("--offline", action="store_true")
            sp.set_defaults(func=cmd_evaluate)
        else:
            sp.add_argument("files", nargs="+", metavar="FILE",
                            help=".npy, .npz (array X), .csv (with or without the label column) or an image (png, "
                                 "jpg, ...); several at once")
            sp.add_argument("--invert", choices=["auto", "yes", "no"], default="auto",
                            help="invert an image's gray levels (auto: when its background is light, as on paper)")
            sp.add_argument("--label-column", default=None, help="a .csv's label column, left out of the "
                            "features and compared with the predictions (default: the one it was trained with)")
            sp.add_argument("--output", default=None, metavar="PATH",
                            help="write a CSV: file, index, label, class_name, one probability column per class")
            sp.set_defaults(func=cmd_predict)

    sp = sub.add_parser("export", help="write a checkpoint's model as ONNX (raw input -> probabilities, label)")
    sp.add_argument("--checkpoint", required=True, metavar="PATH")
    sp.add_argument("--output", required=True, metavar="PATH", help="the .onnx file to write (atomically)")
    sp.add_argument("--opset", type=int, default=None, help="ONNX opset, 16 to 24 (default 21)")
    sp.add_argument("--batch", type=int, default=None, metavar="N", help="a fixed batch size (default: dynamic)")
    sp.add_argument("--no-preprocessing", action="store_true",
                    help="leave the checkpoint's input scaling out of the graph (the input is then scaled data)")
    sp.add_argument("--logits", action="store_true", help="also output the logits")
    sp.add_argument("--json", action="store_true", help="print one JSON object as the last line of output")
    sp.add_argument("--quiet", action="store_true")
    sp.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sp.set_defaults(func=cmd_export)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    debug = args.debug or os.environ.get("XPNET_DEBUG") == "1"
    if not debug:
        # One line per warning; floating-point warnings are noise here: xpnet checks every loss itself
        # and stops a diverging run with an error that names the epoch and step.
        warnings.formatwarning = lambda msg, cat, *a, **k: f"xpnet: warning: {msg}\n"
        warnings.filterwarnings("ignore", message=".*encountered in", category=RuntimeWarning)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("xpnet: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one clear line, no traceback unless --debug
        if debug or not _is_user_error(exc):
            if _abort_others(exc, 1, traceback=True):
                return 1
            raise
        print(f"xpnet {args.command}: error: {as_flags(exc, args)}", file=sys.stderr)
        _abort_others(exc, 2)
        return 2


def _abort_others(exc, code: int, traceback: bool = False) -> bool:
    """In a run of several ranks (--distributed), an error on this rank alone ends the whole job (the others
    would wait for it in the next all-reduce); see xpnet.distributed.abort_others. False when not distributed."""
    dist = sys.modules.get("xpnet.distributed.communicator")
    comm = None if dist is None else dist.Communicator.current
    if comm is None or comm.size == 1:
        return False
    if traceback:
        import traceback as tb
        tb.print_exc()
    dist.abort_others(exc, code)
    return True


def as_flags(exc: BaseException, args) -> str:
    """The one line to print for `exc`: its message, except that an error about one keyword argument
    (InputError's fields `argument` and `detail`: "batch_size" and "0: must be a positive integer" of
    'batch_size=0: must be a positive integer', written by `InputError.for_argument`) names the flag
    instead when that keyword is one of this command's options ('--batch-size 0: must be a positive
    integer'), so the message names what the user typed. The fields decide; the message is not read."""
    name, detail = getattr(exc, "argument", None), getattr(exc, "detail", None)
    if not name or detail is None or name in ("command", "func", "file") or name not in vars(args):
        return str(exc)
    return f"--{name.replace('_', '-')} {detail}"


def _is_user_error(exc: BaseException) -> bool:
    from ..errors import DistributedError, InputError, OutOfMemory, TrainingDiverged
    # (DataError and CheckpointError are InputErrors; DistributedError: a rank gone, one line, then the job ends)
    user = (BackendError, InputError, TrainingDiverged, OutOfMemory, DistributedError, FileNotFoundError,
            PermissionError, IsADirectoryError)
    return isinstance(exc, user)


if __name__ == "__main__":
    sys.exit(main())
