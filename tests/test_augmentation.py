"""Augmentation layers (issue 34, part 4): RandomCrop and RandomFlip on NCHW images, per sample, while training only.

Oracles: a loop over the samples (zero-pad, crop at the offset, flip) for the forward, and the loop's adjoint
(each kept pixel of dy put back where it came from) for backward. Same seed -> the same augmented batches bit for
bit on every CPU backend (float64) and parameters within the parity tolerance after training steps; compiled steps
(jax.jit, torch.compile) against eager; resume inside an epoch bit-identical on NumPy; a data-parallel shard's
rows are the full batch's; ONNX as the identity; `xpnet train --augment`."""
import json

import numpy as np
import pytest

import xpnet
from fakes import run_cli
from xpnet.errors import InputError
from xpnet.layers import Conv2D, Dense, Flatten, RandomCrop, RandomFlip, ReLU
from xpnet.models.presets import DEFAULTS, PRESETS, augment_layers, canonical_augment, model_spec
from xpnet.parity import TOLERANCES, rel_diff
from xpnet.tools.testing import _skip_reason


def cpu_backends():
    return [name for name in ("numpy", "array_api_strict", "torch", "jax") if _skip_reason(name, "cpu") is None]


def crop_offsets(u, padding):
    """The top-left corner in the padded image of each sample's crop, as RandomCrop documents it."""
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return [(min(int(np.floor(a * (2 * ph + 1))), 2 * ph), min(int(np.floor(b * (2 * pw + 1))), 2 * pw))
            for a, b in u]


def loop_crop(x, u, padding):
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    n, c, h, w = x.shape
    out = np.empty_like(x)
    for k, (oy, ox) in enumerate(crop_offsets(u, padding)):
        padded = np.zeros((c, h + 2 * ph, w + 2 * pw))
        padded[:, ph:ph + h, pw:pw + w] = x[k]
        out[k] = padded[:, oy:oy + h, ox:ox + w]
    return out


def loop_crop_adjoint(dy, u, padding):
    """dx of the crop: dy pasted into a zero padded image at the crop's offset, the padding cut away."""
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    n, c, h, w = dy.shape
    dx = np.empty_like(dy)
    for k, (oy, ox) in enumerate(crop_offsets(u, padding)):
        padded = np.zeros((c, h + 2 * ph, w + 2 * pw))
        padded[:, oy:oy + h, ox:ox + w] = dy[k]
        dx[k] = padded[:, ph:ph + h, pw:pw + w]
    return dx


def loop_flip(x, u, p):
    return np.stack([x[k, :, :, ::-1] if u[k, 0] < p else x[k] for k in range(len(x))])


@pytest.mark.parametrize("padding, shape", [(2, (2, 5, 6)), ((1, 3), (1, 4, 7)), (4, (1, 28, 28))])
def test_forward_and_backward_against_loops_on_every_backend(xpnet_backend, padding, shape):
    """Bit for bit in float64 on every backend: the loops are NumPy, so every backend gives the same bits."""
    bk, rng = xpnet_backend, np.random.default_rng(1)
    f64 = bk.dtype("float64")
    n = 9
    x, dy = rng.standard_normal((n, *shape)), rng.standard_normal((n, *shape))
    uc, uf = rng.random((n, 2)), rng.random((n, 1))
    uc[0] = [0.0, 1 - 1e-17]  # the extreme offsets (1 - 1e-17 rounds to 1.0: clamped to the last offset)
    crop, flip = RandomCrop(padding), RandomFlip(0.5)
    crop.build(shape), flip.build(shape)
    put = lambda a: bk.asarray(a, dtype=f64)  # noqa: E731
    y, back = crop.forward({}, put(x), training=True, noise=put(uc))
    np.testing.assert_array_equal(bk.to_numpy(y), loop_crop(x, uc, padding))
    np.testing.assert_array_equal(bk.to_numpy(back(put(dy))[0]), loop_crop_adjoint(dy, uc, padding))
    y, back = flip.forward({}, put(x), training=True, noise=put(uf))
    np.testing.assert_array_equal(bk.to_numpy(y), loop_flip(x, uf, 0.5))
    np.testing.assert_array_equal(bk.to_numpy(back(put(dy))[0]), loop_flip(dy, uf, 0.5))
    # adjoint: <crop(x), dy> = <x, crop^T(dy)>
    assert np.vdot(loop_crop(x, uc, padding), dy) == pytest.approx(np.vdot(x, loop_crop_adjoint(dy, uc, padding)))


