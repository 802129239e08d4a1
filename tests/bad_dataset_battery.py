"""The battery of malformed dataset files of issue 10, each run through `python -m xpnet train --dataset FILE
--epochs 1 --quiet` as a new user would. Not a test (tests/test_bad_datasets.py holds the cases with their
expected messages): it prints, per file, the exit status, whether stderr was one clean
"xpnet train: error:" line, and its last line, then the totals; docs/reliability.md quotes them.

    python tests/bad_dataset_battery.py [FOLDER]     # FOLDER receives the files and a .json summary
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

D = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="xpnet-battery-"))
D.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
X = rng.random((20, 3)); y = np.arange(20) % 3
C = {}
def npz(name, **a): np.savez(D / f"{name}.npz", **a); C[name] = D / f"{name}.npz"
def csvf(name, text): (D / f"{name}.csv").write_text(text); C[name] = D / f"{name}.csv"
npz("ok", X=X, y=y)
npz("X_rank0", X=np.float64(1.0), y=np.array([0]))
npz("X_rank0_y_rank0", X=np.float64(1.0), y=np.int64(0))
npz("X_rank1", X=rng.random(20), y=y)
npz("X_rank3", X=rng.random((20, 2, 2)), y=y)
npz("X_rank4", X=rng.random((20, 1, 2, 2)), y=y)
npz("zero_samples", X=np.zeros((0, 3)), y=np.zeros(0, int))
npz("zero_features", X=np.zeros((20, 0)), y=y)
npz("zero_samples_and_features", X=np.zeros((0, 0)), y=np.zeros(0, int))
npz("X_test_width", X=X, y=y, X_test=rng.random((5, 4)), y_test=y[:5])
npz("X_test_rank1", X=X, y=y, X_test=rng.random(5), y_test=y[:5])
npz("X_test_empty", X=X, y=y, X_test=np.zeros((0, 3)), y_test=np.zeros(0, int))
npz("y_rank2_cols", X=X, y=np.eye(3)[y])
npz("y_rank2_col1", X=X, y=y[:, None])
npz("y_rank0", X=X[:1], y=np.int64(0))
npz("y_float_nonint", X=X, y=y + 0.5)
npz("y_float_whole", X=X, y=y.astype(float))
npz("y_negative", X=X, y=y - 1)
npz("y_bool", X=X, y=(y > 0))
npz("y_complex", X=X, y=y.astype(complex))
npz("y_str", X=X, y=y.astype(str))
npz("y_len", X=X, y=y[:-1])
npz("X_nan", X=np.where(X > 0.9, np.nan, X), y=y)
npz("X_inf", X=np.where(X > 0.9, np.inf, X), y=y)
npz("y_nan", X=X, y=np.where(y == 2, np.nan, y))
npz("y_inf", X=X, y=np.where(y == 2, np.inf, y))
npz("X_test_nan", X=X, y=y, X_test=np.full((2, 3), np.nan), y_test=y[:2])
npz("y_test_nan", X=X, y=y, X_test=X[:2], y_test=np.array([0, np.nan]))
npz("y_test_neg", X=X, y=y, X_test=X[:2], y_test=np.array([0, -1]))
npz("y_test_rank2", X=X, y=y, X_test=X[:2], y_test=np.eye(3)[:2])
npz("y_test_len", X=X, y=y, X_test=X[:2], y_test=y[:3])
npz("label_1e6", X=X, y=np.where(np.arange(20) == 5, 10**6, np.arange(20) % 10))
npz("label_2pow62", X=X, y=np.where(np.arange(20) == 5, 2**62, y))
npz("label_uint64max", X=X, y=np.where(np.arange(20) == 5, np.iinfo(np.uint64).max, y.astype(np.uint64)))
npz("y_test_label_1e6", X=X, y=y, X_test=X[:2], y_test=np.array([0, 10**6]))
npz("one_class", X=X, y=np.zeros(20, int))
npz("X_test_only", X=X, y=y, X_test=X[:2])
npz("y_test_only", X=X, y=y, y_test=y[:2])
npz("X_complex128", X=X.astype(np.complex128), y=y)
npz("X_structured", X=np.zeros(20, dtype=[("a", "f8"), ("b", "i4")]), y=y)
npz("y_structured", X=X, y=np.zeros(20, dtype=[("a", "i8")]))
npz("X_datetime", X=np.zeros((20, 3), dtype="datetime64[s]"), y=y)
npz("X_str", X=X.astype(str), y=y)
npz("X_bool", X=X > 0.5, y=y)
npz("X_float16", X=X.astype(np.float16), y=y)
npz("X_huge", X=X * 1e308, y=y)
npz("X_huge_neg", X=np.where(X > .5, 1e308, -1e308), y=y)
npz("X_int_raw", X=(X * 100).astype(np.int8), y=y)
npz("X_uint64_max", X=np.full((20, 3), np.iinfo(np.uint64).max, np.uint64), y=y)
npz("y_float16", X=X, y=y.astype(np.float16))
npz("single_sample", X=X[:1], y=y[:1])
npz("y_uint8_255", X=X, y=np.where(np.arange(20) == 0, 255, y).astype(np.uint8))
npz("y_timedelta", X=X, y=y.astype("timedelta64[s]"))
npz("X_void_bytes", X=np.zeros((20, 3), dtype="V4"), y=y)
npz("X_bytes", X=np.zeros((20, 3), dtype="S2"), y=y)
npz("y_bytes", X=X, y=y.astype("S1"))
npz("y_label_3_only", X=X, y=np.full(20, 3))
npz("labels_0_1_1e6", X=X[:3], y=np.array([0, 1, 10**6]))
csvf("csv_ok", "a,b,label\n1,2,0\n3,4,1\n5,6,2\n")
csvf("csv_no_header", "1,2,0\n3,4,1\n")
csvf("csv_no_label_col", "a,b\n1,2\n")
csvf("csv_non_numeric", "a,b,label\n1,x,0\n")
csvf("csv_ragged", "a,b,label\n1,2,0\n1,2\n")
csvf("csv_empty_cell", "a,b,label\n1,,0\n")
csvf("csv_nan_X", "a,b,label\nnan,1,0\n2,3,1\n")
csvf("csv_nan_y", "a,b,label\n1,1,nan\n2,3,1\n")
csvf("csv_inf_y", "a,b,label\n1,1,inf\n2,3,1\n")
csvf("csv_huge_y", "a,b,label\n1,1,1e300\n2,3,1\n")
csvf("csv_1e19_y", "a,b,label\n1,1,1e19\n2,3,1\n")
csvf("csv_neg_y", "a,b,label\n1,1,-1\n2,3,1\n")
csvf("csv_frac_y", "a,b,label\n1,1,0.5\n2,3,1\n")
csvf("csv_label_1e6", "a,b,label\n" + "".join(f"{i},{i},{i % 10}\n" for i in range(19)) + "1,1,1000000\n")
csvf("csv_only_label", "label\n1\n")
csvf("csv_header_only", "a,label\n")
csvf("csv_blank", "")
csvf("csv_hex", "a,label\n0x10,1\n")
csvf("csv_inf_X", "a,label\ninf,1\n1,0\n")
csvf("csv_1e400", "a,label\n1e400,1\n1,0\n")
csvf("csv_dup_label", "label,label\n1,0\n")
csvf("csv_extra_trailing_comma", "a,label\n1,0,\n")
csvf("csv_quoted", 'a,label\n"1",0\n"2",1\n')
csvf("csv_semicolon", "a;label\n1;0\n")
csvf("csv_label_only_blank", "a,label\n1,\n")
csvf("csv_one_class", "a,label\n1,0\n2,0\n")
csvf("csv_spaces", "a , label \n 1 , 0 \n 2 , 1 \n")
csvf("csv_nul", "a,label\n1\x00,0\n")
(D / "csv_latin1.csv").write_bytes(b"a\xe9,label\n1,0\n"); C["csv_latin1"] = D / "csv_latin1.csv"

env = {k: v for k, v in os.environ.items() if not k.startswith("XPNET_")}
env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1])] + env.get("PYTHONPATH", "").split(os.pathsep))
res = {}
for name, path in C.items():
    p = subprocess.run([sys.executable, "-m", "xpnet", "train", "--dataset", str(path), "--epochs", "1", "--quiet"],
                       capture_output=True, text=True, env=env, timeout=300)
    lines = p.stderr.strip().splitlines()
    tb = "Traceback" in p.stderr
    clean = p.returncode == 2 and len(lines) == 1 and lines[0].startswith("xpnet train: error:") and not tb
    kind = "OK-trained" if p.returncode == 0 else ("clean" if clean else "BAD")
    last = lines[-1] if lines else ""
    res[name] = dict(rc=p.returncode, kind=kind, nlines=len(lines), last=last[:300], warn=[l for l in lines if "warning" in l])
    print(f"{name:28} rc={p.returncode} {kind:10} {len(lines)}L {last[:230]}")
    for w in res[name]["warn"]:
        print(" " * 30, "W:", w[:200])
json.dump(res, open(D.parent / (D.name + ".json"), "w"), indent=1)
print(sum(r["kind"] == "clean" for r in res.values()), "clean,", sum(r["kind"] == "BAD" for r in res.values()), "bad,",
      sum(r["kind"] == "OK-trained" for r in res.values()), "trained, of", len(res))
