"""The child process: one (case, framework, dtype) measurement, reported to the parent as one JSON line.

Runs as `run.py --worker CASE FRAMEWORK DTYPE --xpnet-root ROOT ...`; an xpnet row checks that the xpnet it
imports comes from ROOT (the checkout being timed) and stops the whole run (exit 3) if not."""
from __future__ import annotations

import json
import resource
import statistics
import sys
from pathlib import Path

from .cases import CASES, load_data
from .frameworks import TABLE
from .train_xpnet import run_xpnet


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def proc_status_mb(key: str) -> float | None:
    """VmRSS (now) or VmHWM (peak since start or since reset_peak()) from /proc/self/status, in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Make VmHWM the current RSS (Linux >= 4.0), so the training peak excludes the data loading's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class WrongCheckout(RuntimeError):
    """The worker imported xpnet from somewhere other than the checkout it was meant to time."""


def import_xpnet(root: str | None):
    """Import xpnet and check that it comes from `root`/xpnet; returns (module, its resolved __file__).
    Where it would come from is checked before it runs (a wrong xpnet may not even import), then again."""
    import importlib.util
    want = Path(root).resolve() / "xpnet" if root else None

    def check(where):
        if want and not (where and Path(where).resolve().is_relative_to(want)):
            raise WrongCheckout(f"the worker meant to time {root} finds xpnet at {where} (an installed or editable "
                                f"xpnet shadows PYTHONPATH?)")
    spec = importlib.util.find_spec("xpnet")
    check(spec.origin if spec else None)
    import xpnet
    check(xpnet.__file__)
    return xpnet, str(Path(xpnet.__file__).resolve())


def worker(case_name: str, framework: str, dtype: str, args) -> dict:
    """Runs in a child process; returns what the parent reads back (one JSON line)."""
    case, fw = CASES[case_name], TABLE[framework]
    device = args.device if fw.gpu else "cpu"
    xpnet_file = None
    if fw.backend:
        xpnet, xpnet_file = import_xpnet(args.xpnet_root)
        if hasattr(xpnet, "backend"):
            xpnet.backend(fw.backend, device)  # imports the array library; fails here if it is not installed
        mode = args.torch_compile_mode if fw.backend == "torch" else None
        kw = {"compile": True, "compile_mode": mode} if fw.compiled else {}

        def runner(*a):
            return run_xpnet(case, fw.backend, *a, **kw)
    else:
        def runner(*a):
            return fw.run(case, *a)
        if fw.prepare:
            fw.prepare()
    X, y = load_data(case, dtype, args.data_dir) if fw.data else (None, None)
    rss_load = proc_status_mb("VmRSS") or maxrss_mb()
    exact = reset_peak()
    seconds, note, *extra = runner(dtype, X, y, args.epochs, device)  # extra: a dict of other figures, or none
    peak = maxrss_mb()
    train_peak = (proc_status_mb("VmHWM") if exact else None) or peak
    return {"seconds": seconds, "median_s": statistics.median(seconds), "peak_rss_mb": peak,
            "rss_after_load_mb": rss_load, "train_rss_increase_mb": max(0.0, train_peak - rss_load),
            "note": note, "device": device, "xpnet_file": xpnet_file, **(extra[0] if extra else {})}


def worker_main(args) -> None:
    import warnings
    warnings.simplefilter("ignore")
    try:
        out = worker(*args.worker, args)
    except WrongCheckout as exc:
        out = {"fatal": str(exc)}
    except Exception as exc:  # noqa: BLE001 (any failure is a skipped row, not a crash)
        out = {"skipped": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
    print(json.dumps(out), flush=True)
    if "fatal" in out:
        sys.exit(3)