def test_identity_when_not_training_and_noise_needed_while_training():
    x = np.arange(2 * 1 * 3 * 4, dtype=np.float64).reshape(2, 1, 3, 4)
    for layer in (RandomCrop(1), RandomFlip()):
        layer.build((1, 3, 4))
        y, back = layer.forward({}, x, training=False)
        assert y is x and back(x)[0] is x
        with pytest.raises(InputError, match="needs its U\\[0, 1\\) draws while training"):
            layer.forward({}, x, training=True)
    assert RandomFlip(0.0).noise_shape(4) is None and RandomCrop(2).build((3, 5, 5)) == (3, 5, 5)
    flip = RandomFlip(1.0)
    flip.build((1, 3, 4))
    assert np.array_equal(flip.forward({}, x, True, noise=np.full((2, 1), 0.999))[0], x[..., ::-1])


@pytest.mark.parametrize("make, shape, match", [
    (lambda: RandomCrop(0), None, r"RandomCrop\(padding=0\): must be a positive integer"),
    (lambda: RandomCrop([1, 2, 3]), None, r"give an int, a pair \(height, width\)"),
    (lambda: RandomFlip(1.5), None, r"RandomFlip\(p=1.5\): must be a number in \[0, 1\]"),
    (lambda: RandomCrop(4), (784,), r"RandomCrop takes images \(channels, height, width\), got input of shape"),
    (lambda: RandomFlip(), (8, 8), r"RandomFlip takes images"),
    (lambda: RandomCrop(8), (1, 8, 8), r"on 8x8 images: a crop could hold no pixel"),
])
def test_bad_arguments_are_refused_in_one_line(make, shape, match):
    with pytest.raises(InputError, match=match) as info:
        make().build(shape)
    assert "\n" not in str(info.value)


def model(backend, dtype="float64", seed=3, **kw):
    return xpnet.Sequential([RandomCrop(2), RandomFlip(), Conv2D(1, 3, 3), ReLU(), Flatten(), Dense(3 * 6 * 6, 4)],
                            input_shape=(1, 8, 8), optimizer=xpnet.Adam(0.01), backend=backend, dtype=dtype,
                            seed=seed, **kw)


def images(n=48, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, 1, 8, 8))
    return X, (X[:, 0, :4].sum(axis=(1, 2)) > X[:, 0, 4:].sum(axis=(1, 2))).astype(int) + 2 * (X[:, 0, 0, 0] > 0.5)


def augmented(m, X):
    """The batch the model's training forward sees after its two augmentation layers, from its own noise."""
    noise = m.draw_noise(len(X))
    x = m.cast(m.bk.asarray(X))
    for i in (0, 1):
        x, _ = m.layers[i].forward({}, x, training=True, noise=noise[i])
    return m.bk.to_numpy(x)


def test_same_seed_same_augmented_batches_and_steps_on_every_cpu_backend():
    X, y = images()
    ref_batch, ref_model = None, None
    for name in cpu_backends():
        batch = augmented(model(name), X)
        trained = model(name).fit(X, y, epochs=2, batch_size=16)
        if ref_batch is None:
            ref_batch, ref_model = batch, trained
            assert not np.array_equal(batch, X)
            continue
        np.testing.assert_array_equal(batch, ref_batch, err_msg=name)
        worst = max(rel_diff(xpnet.to_numpy(v), xpnet.to_numpy(ref_model.parameters()[k]))[1]
                    for k, v in trained.parameters().items())
        assert worst <= TOLERANCES["float64"], (name, worst)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_compiled_step_equals_eager(backend):
    pytest.importorskip(backend)
    X, y = images(32)
    eager = model(backend).fit(X, y, epochs=1, batch_size=16)
    if backend == "torch":
        import torch
        counters = torch._dynamo.utils.counters
        counters.clear()
    compiled = model(backend, compile=True).fit(X, y, epochs=1, batch_size=16)
    if backend == "jax":
        assert compiled.compile_traces_ == 1, compiled.compile_traces_
    else:
        # one frame, one graph, no graph break; late in a full test session torch's backend has been seen to
        # compile that one graph twice (unique_graphs 1, aot_autograd total 2: CI, and tests/test_sequence_compile.py)
        seen = {k: dict(v) for k, v in counters.items()}
        assert seen["frames"]["total"] == 1 and seen["stats"]["unique_graphs"] == 1, seen
        assert not seen.get("graph_break"), seen
        assert compiled.compile_traces_ in (1, 2), seen
    worst = {k: rel_diff(xpnet.to_numpy(v), xpnet.to_numpy(eager.parameters()[k]))[1]
             for k, v in compiled.parameters().items()}
    assert max(worst.values()) <= TOLERANCES["float64"], worst


