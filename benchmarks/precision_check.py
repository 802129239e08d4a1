"""Mixed precision on a device, for benchmarks/gpu_check.sh's `precision` sections (GPU_CHECK_SECTIONS=precision):
bf16-mixed and fp16-mixed against float32 on each backend that has the type (CuPy: float16 only).

    python benchmarks/precision_check.py parity --backends cupy,torch,jax --device cuda [--steps 20]
    python benchmarks/precision_check.py speed  --backends cupy,torch,jax --device cuda [--seconds 4]

parity: one row per (backend, precision): `xpnet.tools.parity.mixed_parity` on the parity MLP (lockstep medians of
the gradients and the update against float32's, the last free-running loss's gap; float32 matmuls pinned to full
precision on both sides), `--steps` steps.
speed: one row per (backend, precision, float32 beside it): eager training steps of an MLP 784-1024-1024-10 at batch
512 on random data (a model big enough for a GPU's 16-bit matrix units to show), steps/s over at most `--seconds`
seconds or `--steps-max` steps after 3 untimed warm-up steps, the device synchronized before each clock read; float32
runs at full float32 precision (no TF32: xpnet's JAX backend pins it, torch and CuPy default to it), so the ratio is
float32 against the 16-bit type. Each row is printed (and flushed) as it finishes, a JSON line after it; a backend
that fails gives a row that says why, and the next one runs.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xpnet.backend import BackendError, backend as select_backend  # noqa: E402
from xpnet.precision import POLICIES  # noqa: E402

GPU = ("cupy", "torch", "jax")


def _types(bk) -> list[str]:
    """The policies the backend has the compute type for, in POLICIES' order."""
    return [p for p, (compute, _) in POLICIES.items() if compute in bk.compute_dtypes]


def _emit(text: str, row: dict) -> None:
    print(text, flush=True)
    print(json.dumps(row), flush=True)


def _backend_or_skip(part: str, name: str, device):
    """The backend `name` on `device`, or None after a row of `part` saying why it was skipped."""
    try:
        return select_backend(name, device)
    except BackendError as exc:
        _emit(f"{part} {name}: skipped: {exc}", {"part": part, "backend": name, "skipped": str(exc)})
        return None


def parity_rows(backends, device, steps: int) -> None:
    from xpnet.tools.parity import mixed_parity
    for name in backends:
        bk = _backend_or_skip("parity", name, device)
        if bk is None:
            continue
        for precision in _types(bk):
            t0 = time.perf_counter()
            try:
                report = mixed_parity(precision, backends=[name], steps=steps, device=device)
                r = report["results"][0]
            except Exception as exc:  # a row that says why; the next runs
                r = {"backend": name, "passed": False, "error": {"type": type(exc).__name__, "message": str(exc)[:200]}}
            seconds = time.perf_counter() - t0
            if r.get("error"):
                text = f"parity {name} {precision}: FAILED ({r['error']['type']}: {r['error']['message']})"
            else:
                text = (f"parity {name} {r['device']} {precision}: grads {r['grad_rel']:.2e} update "
                        f"{r['update_rel']:.2e} (tol {r['tolerance']:g}; first step {r['grad_rel_first']:.2e}, worst "
                        f"{r['grad_rel_max']:.2e}), free-running last loss {r['free_final_rel']:.2e} (tol "
                        f"{r['free_tolerance']:g}), skipped {r['lockstep_skipped']}+{r['free_skipped']}, "
                        f"{'passed' if r['passed'] else 'FAILED'} in {seconds:.1f} s")
            _emit(text, dict(r, part="parity", precision=precision, steps=steps, seconds=seconds))


def _steps_per_second(name, device, precision, X, y, seconds: float, steps_max: int) -> tuple[float, int]:
    import xpnet
    model = xpnet.Sequential([xpnet.Dense(784, 1024), xpnet.ReLU(), xpnet.Dense(1024, 1024), xpnet.ReLU(),
                              xpnet.Dense(1024, 10)], optimizer=xpnet.SGD(0.01, momentum=0.9), backend=name,
                             device=device, seed=0, precision=precision)
    bk = model.bk
    with bk:
        x, labels = bk.asarray(X, dtype=model.dtype), bk.asarray(y)
        for _ in range(3):  # warm-up: allocations, kernel selection, JAX's per-op compilation
            model.train_step(x, labels, indices=True)
        bk.block(model.state.params)
        bk.synchronize()
        t0, n = time.perf_counter(), 0
        while n < steps_max and time.perf_counter() - t0 < seconds:
            model.train_step(x, labels, indices=True)
            n += 1
            if n % 5 == 0 or n == steps_max:  # read the clock only once the queued steps have run
                bk.block(model.state.params)
                bk.synchronize()
        bk.block(model.state.params)
        bk.synchronize()
        return n / (time.perf_counter() - t0), n


def speed_rows(backends, device, seconds: float, steps_max: int, batch: int) -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((batch, 784)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    for name in backends:
        bk = _backend_or_skip("speed", name, device)
        if bk is None:
            continue
        base = None
        for precision in [None, *_types(bk)]:
            label = precision or "float32"
            try:
                rate, n = _steps_per_second(name, device, precision, X, y, seconds, steps_max)
            except Exception as exc:
                _emit(f"speed {name} {label}: FAILED ({type(exc).__name__}: {str(exc)[:200]})",
                      {"part": "speed", "backend": name, "precision": label, "error": str(exc)[:300]})
                continue
            if precision is None:
                base = rate
            ratio = "" if precision is None or not base else f", {rate / base:.2f}x float32"
            _emit(f"speed {name} {bk.device} {label}: {rate:.1f} steps/s ({n} steps, MLP 784-1024-1024-10, batch "
                  f"{batch}, eager){ratio}",
                  {"part": "speed", "backend": name, "device": bk.device, "precision": label, "steps_per_s": rate,
                   "steps": n, "batch": batch, "vs_float32": None if precision is None or not base else rate / base})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=["parity", "speed"])
    ap.add_argument("--backends", default=",".join(GPU))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=20, help="parity: steps of the MLP")
    ap.add_argument("--seconds", type=float, default=4.0, help="speed: timed seconds per row, at most")
    ap.add_argument("--steps-max", type=int, default=200, help="speed: timed steps per row, at most")
    ap.add_argument("--batch", type=int, default=512, help="speed: the minibatch")
    args = ap.parse_args(argv)
    backends = [b for b in args.backends.split(",") if b]
    if args.part == "parity":
        parity_rows(backends, args.device, args.steps)
    else:
        speed_rows(backends, args.device, args.seconds, args.steps_max, args.batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
