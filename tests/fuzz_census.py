"""Run the strategies of tests/test_data_fuzz.py without stopping at the first failure, and count the
outcomes: trained, refused in one line, or failing the property (by kind). Not a test; docs/reliability.md
quotes its figures for this checkout and for the checkout before the fixes (put that one first on
PYTHONPATH; it has no --classes, so pass --no-classes to leave the flag out).

    python tests/fuzz_census.py 2000 [--no-classes]
"""
import collections
import re
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
from hypothesis import given, seed, settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_data_fuzz as T  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
NO_CLASSES = "--no-classes" in sys.argv
counts, failures, examples = collections.Counter(), collections.Counter(), {}


def record(tag, rc, err, what):
    counts[tag] += 1
    try:
        T.check(rc, err, what)
    except AssertionError:
        lines = err.strip().splitlines() or [""]
        if "Traceback" in err:
            kind = "traceback: " + re.sub(r"Unable to allocate .*", "Unable to allocate ...", lines[-1])[:100]
        elif rc == 0:
            kind = "trained, warning repeated"
        else:
            kind = f"exit {rc}, {len(lines)} stderr lines"
        failures[(tag, kind)] += 1
        examples.setdefault((tag, kind), what)
        return
    counts[f"{tag} {'trained' if rc == 0 else 'refused'}"] += 1


def run(path, opts):
    scale, dtype, classes = opts
    try:
        return T.run_train(path, scale, dtype, None if NO_CLASSES else classes)
    except BaseException as exc:  # what escapes main() is a traceback for the user
        return 1, "Traceback\n" + "".join(traceback.format_exception_only(type(exc), exc))


S = settings(T.FUZZ, max_examples=N, database=None)


@S
@seed(0)
@given(arrays=T.npz_files(), opts=T.options())
def npz(arrays, opts):
    with T.folder() as d:
        path = d / "data.npz"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            np.savez(path, **arrays)
        rc, err = run(path, opts)
    record("npz", rc, err, str({k: (str(v.dtype), v.shape) for k, v in arrays.items()}) + str(opts))


@S
@seed(0)
@given(text=T.csv_files(), opts=T.options())
def csv(text, opts):
    with T.folder() as d:
        path = d / "data.csv"
        path.write_text(text, encoding="utf-8", newline="")
        rc, err = run(path, opts)
    record("csv", rc, err, repr(text) + str(opts))


for f in (npz, csv):
    t0 = time.perf_counter()
    f()
    print(f"{f.__name__}: {counts[f.__name__]} examples in {time.perf_counter() - t0:.1f} s, "
          f"{counts[f.__name__ + ' trained']} trained, {counts[f.__name__ + ' refused']} refused in one line")
for (tag, kind), c in failures.most_common():
    print(f"{c:5d}  {tag}  {kind}\n         e.g. {examples[(tag, kind)][:200]}")
print(f"failing the property: {sum(failures.values())} of {counts['npz'] + counts['csv']} examples")