def test_resume_inside_an_epoch_is_bit_identical(tmp_path):
    X, y = images(64)
    full = model("numpy").fit(X, y, epochs=3, batch_size=16)

    class Stop:
        k = 0

        def on_batch_end(self, m, step, total):
            self.k += 1
            m.stop_requested = self.k == 6  # the second step of epoch 2

    part = model("numpy")
    with pytest.raises(xpnet.TrainingInterrupted):
        part.fit(X, y, epochs=3, batch_size=16, callbacks=[Stop()])
    resumed = xpnet.load(part.save(tmp_path / "part.safetensors"))
    assert [type(layer).__name__ for layer in resumed.layers[:2]] == ["RandomCrop", "RandomFlip"]
    resumed.fit(X, y, epochs=3, batch_size=16, resume=True)
    for k, v in full.parameters().items():
        np.testing.assert_array_equal(resumed.parameters()[k], v)
    assert resumed.history_["loss"] == full.history_["loss"]


def test_a_data_parallel_shard_sees_the_rows_of_the_global_batch():
    """DataParallel draws the global minibatch's noise and gives rank r rows [a, b) of each array: the
    augmentation of a shard is then the shard of the global batch's augmentation."""
    from xpnet.training.batches import shard
    X, _ = images(10)
    m = model("numpy")
    noise = m.draw_noise(10)
    whole = X
    for i in (0, 1):
        whole, _ = m.layers[i].forward({}, whole, True, noise=noise[i])
    for rank in range(3):
        a, b = shard(10, rank, 3)
        part = X[a:b]
        for i in (0, 1):
            part, _ = m.layers[i].forward({}, part, True, noise=noise[i][a:b, ...])
        np.testing.assert_array_equal(part, whole[a:b])


def test_the_layer_after_them_computes_no_input_gradient(monkeypatch):
    """No layer with parameters comes before the convolution, so its dx is never asked for (need_dx=False)."""
    seen = []
    forward = Conv2D.forward

    def spy(self, params, x, training=False, need_dx=True, *args, **kw):
        seen.append(need_dx)
        return forward(self, params, x, training, need_dx, *args, **kw)

    monkeypatch.setattr(Conv2D, "forward", spy)
    X, y = images(16)
    model("numpy").fit(X, y, epochs=1, batch_size=16)
    assert seen == [False]


def test_summary_lists_them_and_counts_nothing_for_them():
    with_aug, plain = model("numpy"), xpnet.Sequential(model("numpy").layers[2:], input_shape=(1, 8, 8))
    s, p = with_aug.summary(show=False), plain.summary(show=False)
    assert [r.type for r in s.rows[:2]] == ["RandomCrop", "RandomFlip"]
    assert [(r.output_shape, r.params, r.flops_forward) for r in s.rows[:2]] == [((1, 8, 8), 0, 0)] * 2
    assert (s.params, s.flops_forward, s.flops_training) == (p.params, p.flops_forward, p.flops_training)
    assert "RandomCrop" in str(s)


