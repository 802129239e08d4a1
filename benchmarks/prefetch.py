"""The time a training step waits for its data, without and with prefetch (issue 34, part 5): the same fit on a
dataset whose reads are slow, prefetch 0 against prefetch N, conditions interleaved, medians over repeats.

    python benchmarks/prefetch.py [--repeats 5] [--steps 60] [--read-ms 8] [--decode zlib|sleep]
                                  [--backend numpy] [--device cpu] [--prefetch 0,2] [--json out.jsonl]

The dataset: `--rows` rows of 784 float32 features (MNIST-sized) and 10 classes. Each read of a minibatch costs
`--read-ms` milliseconds on the host: `sleep` sleeps that long (a file system or network read), `zlib` (default)
decompresses each row from zlib-compressed bytes (a decode, as PNG files are) and tops it up to `--read-ms` by
sleeping. Both release the GIL, as real reads and decoders do. The model: an MLP 784-H-H-10 (`--hidden`, ReLU,
Adam, minibatches of `--batch-size`) whose step is slower than a read, so prefetch can hide the reads.

The data wait is measured in the training thread: the seconds the step spends in its read (prefetch 0:
`sources.read_rows`, the read and the copy to the device) or in taking the next prefetched minibatch (prefetch
N: `Prefetcher.get`, the wait for the reader and `Backend.ready`), summed over the steps and divided by the fit's
wall time (the first, warm-up epoch of each run excluded: a GPU's first steps compile kernels). Reported per
condition: the median over repeats of the wait fraction, of the wait per step and of the seconds per step.
Target (issue 34): under 5 % with prefetch. Not a CI test; time it on a quiet machine.

--evaluate times scoring instead: `model.evaluate(dataset, batch_size=--batch-size, prefetch=N)` over all --rows
rows of the same slow dataset with the same (untrained) MLP, the conditions interleaved, the median seconds of
an evaluation and per batch; both conditions' figures are checked equal."""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import zlib

import numpy as np

import xpnet
from xpnet.training import RandomBatches
from xpnet.training import prefetch as prefetch_module
from xpnet.training import sources


