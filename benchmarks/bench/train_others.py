"""The scikit-learn row (MLPClassifier) and the book's own code (tests/book_transcription.py, case D)."""
from __future__ import annotations

import itertools
import time

from . import ROOT


def prepare_sklearn() -> None:
    import sklearn.neural_network  # noqa: F401 (imported before the RSS after load)


def run_sklearn(case, dtype, X, y, epochs, device):
    import sklearn
    from sklearn.neural_network import MLPClassifier
    bs = case.batch_size
    clf = MLPClassifier(hidden_layer_sizes=case.sizes[1:-1], activation="logistic" if case.hidden == "sigmoid" else "relu",
                        solver="sgd", alpha=0.0, batch_size=bs, learning_rate="constant",
                        learning_rate_init=case.lr * (bs if case.reduction == "sum" else 1), momentum=case.momentum,
                        nesterovs_momentum=False, shuffle=True, random_state=0, max_iter=1)
    nwarm = case.warm_bounds(X.shape[0])[-1][1]
    clf.partial_fit(X[:nwarm], y[:nwarm], classes=list(range(case.sizes[-1])))
    seconds = []
    for _ in range(epochs):  # partial_fit with solver='sgd' is one shuffled pass over the data
        t0 = time.perf_counter()
        clf.partial_fit(X, y)
        seconds.append(time.perf_counter() - t0)
    return seconds, f"scikit-learn {sklearn.__version__}, computes in {clf.coefs_[0].dtype}"


def run_book(case, dtype, X, y, epochs, device):
    import importlib.util
    spec = importlib.util.spec_from_file_location("book_transcription", ROOT / "tests" / "book_transcription.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    class Timed(mod.BookMLP):
        """BookMLP unchanged; its fit sets self.eta once at the start of every epoch: note the time."""
        @property
        def eta(self):
            return self._eta

        @eta.setter
        def eta(self, value):
            self._eta = value
            self.__dict__.setdefault("marks", []).append(time.perf_counter())

    nwarm = case.warm_bounds(X.shape[0])[-1][1]
    Timed(**dict(case.book_args, epochs=1, minibatches=3)).fit(X[:nwarm], y[:nwarm])
    nn = Timed(**dict(case.book_args, epochs=epochs))
    nn.marks.clear()  # the constructor's assignment
    nn.fit(X, y)
    marks = nn.marks + [time.perf_counter()]
    return [b - a for a, b in itertools.pairwise(marks)], "epoch = shuffle + minibatches (label encoding excluded)"
