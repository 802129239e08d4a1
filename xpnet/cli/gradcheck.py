"""`xpnet gradcheck`: finite differences against the analytic gradients, of a small MLP or the book's setting."""
from __future__ import annotations

import warnings

import numpy as np

from ._common import common_flags, layer_sizes, print_json


def add_parser(sub) -> None:
    from ..layers.activations import ACTIVATION_NAMES
    from ..registry import aliases
    sp = sub.add_parser("gradcheck", help="check backprop against central differences (float64)")
    common_flags(sp)
    sp.add_argument("--hidden", type=layer_sizes, default=[6, 5], help="hidden layer sizes (default 6,5)")
    sp.add_argument("--activation", choices=list(ACTIVATION_NAMES), default="tanh")
    sp.add_argument("--loss", choices=list(aliases("loss")), default="softmax_cross_entropy")
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


def cmd_gradcheck(args) -> int:
    from ..tools.gradcheck import gradcheck, grade
    if args.book:
        reports = _book_gradcheck(args)
    else:
        from ..models.mlp import mlp_layers
        from ..models.sequential import Sequential
        rng = np.random.default_rng(args.seed)
        X = rng.standard_normal((args.samples, args.features))
        y = np.arange(args.samples) % args.classes
        layers = mlp_layers([args.features, *args.hidden, args.classes], args.activation, init="glorot_uniform")
        model = Sequential(layers, loss=args.loss, l1=args.l1, l2=args.l2, backend=args.backend, device=args.device,
                           dtype="float64", seed=args.seed)
        reports = [gradcheck(model, X, y, epsilon=args.epsilon)]
    report = reports[-1] if len(reports) == 1 else _merge(reports)
    if args.json:
        print_json(report)
    elif args.book:
        for i, r in enumerate(reports):
            print(f"check {i + 1}: {grade(r['overall_relative_error'])}: {r['overall_relative_error']:.3e}")
        print("graded, as the book does, on all weights joined; per tensor: --json")
    else:
        for c in report["checks"]:
            print(f"{c['parameter']:<20} {c['relative_error']:.3e}  {c['grade']}")
        print(f"{'all parameters':<20} {report['overall_relative_error']:.3e}  "
              f"{grade(report['overall_relative_error'])}")
    return 0 if report["passed"] else 1


def _merge(reports: list[dict]) -> dict:
    """The book's checks, one per minibatch -> one report. As in the book, each check is graded on all
    weights joined: with raw pixels the hidden layer saturates, its gradient is tiny, and its per-tensor
    error (listed in `checks`) sits at the float64 rounding floor of the differences."""
    from ..tools.gradcheck import grade
    checks = [dict(c, check=i + 1) for i, r in enumerate(reports) for c in r["checks"]]
    overall = [r["overall_relative_error"] for r in reports]
    return {"checks": checks, "overall_relative_error": max(overall),
            "max_relative_error": max(c["relative_error"] for c in checks),
            "passed": all(grade(e) == "Ok" for e in overall), "overall_relative_errors": overall}


def _book_gradcheck(args) -> list[dict]:
    """The book's setting: n_hidden=10, no penalties, 10 epochs of one minibatch on the first 5 MNIST
    training images, a check at every minibatch."""
    from ..data.datasets import load_mnist
    from ..tools.gradcheck import gradcheck
    from ..models.mlp import NeuralNetMLP
    X, y, _, _ = load_mnist("mnist", args.data_dir, download=not args.offline)
    X, y = X[:5].astype(np.float64), y[:5].astype(np.int64)
    nn = NeuralNetMLP(n_output=10, n_features=784, n_hidden=10, l1=0.0, l2=0.0, epochs=1, eta=0.001, alpha=0.0,
                      decrease_const=0.0, minibatches=1, shuffle=False, random_state=1, backend=args.backend,
                      device=args.device)
    reports = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # 5 images hold fewer than 10 classes, as in the book
        for _ in range(10):
            reports.append(gradcheck(nn, X, y, epsilon=args.epsilon))
            nn.fit(X, y)
    return reports