def test_onnx_exports_them_as_the_identity(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("ndonnx")
    import onnxruntime as ort
    from xpnet.export.onnx import export
    X, y = images(32)
    m = model("numpy", dtype="float32").fit(X, y, epochs=1, batch_size=16)
    path = tmp_path / "aug.onnx"
    export(m, str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": X.astype(np.float32)})))
    np.testing.assert_allclose(out["probabilities"], m.predict_proba(X), rtol=1e-5, atol=1e-6)


def test_augment_setting_builds_the_layers_first_in_image_presets():
    assert canonical_augment("flip, crop") == "flip=0.5,crop=4"
    assert augment_layers("crop=2,flip=0.25") == [{"class": "RandomCrop", "config": {"padding": 2}},
                                                  {"class": "RandomFlip", "config": {"p": 0.25}}]
    for preset in ("fashion-cnn", "resnet-fashion"):
        cfg = dict(DEFAULTS, **PRESETS[preset].settings) | {"augment": "crop=4,flip=0.5"}
        spec = model_spec(784, 10, cfg)
        plain = model_spec(784, 10, dict(cfg, augment=None))
        assert spec["config"]["layers"][2:] == plain["config"]["layers"]
        assert [layer["class"] for layer in spec["config"]["layers"][:2]] == ["RandomCrop", "RandomFlip"]
        assert model_spec(784, 10, dict(cfg, augment="none")) == plain
    # resnet-fashion augments by default (crop=2,flip: docs/blocks.md); --augment none turns it off
    augment = PRESETS["resnet-fashion"].settings["augment"]  # canonical, as a flag's value is recorded
    assert augment == canonical_augment(augment) == "crop=2,flip=0.5" and canonical_augment(" None") == "none"
    assert augment_layers("none") == []
    with pytest.raises(InputError, match=r"--augment flip=0.5: augments images .* this model takes flat rows; use it "
                                         r"with an image model \(--preset lenet5, fashion-cnn, resnet-fashion"):
        model_spec(64, 10, dict(DEFAULTS, augment="flip=0.5"))
    for bad, match in [("rotate", "unknown augmentation 'rotate'"), ("flip,flip", "twice augmentation 'flip'"),
                       ("crop=x", "crop=x needs a whole number"), ("crop=0", "must be a positive integer"),
                       ("flip=2", r"must be a number in \[0, 1\]")]:
        with pytest.raises(InputError, match=match):
            augment_layers(bad)


@pytest.fixture(scope="module")
def digits_images(tmp_path_factory):
    from xpnet.data.datasets import load_digits
    X, y, Xt, yt = load_digits()
    folder = tmp_path_factory.mktemp("aug")
    np.savez(folder / "digits.npz", X=X.reshape(-1, 8, 8), y=y, X_test=Xt.reshape(-1, 8, 8), y_test=yt)
    (folder / "tiny.json").write_text(json.dumps({"class": "Sequential", "config": {"layers": [
        {"class": "Conv2D", "config": {"in_channels": 1, "out_channels": 4, "kernel_size": 3, "padding": 1}},
        {"class": "relu", "config": {}}, {"class": "Flatten", "config": {}},
        {"class": "Dense", "config": {"in_features": 256, "out_features": 10}}],
        "optimizer": {"class": "adam", "config": {"lr": 0.01}}}}))
    return folder


def test_cli_train_augment_records_the_layers_and_evaluate_predict_ignore_them(digits_images, tmp_path):
    ck = tmp_path / "aug.safetensors"
    rc, out, err = run_cli("train", "--model", digits_images / "tiny.json", "--dataset", digits_images / "digits.npz",
                           "--augment", "crop=1,flip", "--epochs", "2", "--batch-size", "64", "--checkpoint", ck,
                           "--quiet", "--json")
    assert rc == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    m = xpnet.load(ck)
    assert [type(layer).__name__ for layer in m.layers[:2]] == ["RandomCrop", "RandomFlip"]
    assert m.checkpoint_meta_["cli"]["augment"] == "crop=1,flip=0.5"
    rc, out, err = run_cli("evaluate", "--checkpoint", ck, "--json")
    assert rc == 0 and json.loads(out.strip().splitlines()[-1])["accuracy"] == pytest.approx(result["test_accuracy"])
    rc, _, err = run_cli("train", "--resume", ck, "--augment", "flip", "--epochs", "3")
    assert rc != 0 and "--augment flip=0.5 differs from the checkpoint's augment crop=1,flip=0.5" in err
    rc, _, err = run_cli("train", "--augment", "flip", "--epochs", "1")  # the digits MLP: flat rows
    assert rc != 0 and "augments images" in err and len(err.strip().splitlines()) == 1
    rc, _, err = run_cli("train", "--augment", "none", "--epochs", "1", "--quiet")  # nothing to turn off: no error
    assert rc == 0, err
    rc, _, err = run_cli("train", "--augment", "zoom", "--epochs", "1")
    assert rc == 2 and "unknown augmentation 'zoom'" in err
