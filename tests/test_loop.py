"""The one training loop (issue 25): training by steps and resuming mid-epoch, periodic evaluation, step-level
callbacks, ProgressBar and ModelCheckpoint as library callbacks, batch sources, and the refusals."""
import re

import numpy as np
import pytest

import xpnet
from xpnet.data.datasets import load_digits
from xpnet.training import IndexBatches

X_ALL, Y_ALL = load_digits()[:2]
X, Y = X_ALL[:300] / 16.0, Y_ALL[:300]   # batch_size 32: 10 minibatches per epoch, the last of 12 rows
XV, YV = X_ALL[300:400] / 16.0, Y_ALL[300:400]


def mlp(dropout=True, **kw):
    extra = [xpnet.Dropout(0.2)] if dropout else []
    return xpnet.Sequential([xpnet.Dense(64, 16), xpnet.Tanh(), *extra, xpnet.Dense(16, 10)],
                            optimizer=xpnet.Adam(0.01), schedule=xpnet.SCHEDULES["step"](1, 0.5), dtype="float64",
                            seed=0, **kw)


def params(model):
    return {k: xpnet.to_numpy(v) for k, v in model.parameters().items()}


def same(a, b):
    pa, pb = params(a), params(b)
    return pa.keys() == pb.keys() and all(np.array_equal(pa[k], pb[k]) for k in pa)


def test_steps_end_inside_an_epoch_and_resume_continues_bit_identically(tmp_path):
    full = mlp().fit(X, Y, epochs=3, batch_size=32)
    part = mlp().fit(X, Y, steps=13, batch_size=32)  # epoch 1 and 3 steps of epoch 2
    st = part.state
    assert (st.epoch, st.batch, st.step, len(part.history_["epoch"]), len(part.batch_losses_)) == (1, 3, 13, 1, 10)
    assert not same(part, full)
    part.fit(X, Y, steps=22, batch_size=32, resume=True)  # in memory, to another point inside epoch 3
    assert (st.epoch, st.batch, st.step) == (2, 2, 22)
    part.save(tmp_path / "mid.safetensors")
    resumed = xpnet.load(tmp_path / "mid.safetensors")
    resumed.fit(X, Y, steps=30, batch_size=32, resume=True)
    assert same(resumed, full) and resumed.state.step == 30
    for key in ("loss", "accuracy", "lr"):
        assert resumed.history_[key] == full.history_[key], key
    assert resumed.batch_losses_ == full.batch_losses_


def test_epochs_and_steps_together_end_at_whichever_comes_first():
    assert mlp().fit(X, Y, epochs=2, steps=100, batch_size=32).state.step == 20
    model = mlp().fit(X, Y, epochs=5, steps=15, batch_size=32)
    assert (model.state.step, model.state.epoch, model.state.batch) == (15, 1, 5)
    assert same(model, mlp().fit(X, Y, steps=15, batch_size=32))
    assert mlp().fit(X, Y, batch_size=32).state.step == 100  # neither: 10 epochs, as before
    resumed = model.fit(X, Y, epochs=3, batch_size=32, resume=True)  # by epochs: the saved steps limit goes, the
    assert resumed.state.step == 50 and same(resumed, mlp().fit(X, Y, epochs=5, batch_size=32))  # epochs stay >= 5


class Recorder(xpnet.Callback):
    def __init__(self):
        self.events = []

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("epoch_begin", epoch))

    def on_batch_begin(self, batch, logs=None):
        self.events.append(("begin", batch, logs["size"], self.model.state.step))

    def on_batch_end(self, batch, logs=None):
        self.events.append(("end", batch, logs["size"], logs["step"], self.model.state.step,
                            "evaluation" in logs))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("epoch_end", epoch))


