"""The benchmark cases (A-G): architecture, loss, optimizer, minibatching, dtypes, data and FLOP count.

Minibatch bounds and MNIST reading live here, not in the library, so that the same runner can time another
checkout of xpnet (run.py --baseline-ref) whose internals differ: only initial_params() (for the non-xpnet
rows, which must start from xpnet's exact initial values) imports from xpnet.
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import inspect

import numpy as np

N_TRAIN = 60000


@dataclass(frozen=True)
class Case:
    name: str
    title: str
    sizes: tuple                      # (inputs, hidden..., outputs)
    hidden: str = "sigmoid"           # 'sigmoid' or 'relu'
    loss: str = "softmax"             # 'softmax' (softmax cross-entropy) or 'logistic' (sigmoid + BCE)
    reduction: str = "mean"
    lr: float = 0.1
    momentum: float = 0.0             # classical (PyTorch's form)
    batch_size: int | None = None
    minibatches: int | None = None    # the book's np.array_split into this many chunks
    dtypes: tuple = ("float32",)
    init: str = "glorot_uniform"
    book: bool = False                # case D: the book's NeuralNetMLP (l2, look-back momentum, decay)
    gpu_only: bool = False
    book_args: dict = field(default_factory=dict)
    conv: bool = False                # case F: LeNet-5 (xpnet.models.presets.lenet5_layers) on (N, 1, 28, 28); sizes: its dense part
    resnet: bool = False              # case G (conv too): the resnet-fashion preset's ResNet (resnet_fashion_layers)

    @property
    def layers(self) -> list[tuple[int, int]]:
        """(in_features, out_features) of each Dense layer."""
        return list(zip(self.sizes[:-1], self.sizes[1:]))

    def bounds(self, n: int) -> list[tuple[int, int]]:
        return batch_bounds(n, self.batch_size, self.minibatches)

    def warm_bounds(self, n: int) -> list[tuple[int, int]]:
        """Three minibatches from sample 0 with the epoch's shapes: two full ones and the epoch's last one."""
        b = self.bounds(n)
        sizes = [e - s for s, e in b[:2]] + [b[-1][1] - b[-1][0]]
        starts = np.cumsum([0] + sizes)
        return list(zip(starts[:-1].tolist(), starts[1:].tolist()))

    def flops(self, n: int) -> float:
        """FLOPs of one epoch's layer matrix products: 2*m*k*n for x @ W.T, dW = dy.T @ x and dx = dy @ W,
        except the first layer's dx (not needed). Case F adds its convolutions as the column-layout GEMMs:
        W (O, C·k·k) @ cols (C·k·k, OH·OW per sample), its dW and (not for the first) dcols."""
        if self.resnet:  # the first convolution has no dx; tests/test_blocks.py checks the table against the preset
            convs = [(16, 9, 784, 2), (32, 144, 196, 3), (32, 288, 196, 3), (32, 16, 196, 3), (32, 288, 196, 3),
                     (32, 288, 196, 3), (64, 288, 49, 3), (64, 576, 49, 3), (64, 32, 49, 3), (64, 576, 49, 3),
                     (64, 576, 49, 3)]
            return float(sum(2 * n * o * ckk * p * m for o, ckk, p, m in convs) +
                         sum(2 * n * k * o * 3 for k, o in self.layers))
        if self.conv:
            convs = [(6, 25, 28 * 28, 2), (16, 150, 10 * 10, 3)]  # (O, C·k·k, OH·OW, products)
            return float(sum(2 * n * o * ckk * p * m for o, ckk, p, m in convs) +
                         sum(2 * n * k * o * 3 for k, o in self.layers))
        return float(sum(2 * n * k * o * (2 if i == 0 else 3) for i, (k, o) in enumerate(self.layers)))

    def host_rng(self):
        """A fresh host generator as xpnet's model makes it: default_rng(0), or the book's RandomState(1)."""
        return np.random.RandomState(self.book_args["random_state"]) if self.book else np.random.default_rng(0)

    def initial_params(self, rng=None) -> list[tuple[np.ndarray, np.ndarray]]:
        """(W (out, in), b (out,)) float64 per layer, exactly as xpnet draws them (seed 0, or the book's
        RandomState(1) for case D). rng: draw from this generator (default self.host_rng()); afterwards it is
        where xpnet's model generator is before its first shuffle, so a runner that goes on drawing its
        permutations from it shuffles the batches as xpnet does."""
        try:
            from xpnet.init import INITIALIZERS
        except ImportError as exc:
            raise RuntimeError(f"xpnet.init.INITIALIZERS not importable ({exc}); the non-xpnet rows need it to start "
                               f"from xpnet's initial weights") from exc
        rng = self.host_rng() if rng is None else rng
        if self.resnet:  # {xpnet parameter name: array} in xpnet's order (BatchNorm's weight 1 and bias 0 among them)
            import xpnet
            try:
                from xpnet.models.presets import resnet_fashion_layers
            except ImportError as exc:  # a checkout from before the combinators (--baseline-ref)
                raise RuntimeError(f"case G needs xpnet's resnet_fashion_layers ({exc})") from exc
            model = xpnet.Sequential([xpnet.deserialize(s, "layer") for s in resnet_fashion_layers(10)], rng=rng,
                                     input_shape=(1, 28, 28), dtype="float64")
            return {k: xpnet.to_numpy(v) for k, v in model.parameters().items()}
        if self.conv:  # xpnet's own draws for LeNet-5 (conv weights (O, C, k, k))
            import xpnet
            try:
                from xpnet.models.presets import lenet5_layers
            except ImportError:  # a baseline checkout from before xpnet/models/ (--baseline-ref)
                from xpnet.cnn import lenet5_layers
            model = xpnet.Sequential([xpnet.deserialize(s, "layer") for s in lenet5_layers(10)], rng=rng,
                                     input_shape=(1, 28, 28), dtype="float64")
            p = {k: xpnet.to_numpy(v) for k, v in model.parameters().items()}
            return [(p[f"layers.{i}.weight"], p[f"layers.{i}.bias"]) for i in (0, 3, 7, 9, 11)]
        out = []
        new_signature = "shape" in inspect.signature(INITIALIZERS[self.init]).parameters  # since 0.2: (rng, shape, fans)
        for k, o in self.layers:
            drawn = INITIALIZERS[self.init](rng, (o, k), k, o) if new_signature else INITIALIZERS[self.init](rng, k, o)
            out.append(drawn if isinstance(drawn, tuple) else (drawn, np.zeros(o)))
        return out


BOOK2015 = dict(n_output=10, n_features=784, n_hidden=50, l2=0.1, l1=0.0, eta=0.001, alpha=0.001,
                decrease_const=0.00001, minibatches=50, shuffle=True, random_state=1)

CASES = {c.name: c for c in (
    Case("A", "784-50-10 sigmoid, logistic output (sum), SGD lr 0.001, batch 1200", (784, 50, 10),
         loss="logistic", reduction="sum", lr=0.001, batch_size=1200, dtypes=("float32", "float64")),
    Case("B", "784-512-512-10 ReLU, softmax CE, SGD lr 0.1 momentum 0.9, batch 128", (784, 512, 512, 10),
         hidden="relu", lr=0.1, momentum=0.9, batch_size=128),
    Case("C", "784-50-10 sigmoid, softmax CE, SGD lr 0.1, batch 32", (784, 50, 10), lr=0.1, batch_size=32),
    Case("D", "the book's NeuralNetMLP (book2015 settings), raw pixels", (784, 50, 10), loss="logistic",
         reduction="sum", lr=0.001, minibatches=50, dtypes=("float64",), init="book_uniform", book=True,
         book_args=BOOK2015),
    Case("E", "4096-4096-4096-10 ReLU, softmax CE, SGD lr 0.01 momentum 0.9, batch 4096 (GPU)",
         (4096, 4096, 4096, 10), hidden="relu", lr=0.01, momentum=0.9, batch_size=4096, gpu_only=True),
    Case("F", "LeNet-5 (conv 6@5x5 pad 2, max-pool 2, conv 16@5x5, max-pool 2, dense 120-84-10, ReLU), softmax CE, "
              "SGD lr 0.05 momentum 0.9, batch 128", (400, 120, 84, 10), hidden="relu", lr=0.05, momentum=0.9,
         batch_size=128, conv=True),
    Case("G", "the resnet-fashion preset's ResNet (3x3 stem 16, basic blocks 32/2, 32, 64/2, 64 with BatchNorm and "
              "1x1 shortcuts, global average pool, dense 10), softmax CE, SGD lr 0.05 momentum 0.9, batch 128",
         (64, 10), hidden="relu", lr=0.05, momentum=0.9, batch_size=128, conv=True, resnet=True),
)}


def batch_bounds(n: int, batch_size: int | None = None, minibatches: int | None = None) -> list[tuple[int, int]]:
    """(start, stop) of each minibatch as xpnet.training.batch_bounds makes them: fixed `batch_size` (last one
    shorter), or `minibatches` chunks as numpy.array_split makes them (the first n % k one sample longer)."""
    if minibatches is not None:
        q, r = divmod(n, minibatches)
        stops = np.cumsum([q + (1 if i < r else 0) for i in range(minibatches)]).tolist()
        return list(zip([0] + stops[:-1], stops))
    return [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]


def read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte IDX file (gzipped or raw) -> uint8 array of its declared shape."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] or raw[1] or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: {data.size} bytes of data, the header declares {shape}")
    return data.reshape(shape)


def load_mnist_train(data_dir) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's training set from DIR or DIR/mnist (gzipped or not) -> X uint8 (60000, 784), y uint8 (60000,)."""
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
    data_dir = Path(data_dir).expanduser()
    for folder in (data_dir, data_dir / "mnist"):
        found = [next((p for p in (folder / (n + ".gz"), folder / n) if p.is_file()), None) for n in names]
        if all(found):
            images, labels = (read_idx(p) for p in found)
            return images.reshape(images.shape[0], -1), labels
    raise FileNotFoundError(f"MNIST training files ({names[0]}[.gz], {names[1]}[.gz]) not found in {data_dir} "
                            f"or {data_dir / 'mnist'}; give --data-dir")


