"""xpnet.Callback: Keras' hooks in order with the right epoch and batch numbers and logs, self.model, stop_training;
today's duck-typed callbacks and plain functions still work beside it."""
import numpy as np
import pytest

import xpnet

RNG = np.random.default_rng(0)
X, Y = RNG.normal(size=(20, 4)), np.arange(20) % 3  # batch_size 8: minibatches of 8, 8 and 4 rows


def mlp():
    return xpnet.Sequential(xpnet.mlp_layers([4, 5, 3], "tanh"), optimizer=xpnet.SGD(0.1), dtype="float64",
                            schedule=xpnet.SCHEDULES["step"](2, 0.5), seed=0)


class Recorder(xpnet.Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, logs=None):
        self.events.append(("train_begin", self.model, dict(logs)))

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("epoch_begin", epoch, dict(logs)))

    def on_batch_end(self, batch, logs=None):
        self.events.append(("batch_end", batch, logs["size"], float(logs["loss"])))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("epoch_end", epoch, dict(logs)))

    def on_train_end(self, logs=None):
        self.events.append(("train_end", dict(logs)))


def test_a_callback_sees_each_hook_in_order():
    rec, model = Recorder(), mlp()
    model.fit(X, Y, epochs=3, batch_size=8, callbacks=[rec])
    h, losses = model.history_, model.batch_losses_
    assert rec.model is model
    want = [("train_begin", model, {})]
    for epoch in range(3):
        want.append(("epoch_begin", epoch, {"lr": h["lr"][epoch]}))
        want += [("batch_end", b, rows, losses[3 * epoch + b]) for b, rows in enumerate((8, 8, 4))]
        want.append(("epoch_end", epoch, {k: h[k][epoch] for k in h}))
    want.append(("train_end", {k: h[k][-1] for k in h}))
    assert rec.events == want
    assert h["epoch"] == [1, 2, 3] and h["lr"] == [0.1, 0.1, 0.05]


@pytest.mark.parametrize("hook", ["on_epoch_end", "on_batch_end"])
def test_a_callback_ends_training_after_the_current_epoch(hook):
    class Stop(Recorder):
        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            if hook == "on_epoch_end" and epoch == 1:
                self.model.stop_training = True

        def on_batch_end(self, batch, logs=None):
            super().on_batch_end(batch, logs)
            if hook == "on_batch_end" and batch == 0:
                self.model.stop_training = True

    stop, after = Stop(), Recorder()
    model = mlp().fit(X, Y, epochs=5, batch_size=8, callbacks=[stop, after])
    epochs = 2 if hook == "on_epoch_end" else 1
    assert model.history_["epoch"] == list(range(1, epochs + 1)) and len(model.batch_losses_) == 3 * epochs
    for rec in (stop, after):  # the epoch ends whole, every callback sees its end, then the end of training
        assert [e[1] for e in rec.events if e[0] == "epoch_end"] == list(range(epochs))
        assert rec.events[-1] == ("train_end", {k: v[-1] for k, v in model.history_.items()})
    assert mlp().fit(X, Y, epochs=2).stop_training is False  # the next fit starts afresh


def test_old_style_callbacks_and_functions_still_work_beside_a_callback():
    calls = []

    class Old:  # today's protocol: the model first, steps from 1, a true result of on_epoch_end stops
        def on_train_begin(self, model):
            calls.append(("begin", model))

        def on_batch_end(self, model, step, steps):
            calls.append(("batch", step, steps))

        def on_epoch_end(self, model, logs):
            calls.append(("epoch", logs["epoch"]))
            return logs["epoch"] == 2

        def on_train_end(self, model):
            calls.append(("end", model))

    rec, model = Recorder(), mlp()
    model.fit(X, Y, epochs=5, batch_size=8, callbacks=[Old(), lambda m, logs: calls.append(("f", m, logs["epoch"])),
                                                        rec])
    per_epoch = lambda e: [("batch", 1, 3), ("batch", 2, 3), ("batch", 3, 3), ("epoch", e), ("f", model, e)]
    assert calls == [("begin", model), *per_epoch(1), *per_epoch(2), ("end", model)]
    assert [e[1] for e in rec.events if e[0] == "epoch_end"] == [0, 1] and rec.events[-1][0] == "train_end"


def test_a_callable_old_style_object_without_on_epoch_end_is_called_after_every_epoch():
    """As before xpnet.Callback: an object with some of the old hooks but no on_epoch_end that is itself
    callable is called as obj(model, logs) after every epoch, and a true result stops training."""
    calls = []

    class Old:
        def on_train_begin(self, model):
            calls.append(("begin", model))

        def __call__(self, model, logs):
            calls.append(("call", model, logs["epoch"]))
            return logs["epoch"] == 2

    model = mlp()
    model.fit(X, Y, epochs=5, batch_size=8, callbacks=[Old()])
    assert calls == [("begin", model), ("call", model, 1), ("call", model, 2)]
    assert model.history_["epoch"] == [1, 2]


def test_early_stopping_is_a_callback():
    assert issubclass(xpnet.EarlyStopping, xpnet.Callback) and xpnet.Callback is xpnet.training.Callback
    stopper = xpnet.EarlyStopping(patience=1, monitor="loss", min_delta=10.0)  # no epoch improves by 10
    model = mlp().fit(X, Y, epochs=5, batch_size=8, early_stopping=stopper)
    assert stopper.model is model and stopper.stopped_epoch == 2 and model.history_["epoch"] == [1, 2]
