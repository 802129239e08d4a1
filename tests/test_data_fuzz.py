"""Fuzzing the whole path from a dataset file to the first training step: `xpnet train --dataset FILE`,
run in-process through `xpnet.cli.main`, on generated .npz and .csv files.

Property: training runs (exit 0) or the command exits 2 with exactly one stderr line starting
"xpnet train: error:"; never a traceback, never another exit code. A run that trains prints the
"holds k of the model's n classes" warning at most once.

The CI default is 150 examples per test (.npz, .csv); XPNET_FUZZ_EXAMPLES=2000 (with --hypothesis-seed=0) is the
long run recorded in docs/reliability.md."""
import contextlib
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from test_bad_datasets import train  # xpnet train in-process -> (exit status, stderr as printed)

EXAMPLES = int(os.environ.get("XPNET_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])

NUMERIC = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint64", "float16", "float32", "float64"]
OTHER = ["complex64", "complex128", "<U3", "S2", "datetime64[s]", "timedelta64[s]",
         [("a", "<f8"), ("b", "<i4")], "object"]


def array_of(dtype, shape, tame: bool):
    """Any array of `dtype` and `shape`; `tame` keeps numbers small and finite (labels 0..3, features
    -10..10) so that well-formed files often reach training."""
    if dtype == "object":  # numpy.savez pickles these; the reader must refuse them
        return hnp.arrays(object, shape, elements=st.integers(0, 3))
    dt = np.dtype(dtype)
    if tame and dt.kind in "iu":
        return hnp.arrays(dt, shape, elements=st.integers(0, 3), fill=st.nothing())  # each element drawn
    if tame and dt.kind == "f":
        return hnp.arrays(dt, shape, elements=st.floats(-10, 10, width=8 * min(dt.itemsize, 8)), fill=st.nothing())
    return hnp.arrays(dt, shape)


def any_array(max_dims=4):
    return st.tuples(st.sampled_from(NUMERIC + OTHER),
                     hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=4),
                     st.booleans()).flatmap(lambda t: array_of(*t))


def good_features(n):
    return st.tuples(st.sampled_from(NUMERIC), st.integers(1, 4), st.booleans()).flatmap(
        lambda t: array_of(t[0], (n, t[1]), t[2]))


def good_labels(n):
    """Labels 0..k-1 (k from 2 to 4, each present when n allows) in a shuffled order, of any numeric dtype;
    now and then values of the whole dtype range."""
    def cast(t):
        dtype, k, perm = t
        return (np.arange(n)[list(perm)] % (2 if dtype == "bool" else k)).astype(dtype)
    tame = st.tuples(st.sampled_from(NUMERIC), st.integers(2, 4), st.permutations(range(n))).map(cast)
    return st.one_of(tame, tame, tame, st.sampled_from(NUMERIC).flatmap(lambda d: array_of(d, (n,), False)))


ODD_LABELS = [0, 1, 2, -1, 7, 10 ** 6, 2 ** 40]
MUTATIONS = ["none"] * 6 + ["X", "y", "y odd", "X_test", "y_test", "drop X_test", "drop y_test", "anything"]


@st.composite
def npz_files(draw):
    """A well-formed dataset (X, y and often X_test, y_test) with at most one array replaced by another of
    any rank, dtype and size (or dropped), or else any arrays at all."""
    n, m = draw(st.integers(1, 8)), draw(st.integers(1, 4))
    arrays = {"X": draw(good_features(n)), "y": draw(good_labels(n))}
    if draw(st.booleans()):
        arrays["X_test"] = draw(st.sampled_from(NUMERIC).flatmap(lambda d: array_of(d, (m, arrays["X"].shape[1]),
                                                                                 True)))
        arrays["y_test"] = draw(good_labels(m))
    mutation = draw(st.sampled_from(MUTATIONS))
    if mutation in ("X", "y", "X_test", "y_test"):
        arrays[mutation] = draw(any_array())
    elif mutation == "y odd":
        arrays["y"] = np.array(draw(st.lists(st.sampled_from(ODD_LABELS), min_size=n, max_size=n)))
    elif mutation.startswith("drop"):
        arrays.pop(mutation.split()[1], None)
    elif mutation == "anything":
        arrays = {k: draw(any_array()) for k in ("X", "y", "X_test", "y_test") if k in arrays or draw(st.booleans())}
    return arrays


CELLS = st.one_of(st.integers(-2, 4).map(str), st.integers(-2, 4).map(str),
                  st.floats(allow_nan=True, allow_infinity=True).map(repr),
                  st.sampled_from(["", "abc", "nan", "inf", "-inf", "1e400", "1e300", '"1"', "0x1", " 2 ", "1.5",
                                   "1000000", "True", "\x00"]),
                  st.text(st.characters(blacklist_categories=("Cs",)), max_size=3))


RARELY = st.sampled_from([False] * 7 + [True])  # True about one time in eight
NUMBERS = st.one_of(st.integers(-3, 9).map(str), st.floats(-1e3, 1e3).map(repr))


@st.composite
def csv_files(draw):
    """Mostly well-formed CSV (header, numeric cells, labels 0..3) with now and then one odd cell, row or
    header; sometimes anything at all."""
    ncols = 1 if draw(RARELY) else draw(st.integers(2, 5))
    names = [f"c{i}" for i in range(ncols)]
    label_at = -1 if draw(RARELY) else draw(st.integers(0, ncols - 1))  # -1: no label column
    if label_at >= 0:
        names[label_at] = "label"
    wild = draw(RARELY)
    cells = CELLS if wild else NUMBERS
    k, offset = draw(st.integers(2, 4)), draw(st.integers(0, 3))
    lines = [] if draw(RARELY) else [",".join(names)]
    for r in range(draw(st.integers(0, 8))):
        width = draw(st.integers(0, 6)) if draw(RARELY) else ncols  # ragged now and then
        row = [(draw(CELLS) if wild and draw(st.booleans()) else str((r + offset) % k)) if i == label_at
               else draw(cells) for i in range(width)]
        if row and draw(RARELY):
            row[draw(st.integers(0, len(row) - 1))] = draw(CELLS)  # one odd cell
        lines.append(",".join(row))
        if draw(RARELY):
            lines.append("")
    end = draw(st.sampled_from(["\n", "\r\n"]))
    return end.join(lines) + draw(st.sampled_from(["", end]))


def options():
    return st.tuples(st.sampled_from([None, "raw", "standardize"]), st.sampled_from(["float32", "float64"]),
                     st.sampled_from([None] * 12 + [1, 2, 4, 10 ** 6]))


def run_train(path: Path, scale, dtype, classes) -> tuple[int, str]:
    args = ["--dtype", dtype] + (["--scale", scale] if scale else []) + (["--classes", classes] if classes else [])
    return train(path, *args)


def check(rc, stderr: str, what: str) -> None:
    lines = stderr.splitlines()
    if rc == 0:
        assert all(line.startswith("xpnet: warning: ") for line in lines), stderr
        assert len([line for line in lines if re.search(r"holds \d+ of the model's \d+ classes", line)]) <= 1, stderr
        return
    assert rc == 2, f"exit {rc} on {what}:\n{stderr}"
    # warnings about the data may come first (e.g. classes never trained), then the one error line
    errors = [line for line in lines if not line.startswith("xpnet: warning: ")]
    assert len(errors) == 1 and errors[0] == lines[-1] and errors[0].startswith("xpnet train: error:"), \
        f"on {what}:\n{stderr}"


@contextlib.contextmanager
def folder():
    d = tempfile.mkdtemp(prefix="xpnet-fuzz-")
    try:
        yield Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@FUZZ
@given(arrays=npz_files(), opts=options())
def test_npz_file_to_first_step(arrays, opts):
    with folder() as d:
        path = d / "data.npz"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy's own warnings while writing odd arrays
            np.savez(path, **arrays)
        rc, err = run_train(path, *opts)
    check(rc, err, {k: (v.dtype, v.shape) for k, v in arrays.items()})


@FUZZ
@given(text=csv_files(), opts=options())
def test_csv_file_to_first_step(text, opts):
    with folder() as d:
        path = d / "data.csv"
        path.write_text(text, encoding="utf-8", newline="")
        rc, err = run_train(path, *opts)
    check(rc, err, repr(text))
