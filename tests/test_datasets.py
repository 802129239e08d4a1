"""xpnet.data.datasets: IDX reading and validation, finding and downloading (against a local HTTP server), digits,
.npz / .csv readers, and the real MNIST files when ../shared/data/mnist holds them. Never touches the network."""
import functools
import gzip
import hashlib
import http.server
import pickle
import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from xpnet.data import datasets
from xpnet.data.datasets import DataError

MNIST_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


def idx_bytes(arr: np.ndarray) -> bytes:
    arr = np.asarray(arr, dtype=np.uint8)
    return struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write(path: Path, data: bytes, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def fake_set(rng, n_train=7, n_test=3):
    """The four fake MNIST-like files' bytes (gzipped), 4x4 images."""
    arrays = (rng.integers(0, 256, (n_train, 4, 4)), rng.integers(0, 10, n_train),
              rng.integers(0, 256, (n_test, 4, 4)), rng.integers(0, 10, n_test))
    return {name: gzip.compress(idx_bytes(a)) for name, a in zip(datasets.FILES, arrays)}, arrays


# ------------------------------------------------------------------------------------------------- read_idx

@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, gz):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (5, 3, 4), dtype=np.uint8), rng.integers(0, 10, 5, dtype=np.uint8)
    ip = write(tmp_path / "images", idx_bytes(images), gz)
    lp = write(tmp_path / "labels", idx_bytes(labels), gz)
    got = datasets.read_idx(ip)
    assert got.dtype == np.uint8 and got.shape == (5, 3, 4)
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(datasets.read_idx(lp), labels)
    X, y = datasets.load_idx_pair(ip, lp)
    assert X.shape == (5, 12) and y.shape == (5,)
    np.testing.assert_array_equal(X, images.reshape(5, -1))


def test_gzip_detected_by_magic_not_name(tmp_path):
    labels = np.arange(6, dtype=np.uint8)
    np.testing.assert_array_equal(datasets.read_idx(write(tmp_path / "plain.gz", idx_bytes(labels))), labels)
    np.testing.assert_array_equal(datasets.read_idx(write(tmp_path / "labels", idx_bytes(labels), gz=True)), labels)


def test_general_idx_form_and_types(tmp_path):
    cube = np.arange(24, dtype=np.uint8).reshape(2, 3, 2, 2)
    np.testing.assert_array_equal(datasets.read_idx(write(tmp_path / "4d", idx_bytes(cube))), cube)
    floats = b"\x00\x00\x0d\x01" + struct.pack(">I", 2) + np.zeros(2, ">f4").tobytes()
    with pytest.raises(DataError, match=r"0x0d \(float32\).*not supported"):
        datasets.read_idx(write(tmp_path / "floats", floats))


@pytest.mark.parametrize("gz", [False, True])
def test_wrong_magic(tmp_path, gz):
    path = write(tmp_path / "page.html", b"<html>404 Not Found</html>" * 4, gz)
    with pytest.raises(DataError, match=r"page\.html.*not an IDX file"):
        datasets.read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated(tmp_path, gz):
    data = idx_bytes(np.ones((4, 5, 5)))
    path = write(tmp_path / "short", data[:-10], gz)
    with pytest.raises(DataError, match=r"short.*truncated.*needs 100 data bytes, found 90"):
        datasets.read_idx(path)
    with pytest.raises(DataError, match="truncated"):
        datasets.read_idx(write(tmp_path / "header", data[:7], gz))


@pytest.mark.parametrize("gz", [False, True])
def test_trailing_bytes(tmp_path, gz):
    path = write(tmp_path / "long", idx_bytes(np.ones(10)) + b"\x00" * 3, gz)
    with pytest.raises(DataError, match=r"long.*3 bytes after the data.*needs 10 data bytes, found 13"):
        datasets.read_idx(path)