def test_batch_hooks_in_order_with_the_runs_step_numbers():
    rec = Recorder()
    model = mlp().fit(X[:80], Y[:80], steps=4, batch_size=32, callbacks=[rec])  # 3 minibatches: 32, 32, 16
    assert rec.events == [("epoch_begin", 0),
                          ("begin", 0, 32, 0), ("end", 0, 32, 1, 1, False),
                          ("begin", 1, 32, 1), ("end", 1, 32, 2, 2, False),
                          ("begin", 2, 16, 2), ("end", 2, 16, 3, 3, False), ("epoch_end", 0),
                          ("epoch_begin", 1), ("begin", 0, 32, 3), ("end", 0, 32, 4, 4, False)]
    rec.events.clear()
    model.fit(X[:80], Y[:80], steps=6, batch_size=32, callbacks=[rec], resume=True)  # the step count goes on
    assert rec.events == [("epoch_begin", 1), ("begin", 1, 32, 4), ("end", 1, 32, 5, 5, False),
                          ("begin", 2, 16, 5), ("end", 2, 16, 6, 6, False), ("epoch_end", 1)]


def test_eval_every_records_the_right_steps_and_figures(tmp_path):
    rows = []

    class Rows(xpnet.Callback):
        def on_batch_end(self, batch, logs=None):
            if "evaluation" in logs:
                rows.append(logs["evaluation"])

    model = mlp().fit(X, Y, epochs=2, batch_size=32, validation_data=(XV, YV), eval_every=3, callbacks=[Rows()])
    h, losses = model.state.step_history, model.batch_losses_
    assert h["step"] == [3, 6, 9, 12, 15, 18] and len(rows) == 6
    assert rows == [{k: h[k][i] for k in h} for i in range(6)]
    for i, s in enumerate(h["step"]):
        assert h["loss"][i] == pytest.approx(np.mean(losses[s - 3:s]), rel=1e-12)  # the window crosses epochs
    assert h["lr"] == [0.01] * 3 + [0.005] * 3
    for s in (3, 12):  # the same figures as evaluating a run stopped after that step
        at = mlp().fit(X, Y, steps=s, batch_size=32)
        i = h["step"].index(s)
        assert (h["val_loss"][i], h["val_accuracy"][i]) == at.evaluate(XV, YV)
    assert same(model, mlp().fit(X, Y, epochs=2, batch_size=32, validation_data=(XV, YV)))  # evaluation changes nothing
    model.save(tmp_path / "m.safetensors")
    assert xpnet.load(tmp_path / "m.safetensors").state.step_history == h


def test_checkpoints_without_a_step_history_still_load():
    from pathlib import Path
    old = xpnet.load(Path(__file__).parent / "fixtures" / "v0.1.0-digits-adam.safetensors")
    assert old.state.step_history == {k: [] for k in xpnet.training.STEP_HISTORY_KEYS}


def test_progress_bar_is_a_library_callback(capsys):
    mlp().fit(X, Y, epochs=2, batch_size=32, callbacks=[xpnet.ProgressBar(bar=False)])
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert len(lines) == 2 and all(re.fullmatch(rf"epoch {i + 1}/2 loss \d\.\d{{4}} acc \d\.\d{{4}} lr 0\.0\d+ "
                                                r"\d+\.\d\ds [\d,]+ samples/s", line) for i, line in enumerate(lines))
    mlp().fit(X, Y, epochs=1, batch_size=32, callbacks=[xpnet.ProgressBar(bar=True)])
    out = capsys.readouterr()
    assert out.out == "" and "epoch 1/1" in out.err and "300/300" in out.err and "loss " in out.err


def test_model_checkpoint_every_epoch_and_every_n_steps(tmp_path):
    path, saved = tmp_path / "m.safetensors", []

    class Copies(xpnet.Callback):  # after the checkpoint's own hook: a copy of each write
        def on_batch_end(self, batch, logs=None):
            if logs["step"] % 4 == 0:
                saved.append((logs["step"], path.read_bytes()))

    full = mlp().fit(X, Y, epochs=2, batch_size=32)
    mlp().fit(X, Y, epochs=2, batch_size=32, callbacks=[xpnet.ModelCheckpoint(path, every_steps=4), Copies()])
    assert [s for s, _ in saved] == [4, 8, 12, 16, 20]
    step, data = saved[2]  # step 12: inside epoch 2, resumed exactly (accuracy so far included)
    (tmp_path / "s12.safetensors").write_bytes(data)
    resumed = xpnet.load(tmp_path / "s12.safetensors")
    assert (resumed.state.epoch, resumed.state.batch) == (1, 2)
    resumed.fit(X, Y, epochs=2, batch_size=32, resume=True)
    assert same(resumed, full) and resumed.history_["accuracy"] == full.history_["accuracy"]
    assert xpnet.load(path).state.epoch == 2  # the epoch's write comes last
    other = tmp_path / "never.safetensors"
    mlp().fit(X, Y, epochs=1, batch_size=32, callbacks=[xpnet.ModelCheckpoint(other, writer=False, every_steps=1)])
    assert not other.exists()


