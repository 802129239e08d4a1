"""Malformed .npz and .csv datasets through `xpnet train`, as a new user would try them (issue 10): each is
refused with one stderr line "xpnet train: error: ..." and exit 2 before any training step, or trains (exit 0)
where that is the documented behaviour. Run in-process through xpnet.cli.main; one case also as a subprocess."""
import contextlib
import io
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

from xpnet.cli import main

rng = np.random.default_rng(0)
X = rng.random((20, 3))
y = np.arange(20) % 3


def train(path, *args) -> tuple[int, str]:
    """`xpnet train --dataset path --epochs 1 --quiet ARGS` in-process -> (exit status, stderr as printed,
    each warning on its own line as the CLI prints it)."""
    argv = ["train", "--dataset", str(path), "--epochs", "1", "--quiet", "--hidden", "3", "--backend", "numpy",
            *map(str, args)]
    err = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(err), \
            contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("always")  # a warning given twice shows twice
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = exc.code
    shown = [f"xpnet: warning: {w.message}" for w in caught
             if not (issubclass(w.category, RuntimeWarning) and "encountered in" in str(w.message))]
    return rc, "".join(line + "\n" for line in shown) + err.getvalue()


# (id, arrays for numpy.savez, extra flags, what the one error line must contain)
NPZ_REFUSED = [
    ("X_rank0", dict(X=np.float64(1.0), y=np.array([0])), [], r"X is a single number \(shape \(\)\)"),
    ("X_rank1", dict(X=rng.random(20), y=y), [], r"X is 1-D, shape \(20,\); expected a 2-D array .*X.reshape\(-1, 1\)"),
    ("X_rank3", dict(X=rng.random((20, 2, 2)), y=y), [], r"X is 3-D, .*flatten each sample with X.reshape\(len\(X\), -1\)"),
    ("X_rank4", dict(X=rng.random((20, 1, 2, 2)), y=y), [], r"X is 4-D, shape \(20, 1, 2, 2\)"),
    ("zero_samples", dict(X=np.zeros((0, 3)), y=np.zeros(0, int)), [], r"X has no samples \(shape \(0, 3\)\)"),
    ("zero_features", dict(X=np.zeros((20, 0)), y=y), [], r"X has no features \(shape \(20, 0\)\)"),
    ("X_test_width", dict(X=X, y=y, X_test=rng.random((5, 4)), y_test=y[:5]), [],
     "X_test has 4 features per sample but X has 3"),
    ("X_test_empty", dict(X=X, y=y, X_test=np.zeros((0, 3)), y_test=np.zeros(0, int)), [],
     "X_test has no samples .* or leave X_test and y_test out"),
    ("X_test_nan", dict(X=X, y=y, X_test=np.full((2, 3), np.nan), y_test=y[:2]), [],
     r"X_test holds NaN or infinity \(first at row 0, column 0\)"),
    ("X_nan", dict(X=np.where(X > 0.9, np.nan, X), y=y), [], r"X holds NaN or infinity \(first at row 1, column 2\)"),
    ("X_huge_float32", dict(X=X * 1e308, y=y), [], "X holds values from .* become infinite or NaN when scaled "
                                                   r"\(unit\) to float32; .*--dtype float64"),
    ("X_complex128", dict(X=X.astype(np.complex128), y=y), [], "array 'X' has dtype complex128"),
    ("X_structured", dict(X=np.zeros(20, dtype=[("a", "f8"), ("b", "i4")]), y=y), [], "array 'X' has dtype"),
    ("y_rank2_onehot", dict(X=X, y=np.eye(3)[y]), [], r"y is 2-D, shape \(20, 3\); .*y.argmax\(axis=1\)"),
    ("y_rank0", dict(X=X[:1], y=np.int64(0)), [], r"y is a single number \(shape \(\)\)"),
    ("y_len", dict(X=X, y=y[:-1]), [], "same number of samples"),
    ("y_non_integer", dict(X=X, y=y + 0.5), [], "y holds labels that are not whole numbers, such as 0.5"),
    ("y_nan", dict(X=X, y=np.where(y == 2, np.nan, y)), [], r"y holds NaN or infinity \(first at index 2\)"),
    ("y_inf", dict(X=X, y=np.where(y == 2, np.inf, y)), [], r"y holds NaN or infinity \(first at index 2\)"),
    ("y_complex", dict(X=X, y=y.astype(complex)), [], "array 'y' has dtype complex128"),
    ("y_test_nan", dict(X=X, y=y, X_test=X[:2], y_test=np.array([0, np.nan])), [], "y_test holds NaN or infinity"),
    ("X_test_without_y_test", dict(X=X, y=y, X_test=X[:2]), [], "has X_test without y_test"),
    ("one_class", dict(X=X, y=np.zeros(20, int)), [], "every label is 0, a single class.*--classes 2"),
    ("classes_below_max_label", dict(X=X, y=y), ["--classes", "2"],
     "--classes 2 takes labels 0..1, but they go from 0 to 2; pass --classes 3 or more, or leave --classes out"),
    ("classes_with_names", dict(X=X, y=np.array(["a", "b"])[y % 2]), ["--classes", "2"],
     r"--classes 2 numbers the outputs 0..1, but the labels are names \['a', 'b'\]; leave --classes out"),
    ("names_and_numbers", dict(X=X, y=np.array(["a", "b"])[y % 2], X_test=X[:2], y_test=y[:2]), [],
     "y holds names but y_test holds numbers; use the same kind of labels in both"),
    ("one_name", dict(X=X, y=np.full(20, "cat")), [], "every label is 'cat', a single class: nothing to tell apart"),
    ("empty_name", dict(X=X, y=np.where(y == 1, "", "dog")), [], r"y has an empty label \(first at index 1\)"),
    ("classes_1", dict(X=X, y=y), ["--classes", "1"], "argument --classes: expected the number of classes"),
    ("classes_too_large_for_memory", dict(X=X, y=y), ["--classes", 2 ** 31 - 1, "--hidden", 100000],  # 1.5 PiB
     "not enough memory to build the model .*lower --hidden, or --classes"),
]