def test_corrupt_gzip(tmp_path):
    good = gzip.compress(idx_bytes(np.ones((50, 28, 28))))
    cut = write(tmp_path / "cut.gz", good[: len(good) // 2])
    with pytest.raises(DataError, match=r"cut\.gz.*corrupt"):
        datasets.read_idx(cut)
    garbage = write(tmp_path / "garbage.gz", b"\x1f\x8b" + bytes(range(200)))
    with pytest.raises(DataError, match=r"garbage\.gz.*corrupt"):
        datasets.read_idx(garbage)
    flipped = bytearray(good)
    flipped[-6] ^= 0xFF  # CRC / size trailer
    with pytest.raises(DataError, match=r"crc\.gz.*corrupt"):
        datasets.read_idx(write(tmp_path / "crc.gz", bytes(flipped)))


@pytest.mark.parametrize("gz", [False, True])
def test_huge_declared_size_fails_fast(tmp_path, gz):
    header = b"\x00\x00\x08\x03" + struct.pack(">III", 10_000, 10_000, 10_000)  # 10**12 bytes declared
    path = write(tmp_path / "huge", header + bytes(100 - len(header)), gz)
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"huge.*needs 1000000000000 data bytes, found 84"):
        datasets.read_idx(path)
    assert time.perf_counter() - start < 1.0


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nothere.*no such file"):
        datasets.read_idx(tmp_path / "nothere")


def test_load_idx_pair_mismatch(tmp_path):
    ip = write(tmp_path / "imgs", idx_bytes(np.zeros((5, 2, 2))))
    lp = write(tmp_path / "labs", idx_bytes(np.zeros(4)))
    with pytest.raises(DataError, match=r"imgs holds 5 images but .*labs holds 4 labels"):
        datasets.load_idx_pair(ip, lp)
    with pytest.raises(DataError, match="swap"):
        datasets.load_idx_pair(lp, ip)


# ---------------------------------------------------------------------------------- locating the data files

def test_default_data_dir():
    assert datasets.default_data_dir({"XPNET_DATA": "/d", "XDG_CACHE_HOME": "/c"}) == Path("/d")
    assert datasets.default_data_dir({"XDG_CACHE_HOME": "/c", "HOME": "/h"}) == Path("/c/xpnet")
    assert datasets.default_data_dir({"HOME": "/h"}) == Path("/h/.cache/xpnet")


def test_default_data_dir_reads_environment_at_call_time(monkeypatch, tmp_path):
    monkeypatch.setenv("XPNET_DATA", str(tmp_path))
    assert datasets.default_data_dir() == tmp_path


@pytest.mark.parametrize("sub", ["", "mnist"])
def test_find_files(tmp_path, sub):
    folder = tmp_path / sub
    folder.mkdir(exist_ok=True)
    assert datasets.find_files("mnist", tmp_path) is None
    for i, name in enumerate(datasets.FILES):
        (folder / (name if i % 2 else name[:-3])).write_bytes(b"x")  # half gzipped, half not
    found = datasets.find_files("mnist", tmp_path)
    assert set(found) == set(datasets.FILES)
    assert all(p.parent == folder and p.name.startswith(n[:-3]) for n, p in found.items())
    assert datasets.find_files("fashion-mnist", tmp_path) == (found if sub == "" else None)


def test_find_files_needs_all_four_in_one_place(tmp_path):
    (tmp_path / "mnist").mkdir()
    for i, name in enumerate(datasets.FILES):
        (tmp_path / ("mnist" if i else "") / name).write_bytes(b"x")
    assert datasets.find_files("mnist", tmp_path) is None


def test_unknown_dataset(tmp_path):
    with pytest.raises(DataError, match="mnist, fashion-mnist"):
        datasets.load_mnist("cifar", data_dir=tmp_path)


def test_load_mnist_local_without_download(tmp_path):
    blobs, arrays = fake_set(np.random.default_rng(1))
    for name, blob in blobs.items():
        (tmp_path / name).write_bytes(blob)
    X, y, Xt, yt = datasets.load_mnist(data_dir=tmp_path, download=False)
    assert X.shape == (7, 16) and Xt.shape == (3, 16) and X.dtype == y.dtype == np.uint8
    np.testing.assert_array_equal(yt, arrays[3])


def test_load_mnist_missing_without_download(tmp_path):
    with pytest.raises(DataError) as err:
        datasets.load_mnist("fashion-mnist", data_dir=tmp_path, download=False)
    msg = str(err.value)
    assert all(n in msg for n in datasets.FILES) and str(tmp_path / "fashion-mnist") in msg
    assert "--data-dir" in msg and "XPNET_DATA" in msg


# --------------------------------------------------------------------------------- download (local server)

class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/short/"):  # announces more bytes than it sends, then hangs up
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"partial data")
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path, monkeypatch):
    """(base url, served folder): good/ holds the fake files, bad/ the same names with other bytes."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "served"
    (root / "good").mkdir(parents=True)
    (root / "bad").mkdir()
    blobs, arrays = fake_set(np.random.default_rng(2))
    for name, blob in blobs.items():
        (root / "good" / name).write_bytes(blob)
        (root / "bad" / name).write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    monkeypatch.setitem(datasets.SHA256, "mnist", {n: hashlib.sha256(b).hexdigest() for n, b in blobs.items()})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", arrays
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def dead_mirror():
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def names_in(folder: Path) -> set:
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def test_download_bad_checksum_then_good(tmp_path, server, dead_mirror):
    base, arrays = server
    data = tmp_path / "data"
    mirrors = [dead_mirror, base + "missing/", base + "short/", base + "bad/", base + "good"]
    paths = datasets.download("mnist", data, mirrors=mirrors, timeout=5)
    assert paths == {n: data / "mnist" / n for n in datasets.FILES}
    assert names_in(data / "mnist") == set(datasets.FILES)  # no temporary files left
    for name, path in paths.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == datasets.SHA256["mnist"][name]
    X, y, Xt, yt = datasets.load_mnist(data_dir=data, download=False)
    np.testing.assert_array_equal(X, arrays[0].reshape(7, -1))
    np.testing.assert_array_equal(yt, arrays[3])


def test_load_mnist_downloads_when_missing(tmp_path, server):
    base, arrays = server
    X, y, Xt, yt = datasets.load_mnist(data_dir=tmp_path, mirrors=[base + "good/"])
    assert X.shape == (7, 16) and Xt.shape == (3, 16)
    assert datasets.find_files("mnist", tmp_path) is not None


def test_download_wrong_checksum_everywhere(tmp_path, server):
    base, _ = server
    with pytest.raises(DataError) as err:
        datasets.download("mnist", tmp_path, mirrors=[base + "bad/"], timeout=5)
    msg, name = str(err.value), datasets.FILES[0]
    assert name in msg and datasets.SHA256["mnist"][name] in msg and "wrong checksum" in msg
    bad_sha = hashlib.sha256((tmp_path / "served" / "bad" / name).read_bytes()).hexdigest()
    assert bad_sha in msg
    assert names_in(tmp_path / "mnist") == set()


def test_download_all_mirrors_fail(tmp_path, server, dead_mirror):
    base, _ = server
    with pytest.raises(DataError) as err:
        datasets.download("mnist", tmp_path / "d", mirrors=[dead_mirror, base + "missing/", base + "short/"],
                          timeout=5)
    msg = str(err.value)
    assert all(n in msg for n in datasets.FILES)
    assert str(tmp_path / "d" / "mnist") in msg and "--data-dir" in msg and "XPNET_DATA" in msg
    assert "404" in msg and "after 12 of 1000 bytes" in msg
    assert names_in(tmp_path / "d" / "mnist") == set()


def test_download_keeps_verified_files_and_never_leaves_bad_ones(tmp_path, server):
    base, _ = server
    folder = tmp_path / "mnist"
    folder.mkdir()
    first = datasets.FILES[0]
    (folder / first).write_bytes((tmp_path / "served" / "good" / first).read_bytes())
    with pytest.raises(DataError, match=datasets.FILES[1]):
        datasets.download("mnist", tmp_path, mirrors=[base + "bad/"], timeout=5)
    assert names_in(folder) == {first}  # the verified file stays, nothing else is written


# --------------------------------------------------------------------------------------------------- digits

def test_load_digits():
    X, y, Xt, yt = datasets.load_digits()
    assert X.shape == (1438, 64) and Xt.shape == (359, 64) and y.shape == (1438,) and yt.shape == (359,)
    assert X.dtype == np.float64 and y.dtype == np.int64
    assert X.min() == 0 and X.max() == 16 and set(np.unique(y)) == set(range(10))
    again = datasets.load_digits()
    for a, b in zip((X, y, Xt, yt), again):
        np.testing.assert_array_equal(a, b)
    other = datasets.load_digits(seed=1)
    assert not np.array_equal(yt, other[3])
    assert datasets.load_digits(test_fraction=0.5)[2].shape == (898, 64)
    with pytest.raises(DataError, match="between 0 and 1"):
        datasets.load_digits(test_fraction=1.0)


# --------------------------------------------------------------------------------------- npz / csv readers

def test_npz(tmp_path):
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(6, 3)), rng.integers(0, 2, 6)
    np.savez(tmp_path / "a.npz", X=X, y=y)
    Xa, ya, Xt, yt = datasets.load_array_file(tmp_path / "a.npz")
    np.testing.assert_array_equal(Xa, X)
    np.testing.assert_array_equal(ya, y)
    assert Xt is None and yt is None
    np.savez(tmp_path / "b.npz", X=X, y=y, X_test=X[:2], y_test=y[:2])
    assert datasets.load_array_file(tmp_path / "b.npz")[2].shape == (2, 3)


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "keys.npz", features=np.zeros((2, 2)), y=np.zeros(2))
    with pytest.raises(DataError, match=r"keys\.npz.*missing array\(s\) X.*found \['features', 'y'\]"):
        datasets.load_array_file(tmp_path / "keys.npz")
    np.savez(tmp_path / "len.npz", X=np.zeros((3, 2)), y=np.zeros(2))
    with pytest.raises(DataError, match="same number of samples"):
        datasets.load_array_file(tmp_path / "len.npz")
    np.savez(tmp_path / "half.npz", X=np.zeros((3, 2)), y=np.zeros(3), X_test=np.zeros((1, 2)))
    with pytest.raises(DataError, match="X_test without y_test"):
        datasets.load_array_file(tmp_path / "half.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match=r"junk\.npz"):
        datasets.load_array_file(tmp_path / "junk.npz")
    with pytest.raises(DataError, match="unsupported file type '.txt'"):
        datasets.load_array_file(write(tmp_path / "a.txt", b"1,2"))
    with pytest.raises(DataError, match="no such file"):
        datasets.load_array_file(tmp_path / "none.npz")


class _Boom:
    """Unpickling this would run code; the reader must refuse before that."""

    def __reduce__(self):
        return (print, ("unpickled!",))


def test_pickles_refused(tmp_path, capsys):
    np.savez(tmp_path / "obj.npz", X=np.array([_Boom(), 1], dtype=object), y=np.zeros(2))
    with pytest.raises(DataError, match=r"obj\.npz.*'X'.*pickled object array"):
        datasets.load_array_file(tmp_path / "obj.npz")
    (tmp_path / "raw.npz").write_bytes(pickle.dumps({"X": _Boom(), "y": 0}))
    with pytest.raises(DataError, match=r"raw\.npz.*not an \.npz archive"):
        datasets.load_array_file(tmp_path / "raw.npz")
    assert "unpickled!" not in capsys.readouterr().out


def test_csv(tmp_path):
    path = write(tmp_path / "d.csv", b"a,label,b\n1,0,2.5\n3,1,-4\n\n5,2,6e1\n")
    X, y, Xt, yt = datasets.load_array_file(path)
    np.testing.assert_array_equal(X, [[1, 2.5], [3, -4], [5, 60]])
    np.testing.assert_array_equal(y, [0, 1, 2])
    assert y.dtype == np.int64 and X.dtype == np.float64 and Xt is None and yt is None
    other = write(tmp_path / "t.csv", b"target,x\n0.5,1\n1.5,2\n")
    X, y, _, _ = datasets.load_array_file(other, label_column="target")
    assert y.dtype == np.float64 and X.shape == (2, 1)
    one_row = write(tmp_path / "one.csv", b"\xef\xbb\xbfx,label\n1,1\n")  # with a UTF-8 byte-order mark
    assert datasets.load_array_file(one_row)[0].shape == (1, 1)


def test_csv_errors(tmp_path):
    bad = write(tmp_path / "bad.csv", b"x,y,label\n1,2,0\n3,four,1\n")
    with pytest.raises(DataError, match=r"bad\.csv, line 3, column 'y': 'four' is not a number"):
        datasets.load_array_file(bad)
    ragged = write(tmp_path / "ragged.csv", b"x,label\n1,0\n2,1,3\n")
    with pytest.raises(DataError, match=r"ragged\.csv, line 3: 3 fields but the header has 2"):
        datasets.load_array_file(ragged)
    with pytest.raises(DataError, match=r"label column 'label' is not in the header; columns are \['x', 'y'\]"):
        datasets.load_array_file(write(tmp_path / "nolabel.csv", b"x,y\n1,2\n"))
    with pytest.raises(DataError, match="no data rows"):
        datasets.load_array_file(write(tmp_path / "empty.csv", b"x,label\n"))
    with pytest.raises(DataError, match="empty CSV"):
        datasets.load_array_file(write(tmp_path / "nothing.csv", b""))



CSV_LINES = [  # (text, message): each error names the line its row starts on in the file (issue 23)
    # a ragged row in a file whose labels are names: was "line 2, column 'species': 'setosa' is not a number"
    ("a,b,c,species\n" + "1,2,3,setosa\n" * 5 + "1,2,virginica\n1,2,3,setosa\n",
     r"line 7: 3 fields but the header has 4; each row needs one value per column"),
    ("a,species\n1,setosa\n2,virginica,3\n", r"line 3: 3 fields but the header has 2"),
    # blank lines count; a quoted cell that spans lines counts each of them (was: counted as one row)
    ("a,b,label\n1,2,0\n\n\n1,x,0\n", r"line 5, column 'b': 'x' is not a number"),
    ('a,b,label\n"1",2,0\n"2\n",3,1\n1,x,0\n', r"line 5, column 'b': 'x' is not a number"),
    ('a,b,label\n1,2,"ca\nt"\n1,x,dog\n', r"line 4, column 'b': 'x' is not a number"),
    ("a,b,label\r\n1,2,cat\r\n1,dog\r\n", r"line 3: 2 fields but the header has 3"),
    # a header whose quoted name spans two lines, and blank lines before the header (were: "empty CSV file")
    ('"a\nb",c,label\n1,2,0\n1,x,0\n', r"line 4, column 'c': 'x' is not a number"),
    ("\n\na,label\n1,0\n1,x\n2,1,1\n", r"line 6: 3 fields but the header has 2"),
    (",,\n1,2,0\n", r"line 1: the header row names no columns; expected a header row naming the columns"),
]


@pytest.mark.parametrize("text, message", CSV_LINES, ids=["ragged_names_row7", "ragged_names_long", "blank_lines",
                         "quoted_newline", "quoted_newline_names", "crlf_ragged_names", "header_quoted_newline",
                         "blank_before_header", "header_of_commas"])
def test_csv_errors_name_the_rows_own_line(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        datasets.load_array_file(write(tmp_path / "d.csv", text.encode()),
                                 label_column="species" if "species" in text else None)


def test_csv_blank_lines_before_the_header_are_skipped(tmp_path):
    X, y, _, _ = datasets.load_array_file(write(tmp_path / "d.csv", b"\n  \nx,label\n1,cat\n\n2,dog\n"))
    np.testing.assert_array_equal(X, [[1], [2]])
    assert y.tolist() == ["cat", "dog"]


def test_csv_cells_must_be_finite_numbers(tmp_path):
    """NaN, inf and numbers beyond float64 (1e400) are refused with their line and column; lines of spaces
    or commas are rows (numpy skips only empty lines), named as such rather than "could not parse"."""
    for text, message in ((b"a,label\n1,0\nnan,1\n", r"line 3, column 'a': 'nan' is not a finite number"),
                          (b"a,label\n1,inf\n", r"line 2, column 'label': 'inf' is not a finite number"),
                          (b"a,label\n1e400,0\n", r"line 2, column 'a': '1e400' is not a finite number"),
                          (b"a,label\n1,0\n,\n", r"line 3, column 'a': '' is not a number"),
                          (b"a,label\n1,0\n  \n", r"line 3: 1 fields but the header has 2")):
        with pytest.raises(DataError, match=message):
            datasets.load_array_file(write(tmp_path / "d.csv", text))


def test_csv_labels_beyond_2_53_stay_float(tmp_path):
    """astype(int64) wrapped 1e19 around to -2**63; labels that int64 cannot hold exactly stay float64."""
    _, y, _, _ = datasets.load_array_file(write(tmp_path / "d.csv", b"a,label\n1,1e19\n2,1\n"))
    assert y.dtype == np.float64 and y[0] == 1e19


def test_csv_without_header_says_so(tmp_path):
    with pytest.raises(DataError, match=r"columns are \['1', '2', '0'\].*is the header row missing\?"):
        datasets.load_array_file(write(tmp_path / "d.csv", b"1,2,0\n3,4,1\n"))


def test_npz_single_numbers(tmp_path):
    np.savez(tmp_path / "x0.npz", X=np.float64(1.0), y=np.array([0]))
    with pytest.raises(DataError, match=r"x0\.npz: X is a single number \(shape \(\)\); expected an array with one "
                                        r"row per sample"):
        datasets.load_array_file(tmp_path / "x0.npz")
    np.savez(tmp_path / "y0.npz", X=np.zeros((1, 2)), y=np.int64(0))
    with pytest.raises(DataError, match=r"y is a single number \(shape \(\)\); expected an array with one label"):
        datasets.load_array_file(tmp_path / "y0.npz")


# ------------------------------------------------------------------------------------------------ real MNIST

@pytest.mark.skipif(not (MNIST_DIR / datasets.FILES[0]).exists(), reason=f"real MNIST files not in {MNIST_DIR}")
def test_real_mnist():
    X, y, Xt, yt = datasets.load_mnist(data_dir=MNIST_DIR, download=False)
    assert X.shape == (60000, 784) and Xt.shape == (10000, 784) and X.dtype == np.uint8
    assert y.shape == (60000,) and yt.shape == (10000,)
    assert set(np.unique(y)) == set(range(10)) == set(np.unique(yt))
    for name in datasets.FILES:
        assert hashlib.sha256((MNIST_DIR / name).read_bytes()).hexdigest() == datasets.SHA256["mnist"][name]