def test_a_fixed_list_of_index_batches_trains_as_the_unshuffled_run():
    bounds = [(s, min(s + 32, 300)) for s in range(0, 300, 32)]
    source = IndexBatches([range(s, e) for s, e in bounds])
    a = mlp().fit(X, Y, epochs=2, source=source)
    b = mlp().fit(X, Y, epochs=2, batch_size=32, shuffle=False)
    assert same(a, b) and a.batch_losses_ == b.batch_losses_ and a.history_["accuracy"] == b.history_["accuracy"]
    c = mlp().fit(X, Y, epochs=2, source=IndexBatches([range(0, 150), range(150, 300)][::-1]))
    assert not same(c, b) and c.state.step == 4


@pytest.mark.parametrize("call, message", [
    (lambda: mlp().fit(X, Y, steps=0), r"^steps=0: must be a positive integer; the run's total number of updates$"),
    (lambda: mlp().fit(X, Y, steps=1.5), r"^steps=1\.5: must be a positive integer"),
    (lambda: mlp().fit(X, Y, eval_every=0, validation_split=0.2), r"^eval_every=0: must be a positive integer"),
    (lambda: mlp().fit(X, Y, eval_every=5), r"^eval_every=5 evaluates on validation data, and this fit has none: "
                                            r"give validation_split or validation_data too$"),
    (lambda: mlp().fit(X, Y, source=[[0, 1]]), r"^source= takes an xpnet\.training\.BatchSource"),
    (lambda: mlp().fit(X, Y, source=IndexBatches([[0, 1]]), batch_size=2, shuffle=False),
     r"^source= gives the minibatches, so batch_size=2, shuffle=False cannot apply; drop them or the source$"),
    (lambda: mlp().fit(X, Y, source=IndexBatches([[0, 300]])), r"^IndexBatches holds row 300, but the training "
                                                               r"data has 300 rows"),
    (lambda: IndexBatches([[0], []]), r"^IndexBatches takes a non-empty list of non-empty index batches"),
    (lambda: mlp().fit(X, Y, steps=5).fit(X, Y, steps=5, resume=True),
     r"^steps=5: the run being resumed has made 5 updates already; give a larger total, or resume by epochs$"),
])
def test_bad_steps_eval_every_and_sources_are_refused_in_one_line(call, message):
    with pytest.raises(xpnet.InputError, match=message):
        call()


def test_resume_continues_the_saved_minibatches_and_refuses_other_ones(tmp_path):
    """A resumed fit draws the saved run's minibatches: batch_size (and the other epoch options) left out take the
    saved values (they once fell back to batches of 32, silently another run), and a different one is refused."""
    full = mlp().fit(X, Y, epochs=2, batch_size=16)
    part = mlp().fit(X, Y, steps=25, batch_size=16)  # inside epoch 2 (19 minibatches per epoch)
    part.save(tmp_path / "mid.safetensors")
    resumed = xpnet.load(tmp_path / "mid.safetensors").fit(X, Y, epochs=2, resume=True)  # no batch_size given
    assert same(resumed, full) and resumed.batch_losses_ == full.batch_losses_
    again = xpnet.load(tmp_path / "mid.safetensors")
    with pytest.raises(xpnet.InputError, match=r"^batch_size=32 differs from the run being resumed, which trained "
                                               r"with batch_size=16; drop it") as info:
        again.fit(X, Y, epochs=2, batch_size=32, resume=True)
    assert info.value.argument == "batch_size"
    with pytest.raises(xpnet.InputError, match=r"drew its minibatches from its own source \(IndexBatches\); pass the same source="):
        batches = IndexBatches([range(0, 32), range(32, 64)])
        m = mlp().fit(X, Y, steps=1, source=batches)
        m.fit(X, Y, steps=2, resume=True)
