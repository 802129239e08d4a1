"""Training from memory-mapped .npy files (issue 34): the memory one epoch takes on a dataset larger than
memory, and the time of a memory-mapped MNIST epoch beside the same epoch in memory. Not run by CI.

    python benchmarks/mmap_memory.py [--gib 6] [--features 1024] [--keep] [--dir /tmp]   # memory mode
    python benchmarks/mmap_memory.py --mnist [--repeats 5] [--data-dir ../shared/data/mnist]   # timing mode

Memory mode writes a synthetic float32 dataset of --gib GiB (x (rows, features), y int64 labels: the argmax of
the first 10 features, so it is learnable) with numpy.lib.format.open_memmap, chunk by chunk (never all of it
in memory), into a fresh folder under --dir (deleted afterwards unless --keep), then trains a small MLP
(features-64-10, ReLU, SGD, NumPy float32, --scale unit by default: its min/max found in one streaming pass) for
one epoch on NpyDataset(x, y) in batches of --batch-size. Memory is read from /proc/self/status: a thread
samples RssAnon (the process's own memory: heap, arrays) and RssFile (file pages mapped into it: the page cache
of the .npy file, which the kernel may drop at will) every 20 ms during the epoch, the peaks reported; VmHWM
(the peak of RssAnon + RssFile + RssShmem) is reset before training by writing 5 to /proc/self/clear_refs
where the kernel allows it, and reported after. The target: peak RssAnon <= 1.5 GiB.

Timing mode writes MNIST's 60,000 training images (uint8) and labels as .npy files, and times one epoch of
`xpnet train`'s default MLP (784-100-10, SGD, batch 32, unit scaling, NumPy float32) from the arrays in memory
and from NpyDataset on the files, interleaved (the order alternating each repeat), the same seed for both;
the median seconds of each and their ratio (target: mapped <= 1.1x in memory). Each fit includes fitting the
scaler (in memory: Scaler.fit on the array and one transform; mapped: one streaming pass and a transform per
batch). The files are in the page cache after the first repeat, as they are for a dataset that fits in memory.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import xpnet  # noqa: E402
from xpnet.data.arrays import NpyDataset  # noqa: E402
from xpnet.layers import Dense, ReLU  # noqa: E402

GIB = 1 << 30


def status() -> dict:
    """The kB fields of /proc/self/status (VmRSS, RssAnon, RssFile, RssShmem, VmHWM, ...) in bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            parts = rest.split()
            if len(parts) == 2 and parts[1] == "kB":
                out[key] = int(parts[0]) * 1024
    return out


class Peaks:
    """A thread sampling RssAnon and RssFile every `every` seconds; `peak` holds the largest of each."""

    def __init__(self, every: float = 0.02):
        self.every, self.peak, self._stop = every, {"RssAnon": 0, "RssFile": 0}, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            s = status()
            for k in self.peak:
                self.peak[k] = max(self.peak[k], s.get(k, 0))
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        s = status()
        for k in self.peak:
            self.peak[k] = max(self.peak[k], s.get(k, 0))