#: mixed-precision "dtypes" of the runner (--dtypes float32,bf16-mixed): float32 data, weights and optimizer, the
#: forward and backward in 16 bits (xpnet: Sequential(precision=); native torch: torch.autocast); cases with float32
MIXED = ("bf16-mixed", "fp16-mixed")


def storage_dtype(dtype: str) -> str:
    """The array dtype of a runner dtype: float32 for the mixed policies, else itself."""
    return "float32" if dtype in MIXED else dtype


def load_data(case: Case, dtype: str, data_dir) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's 60000 training images -> X (60000, features) in `dtype`, y uint8 labels.

    Pixels scaled to [0, 1], except case D (raw 0-255, as the book). Case E tiles the 784 pixels to 4096
    features (the timing does not depend on the values)."""
    X8, y = load_mnist_train(data_dir)
    X = X8.astype(storage_dtype(dtype))
    if not case.book:
        X /= 255
    if case.conv:
        return X.reshape(-1, 1, 28, 28), y
    if case.sizes[0] != X.shape[1]:
        X = np.ascontiguousarray(np.tile(X, (1, -(-case.sizes[0] // X.shape[1])))[:, :case.sizes[0]])
    return X, y


def onehot(y: np.ndarray, k: int, dtype: str) -> np.ndarray:
    return (y[:, None] == np.arange(k)).astype(dtype)