@pytest.mark.parametrize("arrays, args, message", [pytest.param(*c[1:], id=c[0]) for c in NPZ_REFUSED])
def test_npz_refused_in_one_line(tmp_path, arrays, args, message):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    rc, err = train(path, *args)
    lines = err.splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("xpnet train: error: "), err
    assert re.search(message, lines[0]), lines[0]


CSV_REFUSED = [
    ("no_header", "1,2,0\n3,4,1\n", r"label column 'label' is not in the header; columns are \['1', '2', '0'\]; .*"
                                    r"the first line holds numbers: is the header row missing\?"),
    ("non_numeric", "a,b,label\n1,x,0\n", r"line 2, column 'b': 'x' is not a number"),
    ("ragged", "a,b,label\n1,2,0\n1,2\n", "line 3: 2 fields but the header has 3"),
    ("row_of_commas", "a,label\n1,0\n,\n2,1\n", "line 3, column 'a': '' is not a number"),
    ("row_of_spaces", "a,label\n1,0\n  \n2,1\n", "line 3: 1 fields but the header has 2"),
    ("nan_feature", "a,b,label\nnan,1,0\n2,3,1\n", "line 2, column 'a': 'nan' is not a finite number"),
    ("nan_label", "a,b,label\n1,1,0\n2,3,nan\n", "line 3, column 'label': 'nan' is not a finite number"),
    ("inf_label", "a,b,label\n1,1,inf\n2,3,1\n", "line 2, column 'label': 'inf' is not a finite number"),
    ("1e400_feature", "a,label\n1e400,1\n1,0\n", "line 2, column 'a': '1e400' is not a finite number"),
    ("fractional_label", "a,label\n1,0.5\n2,1\n", "label column 'label' holds labels that are not whole numbers"),
    ("one_class", "a,label\n1,0\n2,0\n", r"every label is 0, a single class.*\(--label-column\)"),
    ("only_label_column", "label\n1\n", "only the label column 'label'; expected feature columns too"),
    ("label_column_twice", "label,label\n1,0\n", "label column 'label' appears more than once"),
    ("not_utf8", b"a\xe9,label\n1,0\n", r"not UTF-8 text \('utf-8' codec can't decode byte 0xe9"),
]