def reset_hwm() -> bool:
    """Reset VmHWM to the current RSS (Linux: 5 > /proc/self/clear_refs); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def write_synthetic(folder: Path, gib: float, features: int, seed: int = 0) -> tuple[Path, Path, int]:
    """x.npy float32 (rows, features) of about `gib` GiB and y.npy int64, written in chunks of 64 MiB."""
    rows = max(1, int(gib * GIB) // (4 * features))
    xp, yp = folder / "x.npy", folder / "y.npy"
    x = np.lib.format.open_memmap(xp, mode="w+", dtype=np.float32, shape=(rows, features))
    y = np.lib.format.open_memmap(yp, mode="w+", dtype=np.int64, shape=(rows,))
    rng = np.random.default_rng(seed)
    step = max(1, (64 << 20) // (4 * features))
    for s in range(0, rows, step):
        e = min(rows, s + step)
        chunk = rng.standard_normal((e - s, features), dtype=np.float32)
        x[s:e] = chunk
        y[s:e] = chunk[:, :10].argmax(axis=1)
        x.flush()
    y.flush()
    del x, y
    return xp, yp, rows


def memory_mode(args) -> None:
    folder = Path(tempfile.mkdtemp(prefix="xpnet-mmap-", dir=args.dir))
    try:
        t0 = time.perf_counter()
        xp, yp, rows = write_synthetic(folder, args.gib, args.features)
        size = xp.stat().st_size
        print(f"wrote {xp} ({size / GIB:.2f} GiB, {rows} rows x {args.features} float32) in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        ds = NpyDataset(xp, yp)
        model = xpnet.Sequential([Dense(args.features, 64), ReLU(), Dense(64, 10)], backend="numpy",
                                 dtype="float32", seed=0, preprocessing=args.scale)
        before = status()
        hwm = reset_hwm()
        with Peaks() as peaks:
            t1 = time.perf_counter()
            model.fit(ds, None, epochs=1, batch_size=args.batch_size)
            seconds = time.perf_counter() - t1
        after = status()
        anon, file = peaks.peak["RssAnon"], peaks.peak["RssFile"]
        print(f"one epoch: {seconds:.1f} s ({rows / seconds:,.0f} rows/s), loss {model.history_['loss'][-1]:.4f}, "
              f"accuracy {model.history_['accuracy'][-1]:.4f}")
        print(f"before training: RssAnon {before['RssAnon'] / GIB:.3f} GiB, RssFile {before['RssFile'] / GIB:.3f} GiB")
        print(f"peak RssAnon {anon / GIB:.3f} GiB (target <= 1.5 GiB: {'met' if anon <= 1.5 * GIB else 'MISSED'}), "
              f"peak RssFile {file / GIB:.3f} GiB (sampled every 20 ms)")
        print(f"VmHWM {after['VmHWM'] / GIB:.3f} GiB "
              f"({'since the reset before training' if hwm else 'over the whole process: clear_refs not allowed'})")
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def mnist_mode(args) -> None:
    from xpnet.data.datasets import default_data_dir, load_mnist
    data_dir = args.data_dir or (REPO.parent / "shared" / "data" / "mnist")
    if not Path(data_dir).exists():
        data_dir = default_data_dir()
    X, y, _, _ = load_mnist("mnist", data_dir)
    folder = Path(tempfile.mkdtemp(prefix="xpnet-mnist-", dir=args.dir))
    try:
        np.save(folder / "x.npy", X)
        np.save(folder / "y.npy", y.astype(np.int64))

        def model():
            return xpnet.Sequential([Dense(784, 100), ReLU(), Dense(100, 10)], backend="numpy", dtype="float32",
                                    seed=1, preprocessing="unit")

        runs = {"in memory": lambda: model().fit(X, y, epochs=1, batch_size=args.batch_size),
                "memory-mapped": lambda: model().fit(NpyDataset(folder / "x.npy", folder / "y.npy"), None, epochs=1,
                                                     batch_size=args.batch_size)}
        times = {k: [] for k in runs}
        for r in range(args.repeats):
            for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
                t = time.perf_counter()
                runs[name]()
                times[name].append(time.perf_counter() - t)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"one MNIST epoch (60,000 rows, batch {args.batch_size}, 784-100-10 float32, NumPy), median of "
              f"{args.repeats} interleaved repeats:")
        for k, v in times.items():
            print(f"  {k:14s} {med[k]:.3f} s   ({', '.join(f'{t:.3f}' for t in v)})")
        ratio = med["memory-mapped"] / med["in memory"]
        print(f"  ratio mapped / in memory: {ratio:.3f}x (target <= 1.1x: {'met' if ratio <= 1.1 else 'MISSED'})")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mnist", action="store_true", help="timing mode: a mapped MNIST epoch beside one in memory")
    p.add_argument("--gib", type=float, default=6.0, help="memory mode: the dataset's size on disk (default 6)")
    p.add_argument("--features", type=int, default=1024, help="memory mode: features per row (default 1024)")
    p.add_argument("--scale", default="unit", choices=["raw", "unit", "standardize"],
                   help="memory mode: the model's preprocessing (default unit)")
    p.add_argument("--batch-size", type=int, default=None, help="default 256 (memory mode), 32 (timing mode)")
    p.add_argument("--repeats", type=int, default=5, help="timing mode: interleaved repeats (default 5)")
    p.add_argument("--data-dir", default=None, help="timing mode: MNIST's IDX files")
    p.add_argument("--dir", default="/tmp", help="where the files are written (default /tmp)")
    p.add_argument("--keep", action="store_true", help="memory mode: keep the written dataset")
    args = p.parse_args(argv)
    args.batch_size = args.batch_size or (32 if args.mnist else 256)
    (mnist_mode if args.mnist else memory_mode)(args)


if __name__ == "__main__":
    main()
