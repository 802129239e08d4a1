"""Image folders (issue 34, part 3): Fashion-MNIST written as PNG files in class folders decodes to the IDX
pixels, trains bit-identically to the arrays (in the folder's order), names the outputs after the folders, and
`xpnet predict` on the folder agrees with predict on the arrays; unreadable files are refused or skipped."""
import json
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet.data.datasets import load_mnist
from xpnet.data.images import ImageFolder, parse_size
from xpnet.errors import InputError
from xpnet.layers import Dense, ReLU

Image = pytest.importorskip("PIL.Image")
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
N = 300
#: Fashion-MNIST's classes as folder names (no "/"); sorted, they are not in label order
FOLDERS = ["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def write_class_folders(root: Path, X: np.ndarray, y: np.ndarray) -> list[int]:
    """Rows X (n, 784) uint8 as root/<class folder>/<row:05d>.png; returns the rows in the folder's order
    (class folders sorted by name, files by name)."""
    for i, (x, label) in enumerate(zip(X, y)):
        folder = root / FOLDERS[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x.reshape(28, 28), mode="L").save(folder / f"{i:05d}.png")
    rank = {name: k for k, name in enumerate(sorted(FOLDERS))}
    return sorted(range(len(y)), key=lambda i: (rank[FOLDERS[y[i]]], i))


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    if not (DATA / "fashion-mnist" / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"Fashion-MNIST files not found in {DATA / 'fashion-mnist'}")
    X, y, _, _ = load_mnist("fashion-mnist", DATA / "fashion-mnist")
    X, y = X[:N], y[:N]
    root = tmp_path_factory.mktemp("fashion") / "train"
    order = write_class_folders(root, X, y)
    return root, X, y, np.asarray(order)


def test_decoded_pixels_equal_the_idx_pixels(fashion):
    root, X, y, order = fashion
    ds = ImageFolder(root, size=(28, 28), color="gray")
    assert len(ds) == N and ds.class_names == sorted(FOLDERS) and ds.sample_shape == (1, 28, 28)
    xb, yb = ds.__getitems__(np.arange(N))
    assert xb.dtype == np.uint8 and xb.shape == (N, 1, 28, 28)
    np.testing.assert_array_equal(xb.reshape(N, 784), X[order])
    np.testing.assert_array_equal(np.asarray(ds.class_names)[yb], np.asarray(FOLDERS)[y[order]])
    rgb = ImageFolder(root, color="rgb").__getitems__([3])[0]  # gray files as RGB: three equal channels
    assert rgb.shape == (1, 3, 28, 28) and (rgb == xb[3:4]).all()
    assert ImageFolder(root, size="14x7").__getitems__([0])[0].shape == (1, 1, 14, 7)


def test_one_epoch_from_the_folder_equals_the_arrays(fashion):
    root, X, y, order = fashion
    names = np.asarray(sorted(FOLDERS))
    mapped = np.searchsorted(names, np.asarray(FOLDERS)[y[order]])  # each row's folder index

    def model():
        return xpnet.Sequential([Dense(784, 32), ReLU(), Dense(32, 10)], backend="numpy", dtype="float64", seed=5,
                                preprocessing="unit")

    arrays = model().fit(X[order], mapped, classes=10, epochs=1, batch_size=32)
    folder = model().fit(ImageFolder(root, size=(28, 28)), None, epochs=1, batch_size=32)
    for k, v in arrays.state.params.items():
        np.testing.assert_array_equal(np.asarray(v), np.asarray(folder.state.params[k]), err_msg=k)
    assert folder.class_names_ == list(names)  # the folders name the outputs, saved with the model
    again = xpnet.load(folder.save(root.parent / "m.safetensors"), backend="numpy")
    assert again.class_names_ == list(names)


def test_predict_on_a_folder_of_pngs_agrees_with_the_arrays(fashion, tmp_path, capsys):
    from xpnet.cli import main
    root, X, y, order = fashion
    model = xpnet.Sequential([Dense(784, 10)], backend="numpy", seed=1, preprocessing="unit")
    model.fit(ImageFolder(root), None, epochs=1)
    ck = model.save(tmp_path / "m.safetensors")
    np.save(tmp_path / "x.npy", X[order])
    main(["predict", "--checkpoint", str(ck), "--backend", "numpy", "--json", "--quiet", "--invert", "no",
          str(root)])
    from_pngs = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    main(["predict", "--checkpoint", str(ck), "--backend", "numpy", "--json", "--quiet", str(tmp_path / "x.npy")])
    from_arrays = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert from_pngs["predictions"] == from_arrays["predictions"] == model.predict(X[order]).tolist()
    assert from_pngs["probabilities"] == from_arrays["probabilities"]
    assert [r["file"] for r in from_pngs["rows"]] == [str(ImageFolder(root).files[i]) for i in range(N)]


def test_unreadable_files_refused_in_one_line_or_skipped(tmp_path):
    for k, name in enumerate(["a", "b"]):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.fromarray(np.full((8, 8), 40 * i + k, np.uint8)).save(tmp_path / name / f"{i}.png")
    (tmp_path / "a" / "broken.png").write_bytes(b"not an image")
    good = (tmp_path / "b" / "0.png").read_bytes()
    (tmp_path / "b" / "cut.png").write_bytes(good[:len(good) - 20])  # header intact, the end cut off
    (tmp_path / "b" / "notes.txt").write_text("not listed: not an image suffix")
    with pytest.raises(InputError, match=r"broken.png and 1 more: not a readable image .*--skip-bad-images") as info:
        ImageFolder(tmp_path)
    assert "\n" not in str(info.value)
    ds = ImageFolder(tmp_path, skip_bad=True)
    assert len(ds) == 6 and sorted(Path(p).name for p in ds.skipped) == ["broken.png", "cut.png"]
    assert ds.__getitems__([0, 5])[1].tolist() == [0, 1]
    with pytest.raises(InputError, match="no class subfolders"):
        ImageFolder(tmp_path / "a")
    with pytest.raises(InputError, match="HEIGHTxWIDTH"):
        parse_size("28by28")


def test_cli_trains_and_evaluates_on_an_image_folder(fashion, tmp_path, capsys):
    from xpnet.cli import main
    root, X, y, order = fashion
    ck = tmp_path / "f.safetensors"
    args = ["train", "--dataset", root, "--image-size", "28x28", "--color", "gray", "--hidden", "16", "--epochs", 1,
            "--checkpoint", ck, "--backend", "numpy", "--json", "--quiet"]
    assert main(list(map(str, args))) == 0
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    model = xpnet.load(ck, backend="numpy")
    assert model.class_names_ == sorted(FOLDERS) and model.input_shape == (784,)
    assert model.checkpoint_meta_["cli"]["image_size"] == "28x28" and model.checkpoint_meta_["cli"]["inputs"] == "images"
    assert main(["evaluate", "--checkpoint", str(ck), "--backend", "numpy", "--json", "--quiet"]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluated["accuracy"] == trained["train_accuracy"] and evaluated["class_names"] == sorted(FOLDERS)
    truth = np.searchsorted(sorted(FOLDERS), np.asarray(FOLDERS)[y[order]])
    assert evaluated["accuracy"] == np.mean(model.predict(X[order]) == truth)
    assert main(["evaluate", "--checkpoint", str(ck), "--backend", "numpy", "--json", "--quiet", "--dataset",
                 str(root)]) == 0  # named again: read with the run's size and color
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["accuracy"] == evaluated["accuracy"]
    bad = tmp_path / "bad"
    for name in ("a", "b"):
        (bad / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(X[i].reshape(28, 28)).save(bad / name / f"{i}.png")
    (bad / "b" / "x.png").write_bytes(b"oops")
    assert main(["train", "--dataset", str(bad), "--epochs", "1", "--backend", "numpy", "--quiet"]) == 2
    assert "x.png: not a readable image" in capsys.readouterr().err
    rgb = tmp_path / "rgb.safetensors"
    assert main(["train", "--dataset", str(bad), "--epochs", "1", "--backend", "numpy", "--quiet", "--hidden", "8",
                 "--skip-bad-images", "--color", "rgb", "--image-size", "14x7", "--checkpoint", str(rgb)]) == 0
    assert "skipped 1 unreadable image file(s)" in capsys.readouterr().out
    # predict reads an image as the run read its folder (recorded size and color), for a flat model too
    assert main(["predict", "--checkpoint", str(rgb), "--backend", "numpy", "--json", "--quiet", "--invert", "no",
                 str(bad / "a")]) == 0
    predicted = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["predictions"]
    model = xpnet.load(rgb, backend="numpy")
    rows = ImageFolder(bad, size=(14, 7), color="rgb", skip_bad=True).__getitems__(np.arange(4))[0]
    assert model.input_shape == (294,) and predicted == model.predict(rows.reshape(4, -1)).tolist()


def test_predict_decodes_images_batch_by_batch_and_reads_ahead_with_prefetch(fashion, tmp_path, monkeypatch,
                                                                             capsys):
    """`xpnet predict FOLDER/` checks the images' headers first and decodes each when its batch is predicted
    (never all of them at once); --prefetch 2 decodes ahead in threads: the same outputs."""
    from xpnet.cli import main
    from xpnet.data import predict_inputs
    root, X, y, order = fashion
    model = xpnet.Sequential([Dense(784, 10)], backend="numpy", seed=1, preprocessing="unit")
    model.fit(ImageFolder(root), None, epochs=1)
    ck = model.save(tmp_path / "m.safetensors")
    decoded, real = [], predict_inputs._decode_image
    monkeypatch.setattr(predict_inputs, "_decode_image", lambda *a: decoded.append(a[0]) or real(*a))
    inputs, _ = predict_inputs.read_inputs([root], model.input_shape, "no")
    assert decoded == [] and len(inputs) == N and inputs.sample_shape == (784,)
    first = inputs.__getitems__(range(5))[0]
    assert decoded == [str(ImageFolder(root).files[i]) for i in range(5)]
    np.testing.assert_array_equal(first, X[order][:5].reshape(5, 784).astype(np.float64))
    outs = []
    for flag in ("0", "2"):
        main(["predict", "--checkpoint", str(ck), "--backend", "numpy", "--json", "--quiet", "--invert", "no",
              "--prefetch", flag, str(root)])
        outs.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    assert outs[0] == outs[1] and outs[0]["predictions"] == model.predict(X[order]).tolist()
    assert main(["predict", "--checkpoint", str(ck), "--prefetch", "-2", str(root)]) == 2
    assert "--prefetch -2: must be" in capsys.readouterr().err