@pytest.mark.parametrize("text, message", [pytest.param(*c[1:], id=c[0]) for c in CSV_REFUSED])
def test_csv_refused_in_one_line(tmp_path, text, message):
    path = tmp_path / "d.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    rc, err = train(path)
    lines = err.splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith(f"xpnet train: error: {path}"), err
    assert re.search(message, lines[0]), lines[0]


def test_npy_renamed_npz_in_one_line(tmp_path):
    path = tmp_path / "d.npz"
    np.save(path.with_suffix(".npy"), X)
    path.with_suffix(".npy").rename(path)
    rc, err = train(path)
    assert rc == 2 and err == (f"xpnet train: error: {path}: holds a single .npy array, not an .npz archive; save X "
                               f"and y with numpy.savez(path, X=X, y=y)\n"), err


ACCEPTED = [  # (id, arrays, flags, the warning expected once, or None for none)
    ("y_column_vector", dict(X=X, y=y[:, None]), [], None),
    ("y_whole_floats", dict(X=X, y=y.astype(float)), [], None),
    ("y_bool", dict(X=X, y=y > 0), [], None),
    ("X_bool_and_float16", dict(X=(X > 0.5).astype(np.float16), y=y), [], None),
    ("X_int8_raw", dict(X=(X * 100).astype(np.int8), y=y), ["--scale", "raw"], None),
    ("labels_1_2_only", dict(X=X, y=y % 2 + 1, X_test=X[:3], y_test=np.array([1, 1, 2])), [],
     "y holds 2 of the model's 3 classes; the others are never trained"),
    ("label_1e6_with_classes", dict(X=X, y=np.where(np.arange(20) == 5, 10 ** 6, y)), ["--classes", 1000001],
     "y holds 4 of the model's 1000001 classes"),
    ("one_class_with_classes_2", dict(X=X, y=np.zeros(20, int)), ["--classes", 2], "y holds 1 of the model's 2"),
    ("classes_above_max_label", dict(X=X, y=y, X_test=X[:2], y_test=y[:2]), ["--classes", 5],
     "y holds 3 of the model's 5 classes"),
    # labels that are not 0..k-1 map to outputs by their sorted values (issue 15; refused before)
    ("y_negative", dict(X=X, y=y - 1), [], None),
    ("y_str", dict(X=X, y=y.astype(str)), [], None),
    ("label_1e6_among_0_9", dict(X=X, y=np.where(np.arange(20) == 5, 10 ** 6, np.arange(20) % 10)), [], None),
    ("y_test_label_1e6", dict(X=X, y=y, X_test=X[:2], y_test=np.array([0, 10 ** 6])), [],
     "y holds 3 of the model's 4 classes"),
    ("label_uint64_max", dict(X=X, y=np.where(y == 2, np.iinfo(np.uint64).max, y).astype(np.uint64)), [], None),
]


@pytest.mark.parametrize("arrays, args, warning", [pytest.param(*c[1:], id=c[0]) for c in ACCEPTED])
def test_accepted_and_warned_once(tmp_path, arrays, args, warning):
    """These train. The untrained-classes warning, where due, is printed once: fit gives it; scoring the
    training and test sets no longer repeats it (it was printed two and three times)."""
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    rc, err = train(path, *args)
    assert rc == 0, err
    lines = err.splitlines()
    assert len(lines) == (warning is not None), err
    assert warning is None or lines[0].startswith(f"xpnet: warning: {warning}"), err


MAPPED = [  # (id, CSV or arrays, the classes_ the checkpoint must hold)
    ("names", "a,b,species\n" + "".join(f"{i},{i % 3},{['setosa', 'versicolor', 'virginica'][i % 3]}\n"
                                        for i in range(30)), ["setosa", "versicolor", "virginica"]),
    ("negative", "a,label\n" + "".join(f"{i},{i % 2 - 1}\n" for i in range(20)), [-1, 0]),
    ("sparse", "a,label\n" + "".join(f"{i},{[3, 7, 100][i % 3]}\n" for i in range(30)), [3, 7, 100]),
    ("1e300", "a,label\n1,1e300\n2,1\n3,1\n", [1.0, 1e300]),
    ("1e19", "a,label\n1,1e19\n2,1\n", [1.0, 1e19]),
    ("npz_names", dict(X=X, y=np.array(["cat", "dog", "emu"])[y]), ["cat", "dog", "emu"]),
]