class SlowRows:
    """A map-style dataset (len, __getitems__) of host rows whose every read takes `read_s` seconds or more:
    `decode` 'zlib' decompresses each row (kept compressed), 'sleep' only sleeps; thread-safe, a function of
    the indices alone."""

    def __init__(self, rows: int, features: int, classes: int, read_s: float, decode: str, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.X = rng.standard_normal((rows, features)).astype(np.float32)
        self.y = rng.integers(0, classes, rows)
        self.read_s, self.decode = read_s, decode
        self.packed = [zlib.compress(r.tobytes(), 6) for r in self.X] if decode == "zlib" else None

    def __len__(self):
        return len(self.X)

    def __getitems__(self, idx):
        t0 = time.perf_counter()
        idx = np.asarray(list(idx) if isinstance(idx, range) else idx, dtype=np.int64)
        if self.packed is not None:
            x = np.stack([np.frombuffer(zlib.decompress(self.packed[i]), dtype=np.float32) for i in idx])
        else:
            x = self.X[idx]
        left = self.read_s - (time.perf_counter() - t0)
        if left > 0:
            time.sleep(left)
        return x, self.y[idx]


class WaitClock:
    """Sums the training thread's seconds in the data reads (read_rows, Prefetcher.get), from step `skip` on."""

    def __init__(self):
        self.seconds, self.calls = 0.0, 0
        self.counting = False
        self._read, self._get = sources.read_rows, prefetch_module.Prefetcher.get

    def __enter__(self):
        clock = self

        def timed(fn):
            def wrapper(*args, **kwargs):
                t0 = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    if clock.counting:
                        clock.seconds += time.perf_counter() - t0
                        clock.calls += 1
            return wrapper

        sources.read_rows = timed(self._read)  # DatasetStep binds it when made, after this
        prefetch_module.Prefetcher.get = timed(self._get)
        return self

    def __exit__(self, *exc):
        sources.read_rows, prefetch_module.Prefetcher.get = self._read, self._get


class Timer(xpnet.Callback):
    """Starts the clocks after the warm-up epoch, stops them at the end (after a device sync)."""

    def __init__(self, clock: WaitClock):
        self.clock, self.t0, self.seconds, self.steps = clock, None, 0.0, 0

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            self.model.bk.synchronize()
            self.clock.counting, self.t0 = True, time.perf_counter()

    def on_batch_end(self, batch, logs=None):
        if self.clock.counting:
            self.steps += 1

    def on_train_end(self, logs=None):
        self.model.bk.synchronize()
        self.seconds = time.perf_counter() - self.t0


def one_run(ds, args, prefetch: int) -> dict:
    model = make_model(ds, args)
    with WaitClock() as clock:
        timer = Timer(clock)
        model.fit(ds, None, epochs=2, source=RandomBatches(args.batch_size, seed=2, steps_per_epoch=args.steps),
                  prefetch=prefetch, callbacks=[timer])
    return {"prefetch": prefetch, "wait_fraction": clock.seconds / timer.seconds,
            "wait_ms_per_step": 1e3 * clock.seconds / timer.steps, "ms_per_step": 1e3 * timer.seconds / timer.steps,
            "steps": timer.steps}


def make_model(ds, args):
    h = args.hidden
    return xpnet.Sequential([xpnet.Dense(ds.X.shape[1], h), xpnet.ReLU(), xpnet.Dense(h, h), xpnet.ReLU(),
                             xpnet.Dense(h, 10)], optimizer=xpnet.Adam(1e-3), dtype=args.dtype, seed=1,
                            backend=args.backend, device=args.device)


def evaluate_mode(ds, args, conditions) -> int:
    model = make_model(ds, args)
    model.evaluate(ds, batch_size=args.batch_size)  # warm-up
    batches = -(-len(ds) // args.batch_size)
    times, figures = {c: [] for c in conditions}, {}
    for r in range(args.repeats):
        for c in (conditions if r % 2 == 0 else conditions[::-1]):
            t0 = time.perf_counter()
            figures[c] = model.evaluate(ds, batch_size=args.batch_size, prefetch=c)
            times[c].append(time.perf_counter() - t0)
            print(f"repeat {r + 1} prefetch {c}: {times[c][-1]:.3f} s ({1e3 * times[c][-1] / batches:.2f} ms/batch)",
                  flush=True)
    print(f"\n| prefetch | s per evaluation ({len(ds)} rows, {batches} batches) | ms/batch |\n| --- | --- | --- |")
    for c in conditions:
        med = statistics.median(times[c])
        print(f"| {c} | {med:.3f} | {1e3 * med / batches:.2f} |")
    same = len({figures[c] for c in conditions}) == 1
    print(f"loss and accuracy {'equal' if same else 'DIFFER'} across the conditions: {figures[conditions[0]]}")
    return 0 if same else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=60, help="timed steps per run (after as many warm-up steps)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--rows", type=int, default=4096)
    p.add_argument("--read-ms", type=float, default=8.0, help="the least milliseconds one minibatch read takes")
    p.add_argument("--decode", choices=["zlib", "sleep"], default="zlib")
    p.add_argument("--prefetch", default="0,2", help="the conditions, comma-separated (default 0,2)")
    p.add_argument("--backend", default="numpy")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--json", default=None, metavar="PATH", help="append one JSON line per run here")
    p.add_argument("--evaluate", action="store_true", help="time model.evaluate on the dataset instead of fit")
    args = p.parse_args(argv)
    conditions = [int(v) for v in args.prefetch.split(",")]
    ds = SlowRows(args.rows, 784, 10, args.read_ms / 1e3, args.decode)
    t0 = time.perf_counter()
    ds.__getitems__(range(args.batch_size))
    print(f"# a read of {args.batch_size} rows: {1e3 * (time.perf_counter() - t0):.1f} ms ({args.decode}); "
          f"MLP 784-{args.hidden}-{args.hidden}-10 on {args.backend} {args.device or ''} {args.dtype}, "
          + ("model.evaluate over the dataset" if args.evaluate else f"{args.steps} timed steps per run")
          + f", {args.repeats} interleaved repeats", flush=True)
    if args.evaluate:
        return evaluate_mode(ds, args, conditions)
    runs = {c: [] for c in conditions}
    out = open(args.json, "a") if args.json else None
    for r in range(args.repeats):
        for c in conditions:
            row = one_run(ds, args, c)
            runs[c].append(row)
            print(f"repeat {r + 1} prefetch {c}: wait {100 * row['wait_fraction']:.1f} % of the step time, "
                  f"{row['wait_ms_per_step']:.2f} ms/step waiting, {row['ms_per_step']:.2f} ms/step", flush=True)
            if out:
                out.write(json.dumps(dict(row, repeat=r, backend=args.backend, device=args.device,
                                          read_ms=args.read_ms, decode=args.decode)) + "\n")
                out.flush()
    print("\n| prefetch | data wait (% of step time) | wait ms/step | ms/step |\n| --- | --- | --- | --- |")
    for c in conditions:
        med = {k: statistics.median(r[k] for r in runs[c]) for k in ("wait_fraction", "wait_ms_per_step",
                                                                     "ms_per_step")}
        print(f"| {c} | {100 * med['wait_fraction']:.1f} | {med['wait_ms_per_step']:.2f} | {med['ms_per_step']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