@pytest.mark.parametrize("data, classes", [pytest.param(*c[1:], id=c[0]) for c in MAPPED])
def test_labels_that_are_not_0_to_k_map_through_classes(tmp_path, data, classes):
    """Labels of any kind train (issue 15: "'setosa' is not a number" before): the checkpoint's model predicts the
    original labels, its classes_ in sorted order, and `xpnet predict` on the same file names them."""
    import json
    import xpnet
    path = tmp_path / ("d.csv" if isinstance(data, str) else "d.npz")
    label_column = "species" if isinstance(data, str) and "species" in data else "label"
    if isinstance(data, str):
        path.write_text(data)
    else:
        np.savez(path, **data)
    ck = tmp_path / "m.safetensors"
    rc, err = train(path, "--checkpoint", ck, "--label-column", label_column, "--scale", "standardize")
    assert rc == 0 and err == "", err
    model = xpnet.load(ck)
    assert [c.item() for c in model.classes_] == classes and model.n_outputs == len(classes)
    Xr, yr = xpnet.data.datasets.load_array_file(path, label_column)[:2]
    pred = model.predict(Xr)
    assert set(pred.tolist()) <= set(classes) and model.score(Xr, yr) == np.mean(pred == yr)
    if isinstance(data, str):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["predict", "--checkpoint", str(ck), str(path), "--label-column", label_column,
                         "--json"]) == 0
        result = json.loads(out.getvalue().splitlines()[-1])
        assert result["predictions"] == pred.tolist() and result["classes"] == classes


def test_classes_is_kept_by_resume_and_not_given_with_it(tmp_path):
    path, ck = tmp_path / "d.npz", tmp_path / "ck.safetensors"
    np.savez(path, X=X, y=y)
    rc, err = train(path, "--classes", 6, "--checkpoint", ck)
    assert rc == 0, err
    err_io = io.StringIO()
    with contextlib.redirect_stderr(err_io), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["train", "--resume", str(ck), "--epochs", "2", "--quiet"]) == 0, err_io.getvalue()
        assert main(["train", "--resume", str(ck), "--classes", "7", "--quiet"]) == 2
        assert main(["train", "--dataset", str(path), "--classes", "6", "--resume", str(ck), "--epochs", "3",
                     "--quiet"]) == 0, err_io.getvalue()  # the same value as the checkpoint's is accepted
    assert "--classes 7 differs from the checkpoint's classes 6; drop it or start a new run" in err_io.getvalue()
    import xpnet
    assert xpnet.load(ck).n_outputs == 6


def test_the_installed_command_prints_one_line(tmp_path):
    """The battery's first failure as a user saw it (an IndexError traceback), through python -m xpnet."""
    path = tmp_path / "d.npz"
    np.savez(path, X=rng.random(20), y=y)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XPNET_")}
    proc = subprocess.run([sys.executable, "-m", "xpnet", "train", "--dataset", str(path), "--epochs", "1",
                           "--quiet"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"xpnet train: error: {path}: X is 1-D"), proc.stderr


@pytest.mark.parametrize("shape", [(50, 7), (9, 3, 5, 5), (1, 4)])
def test_first_nonfinite_in_chunks_is_argwhere(shape):
    """The NaN/infinity check reads chunks of rows (a memory-mapped file in one pass, no whole-array mask) and
    finds the same first place as a whole-array argwhere, whatever the chunk."""
    from xpnet.data.validation import first_nonfinite
    rng = np.random.default_rng(0)
    for trial in range(20):
        a = rng.standard_normal(shape)
        if trial:
            a.flat[rng.integers(0, a.size, size=rng.integers(1, 4))] = rng.choice([np.nan, np.inf, -np.inf])
        want = tuple(int(v) for v in np.argwhere(~np.isfinite(a))[0]) if trial else None
        for chunk in (1, a[:1].nbytes * 2 + 1, 1 << 24):
            assert first_nonfinite(a, chunk) == want and first_nonfinite(a.astype(np.float32), chunk) == want
    assert first_nonfinite(np.zeros(shape, np.int64)) is None
