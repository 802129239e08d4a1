"""fit(prefetch=N) (issue 34, part 5): a dataset's next minibatches read and staged by background threads while the
step runs. The same batches in the same order (bit-identical parameters), the state of the last step taken
(exact resume, also after a stop request as Ctrl-C makes it), a reader's error raised from its cause, and no
thread left behind however the fit ends. The GPU staging's logic is checked with a stand-in CUDA torch."""
import threading
import time

import numpy as np
import pytest

import xpnet
from xpnet.data.datasets import load_digits
from xpnet.errors import PrefetchError
from xpnet.training import IndexBatches, RandomBatches
from xpnet.training.prefetch import THREAD_PREFIX, Prefetcher

X_ALL, Y_ALL = load_digits()[:2]
X, Y = X_ALL[:200] / 16.0, Y_ALL[:200]   # batch_size 16: 13 minibatches per epoch, the last of 8 rows


class Rows:
    """A map-style dataset over host arrays: reads may sleep (uneven: `delay(call number)`), fail at a row, and
    are logged (the indices and the thread of each read)."""

    def __init__(self, X, y, delay=None, fail_row=None):
        self.X, self.y, self.delay, self.fail_row = X, y, delay, fail_row
        self.reads, self.lock = [], threading.Lock()

    def __len__(self):
        return len(self.X)

    def __getitems__(self, idx):
        idx = np.asarray(list(idx), dtype=np.int64)
        with self.lock:
            k = len(self.reads)
            self.reads.append((idx, threading.current_thread().name))
        if self.delay is not None:
            time.sleep(self.delay(k))
        if self.fail_row is not None and self.fail_row in idx:
            raise KeyError(f"row {self.fail_row} is unreadable")
        return self.X[idx], self.y[idx]


def mlp():
    return xpnet.Sequential([xpnet.Dense(64, 16), xpnet.Tanh(), xpnet.Dropout(0.2), xpnet.Dense(16, 10)],
                            optimizer=xpnet.Adam(0.01), schedule=xpnet.SCHEDULES["step"](1, 0.5), dtype="float64",
                            seed=0)


def params(model):
    return {k: xpnet.to_numpy(v) for k, v in model.parameters().items()}


def same(a, b):
    pa, pb = params(a), params(b)
    return pa.keys() == pb.keys() and all(np.array_equal(pa[k], pb[k]) for k in pa)


def prefetch_threads():
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


@pytest.fixture(autouse=True)
def no_threads_left():
    yield
    assert prefetch_threads() == []


def test_batches_come_in_the_sources_order_whatever_the_threads_read_times():
    # reads of uneven length (a late one every third): delivered in order, and several threads did read
    p = Prefetcher(lambda rows: (time.sleep(0.02 if rows[0] % 3 == 0 else 0.0), list(rows))[1:], lambda a: a, 3)
    order = list(range(40))
    steps = [(i, i * 2, i * 2 + 2) for i in range(20)]
    try:
        p.start(0, order, steps)
        got = [p.get(s, e)[0] for _, s, e in steps]
        assert got == [order[s:e] for _, s, e in steps]
        with pytest.raises(RuntimeError, match="asked for rows 0:2 of the order, the next planned is none"):
            p.get(0, 2)
    finally:
        p.close()
    ds = Rows(X, Y, delay=lambda k: 0.01 * (k % 3 == 0))
    mlp().fit(ds, None, epochs=1, batch_size=16, prefetch=3)
    firsts = [int(idx[0]) for idx, _ in ds.reads]
    assert len({name for _, name in ds.reads}) > 1  # read by more than one thread
    plain = Rows(X, Y)
    mlp().fit(plain, None, epochs=1, batch_size=16)
    assert sorted(firsts) == sorted(int(idx[0]) for idx, _ in plain.reads)  # the same batches were read


@pytest.mark.parametrize("prefetch", [1, 4])
def test_prefetch_trains_bit_identically_to_reading_each_batch_in_the_step(prefetch):
    plain = mlp().fit(Rows(X, Y), None, epochs=2, batch_size=16, validation_data=(X_ALL[300:350] / 16.0,
                                                                                   Y_ALL[300:350]))
    ahead = mlp().fit(Rows(X, Y, delay=lambda k: 0.003 * (k % 2)), None, epochs=2, batch_size=16, prefetch=prefetch,
                      validation_data=(X_ALL[300:350] / 16.0, Y_ALL[300:350]))
    assert same(plain, ahead)
    assert plain.batch_losses_ == ahead.batch_losses_ and plain.history_["accuracy"] == ahead.history_["accuracy"]
    # arrays: nothing to read ahead, prefetch does nothing (and is no error)
    assert same(mlp().fit(X, Y, epochs=1, batch_size=16, prefetch=2), mlp().fit(X, Y, epochs=1, batch_size=16))


def test_a_stop_request_saves_the_last_step_taken_and_resumes_exactly_with_prefetch(tmp_path):
    """What Ctrl-C does under `xpnet train` (its SIGINT handler sets stop_requested): the fit stops after the
    current step with TrainingInterrupted while the threads have read ahead; the checkpoint is that step's, and
    the resumed run (prefetch on again) equals an uninterrupted one bit for bit."""
    full = mlp().fit(Rows(X, Y), None, epochs=3, batch_size=16)

    class StopAt(xpnet.Callback):
        def on_batch_end(self, batch, logs=None):
            if logs["step"] == 17:  # inside epoch 2, once the threads have read steps 18-20
                t0 = time.perf_counter()
                while len(ds.reads) < 20 and time.perf_counter() - t0 < 5:
                    time.sleep(0.001)
                self.model.state.stop_requested = True

    part, ds = mlp(), Rows(X, Y)
    with pytest.raises(xpnet.TrainingInterrupted, match="in epoch 2, after step 4 of 13"):
        part.fit(ds, None, epochs=3, batch_size=16, prefetch=3, callbacks=[StopAt()])
    assert len(ds.reads) == 20  # read ahead of the step it stopped after
    assert (part.state.epoch, part.state.batch, part.state.step) == (1, 4, 17)
    part.save(tmp_path / "stopped.safetensors")
    resumed = xpnet.load(tmp_path / "stopped.safetensors").fit(Rows(X, Y), None, epochs=3, prefetch=2, resume=True)
    assert same(resumed, full) and resumed.batch_losses_ == full.batch_losses_
    assert resumed.history_["accuracy"] == full.history_["accuracy"]
    # by steps, with a source of its own (RandomBatches, as the GPT trains) and a checkpoint mid-epoch
    whole = mlp().fit(Rows(X, Y), None, steps=20, source=RandomBatches(16, seed=3))
    half = mlp().fit(Rows(X, Y), None, steps=9, source=RandomBatches(16, seed=3), prefetch=2)
    half.save(tmp_path / "half.safetensors")
    again = xpnet.load(tmp_path / "half.safetensors").fit(Rows(X, Y), None, steps=20, prefetch=3,
                                                          source=RandomBatches(16, seed=3), resume=True)
    assert same(again, whole) and again.batch_losses_ == whole.batch_losses_


def test_a_readers_error_surfaces_in_the_loop_with_its_cause_and_the_threads_are_joined():
    ds = Rows(X, Y, fail_row=int(np.arange(200)[100]))
    model = mlp()
    with pytest.raises(PrefetchError, match=r"reading the rows of step 7 of epoch 1 in a prefetch thread failed: "
                                            r"KeyError: 'row 100 is unreadable'") as info:
        model.fit(ds, None, epochs=1, source=IndexBatches([range(s, s + 16) for s in range(0, 192, 16)]),
                  prefetch=2)
    assert isinstance(info.value.__cause__, KeyError) and info.value.__cause__.__traceback__ is not None
    assert model.state.batch == 6  # the steps before the failed read were taken


def test_no_thread_is_left_after_the_end_an_error_or_a_keyboard_interrupt():
    before = threading.active_count()
    mlp().fit(Rows(X, Y), None, epochs=2, batch_size=16, prefetch=3)
    assert prefetch_threads() == []

    class Boom(xpnet.Callback):
        def __init__(self, exc):
            self.exc = exc

        def on_batch_end(self, batch, logs=None):
            if batch == 3:
                raise self.exc

    slow = Rows(X, Y, delay=lambda k: 0.01)
    with pytest.raises(RuntimeError, match="a callback failed"):
        mlp().fit(slow, None, epochs=1, batch_size=16, prefetch=3, callbacks=[Boom(RuntimeError("a callback failed"))])
    assert prefetch_threads() == []
    with pytest.raises(KeyboardInterrupt):
        mlp().fit(slow, None, epochs=1, batch_size=16, prefetch=3, callbacks=[Boom(KeyboardInterrupt())])
    assert prefetch_threads() == [] and threading.active_count() == before


def test_a_keyboard_interrupt_while_the_step_waits_for_a_read_joins_the_threads():
    """A real SIGINT with Python's default handler (KeyboardInterrupt) while the training thread waits for a
    slow read: it comes out of fit at once, after the threads have finished their reads and been joined; the
    state is that of the last step taken."""
    import os
    import signal
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    slow = Rows(X, Y, delay=lambda k: 0.0 if k < 3 else 0.4)
    model = mlp()

    def interrupt():
        t0 = time.perf_counter()
        while len(slow.reads) < 4 and time.perf_counter() - t0 < 30:
            time.sleep(0.005)
        time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)

    ctrl_c = threading.Thread(target=interrupt)
    ctrl_c.start()
    with pytest.raises(KeyboardInterrupt):
        model.fit(slow, None, epochs=1, batch_size=16, prefetch=2)
    ctrl_c.join()
    assert prefetch_threads() == [] and model.state.batch == 3 and len(model.state.partial_losses) == 3


def test_prefetch_on_every_backend_trains_as_without(xpnet_backend):
    """Each backend's stage and ready (torch CUDA: pinned memory, a copy stream and an event; CuPy: a copy
    stream) give the step the arrays asarray gives: the same parameters bit for bit, on the model's device."""
    def run(prefetch):
        m = xpnet.Sequential([xpnet.Dense(64, 16), xpnet.Tanh(), xpnet.Dense(16, 10)], backend=xpnet_backend,
                             dtype="float32", seed=0)
        return m.fit(Rows(X, Y), None, epochs=1, batch_size=16, prefetch=prefetch)

    plain, ahead = run(0), run(3)
    assert all(xpnet_backend.owns(a) for a in ahead.parameters().values())
    assert same(plain, ahead) and plain.batch_losses_ == ahead.batch_losses_


def test_prefetch_is_checked():
    with pytest.raises(xpnet.InputError, match=r"^prefetch=-1: .*minibatches of a dataset read ahead"):
        mlp().fit(Rows(X, Y), None, epochs=1, prefetch=-1)


class _FakeTorch:
    """Just enough of torch's CUDA API to run TorchBackend.stage/ready's logic: it logs the calls."""

    def __init__(self):
        self.log = []
        fake = self

        class Tensor:
            def __init__(self, data, where):
                self.data, self.where = data, where

            def to(self, device, non_blocking=False):
                fake.log.append(("copy", self.where, device, non_blocking, fake.current))
                return Tensor(self.data, device)

            def record_stream(self, stream):
                fake.log.append(("record_stream", stream))

        class Stream:
            def __init__(self, device=None):
                self.name = f"copy-stream-{device}"

            def wait_event(self, event):
                fake.log.append(("wait_event", self.name, event.stream))

        class Event:
            def record(self, stream):
                self.stream = stream.name
                fake.log.append(("record", stream.name))

        class StreamContext:
            def __init__(self, stream):
                self.stream = stream

            def __enter__(self):
                fake.current = self.stream.name

            def __exit__(self, *a):
                fake.current = "default"

        compute = Stream()
        compute.name = "default"
        self.current, self.Tensor = "default", Tensor
        self.cuda = type("cuda", (), {"Stream": Stream, "Event": Event, "stream": StreamContext,
                                      "current_stream": staticmethod(lambda device=None: compute),
                                      "device": staticmethod(lambda i: __import__("contextlib").nullcontext())})


def test_torch_cuda_staging_pins_copies_on_its_own_stream_and_the_step_waits_on_the_gpu_only():
    from xpnet.backend._torch import TorchBackend
    fake = _FakeTorch()
    bk = object.__new__(TorchBackend)
    bk.__dict__.update(device="cuda:0", _index=0, _mod=fake, native_device="cuda:0")
    bk._staged = lambda host, dtype, pin: (fake.log.append(("pinned", pin)), fake.Tensor(host, "cpu"))[1]
    handle = bk.stage(np.ones(3), None)
    assert fake.log == [("pinned", True), ("copy", "cpu", "cuda:0", True, "copy-stream-cuda:0"),
                        ("record", "copy-stream-cuda:0")]
    del fake.log[:]
    a = bk.ready(handle)
    assert a.where == "cuda:0" and fake.log == [("wait_event", "default", "copy-stream-cuda:0"),
                                                ("record_stream", bk._mod.cuda.current_stream())]
    assert bk.stage(np.ones(2)) is not handle and bk._copy_stream() is bk._copy_stream()  # one copy stream
    cpu = xpnet.backend("numpy")
    assert cpu.ready(cpu.stage(np.arange(3), cpu.xp.float64)).dtype == cpu.xp.float64


DATA = __import__("pathlib").Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
TINY = ["--preset", "gpt-shakespeare-cpu", "--layers", "1", "--heads", "2", "--dim", "16", "--block", "16",
        "--batch-size", "4", "--eval-every", "1000", "--eval-batches", "1", "--data-dir", str(DATA), "--offline",
        "--backend", "numpy", "--dtype", "float64", "--quiet", "--json"]


@pytest.mark.skipif(not (DATA / "tinyshakespeare" / "input.txt").is_file(),
                    reason="../shared/data/tinyshakespeare/input.txt is not here")
def test_ctrl_c_under_xpnet_train_with_prefetch_saves_and_resumes_exactly(tmp_path, capsys):
    """A real SIGINT while `xpnet train --prefetch 2` trains a tiny GPT: it saves the last step taken, exits 130
    with no prefetch thread left, and the resumed run (--prefetch 3) equals a straight run without prefetch."""
    import os
    import signal

    from xpnet.cli import main
    stopped = tmp_path / "stopped.safetensors"

    def interrupt():  # once training has started (its threads exist), a little later: Ctrl-C
        t0 = time.perf_counter()
        while not prefetch_threads() and time.perf_counter() - t0 < 30:
            time.sleep(0.005)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)

    ctrl_c = threading.Thread(target=interrupt)
    ctrl_c.start()
    try:
        rc = main(["train", *TINY, "--steps", "100000", "--prefetch", "2", "--checkpoint", str(stopped)])
    except SystemExit as exc:
        rc = exc.code
    ctrl_c.join()
    assert rc == 130 and "stopped; saved the state" in capsys.readouterr().err and prefetch_threads() == []
    at = xpnet.load(stopped).state.step
    assert at > 0
    assert main(["train", *TINY, "--steps", str(at + 3), "--prefetch", "3", "--resume", str(stopped),
                 "--checkpoint", str(stopped)]) == 0
    straight = tmp_path / "straight.safetensors"
    assert main(["train", *TINY, "--steps", str(at + 3), "--checkpoint", str(straight)]) == 0
    a, b = xpnet.load(stopped), xpnet.load(straight)
    assert a.state.step == b.state.step == at + 3 and same(a, b)


def test_cupy_staging_copies_on_a_non_blocking_stream_after_the_null_streams_work(monkeypatch):
    """CuPy has no record_stream: the device array comes from the null stream's pool (the training thread's),
    and the copy stream waits for an event recorded on the null stream after that allocation (every kernel
    that used a reused block came before it); the reader thread waits for its copy, not the training thread."""
    import sys
    import types

    from xpnet.backend._cupy import CupyBackend
    log = []

    class Event:
        def record(self, stream):
            self.on = stream.name
            log.append(("record", stream.name))

        def synchronize(self):
            log.append(("synchronize", self.on))

    class Stream:
        def __init__(self, non_blocking=False, name=None):
            self.name = name or f"copy(non_blocking={non_blocking})"

        def wait_event(self, event):
            log.append(("wait_event", self.name, event.on))

    Stream.null = Stream(name="null")

    class DeviceArray:
        def set(self, host, stream=None):
            self.values = np.array(host)
            log.append(("set", stream.name, host.dtype.name, "pinned" if host is pinned[0] else "pageable"))

    def empty(shape, dtype):
        log.append(("empty", tuple(shape), np.dtype(dtype).name))
        return DeviceArray()

    pinned = []

    def empty_pinned(shape, dtype):
        pinned.append(np.empty(shape, dtype))
        return pinned[-1]

    cuda = types.SimpleNamespace(Event=Event, Stream=Stream,
                                 Device=lambda i: __import__("contextlib").nullcontext())
    monkeypatch.setitem(sys.modules, "cupyx", types.SimpleNamespace(empty_pinned=empty_pinned))
    bk = object.__new__(CupyBackend)
    bk.__dict__.update(device="cuda:0", _index=0, _mod=types.SimpleNamespace(cuda=cuda, empty=empty))
    a = bk.stage(np.arange(6, dtype=np.float64).reshape(2, 3), np.float32)
    assert log == [("empty", (2, 3), "float32"), ("record", "null"), ("wait_event", "copy(non_blocking=True)", "null"),
                   ("set", "copy(non_blocking=True)", "float32", "pinned"), ("record", "copy(non_blocking=True)"),
                   ("synchronize", "copy(non_blocking=True)")]
    assert a.values.tolist() == [[0, 1, 2], [3, 4, 5]] and bk.ready(a) is a
    assert bk._copy_stream() is bk._copy_stream()


def test_the_prefetch_flag_is_checked_and_does_nothing_with_arrays():
    from fakes import run_cli
    rc, out, err = run_cli("train", "--epochs", "1", "--prefetch", "-1", "--quiet")
    assert rc == 2 and "--prefetch -1: must be" in err and "minibatches of a dataset read ahead" in err
    runs = [run_cli("train", "--epochs", "1", "--quiet", "--json", *flag) for flag in ([], ["--prefetch", "2"])]
    assert all(rc == 0 for rc, _, _ in runs)
    first, second = (__import__("json").loads(out.strip().splitlines()[-1]) for _, out, _ in runs)
    assert first["final_loss"] == second["final_loss"] and first["test_accuracy"] == second["test_accuracy"]


def test_an_allocation_failure_in_a_reader_is_fits_out_of_memory_error():
    class Full(Rows):
        def __getitems__(self, idx):
            raise MemoryError("cannot allocate the batch")

    with pytest.raises(xpnet.OutOfMemory, match="lower --batch-size"):
        mlp().fit(Full(X, Y), None, epochs=1, batch_size=16, prefetch=2)


def test_validation_evaluate_and_predict_read_a_dataset_ahead_with_the_same_figures():
    """prefetch=N reads a dataset's batches ahead when it is scored too: fit's validation data (every epoch,
    and eval_batches' drawn rows), evaluate, predict and predict_proba, in threads of their own, joined after;
    the figures equal those read in the calling thread."""
    val_plain, val_ahead = Rows(X_ALL[300:350] / 16.0, Y_ALL[300:350]), Rows(X_ALL[300:350] / 16.0, Y_ALL[300:350],
                                                                            delay=lambda k: 0.003 * (k % 2))
    opts = dict(epochs=2, batch_size=16, eval_every=5, eval_batches=2)
    plain = mlp().fit(Rows(X, Y), None, validation_data=val_plain, **opts)
    ahead = mlp().fit(Rows(X, Y), None, validation_data=val_ahead, prefetch=2, **opts)
    assert same(plain, ahead)
    assert plain.history_["val_loss"] == ahead.history_["val_loss"]
    assert plain.state.step_history == ahead.state.step_history
    assert {t for _, t in val_plain.reads} == {"MainThread"}
    assert {t.split("_")[0] for _, t in val_ahead.reads} == {THREAD_PREFIX}
    assert [list(i) for i, _ in val_plain.reads] == [list(i) for i, _ in val_ahead.reads]  # the same rows in order
    test = Rows(X_ALL[400:437] / 16.0, Y_ALL[400:437], delay=lambda k: 0.002 * (k % 3))
    for prefetch in (1, 3):
        assert plain.evaluate(test, batch_size=5, prefetch=prefetch) == plain.evaluate(test, batch_size=5)
        np.testing.assert_array_equal(plain.predict_proba(test, batch_size=5, prefetch=prefetch),
                                      plain.predict_proba(test, batch_size=5))
        np.testing.assert_array_equal(plain.predict(test, prefetch=prefetch), plain.predict(X_ALL[400:437] / 16.0))
    assert any(t.startswith(THREAD_PREFIX) for _, t in test.reads)


def test_a_readers_error_while_scoring_names_the_batch_and_the_threads_are_joined():
    model = mlp().fit(X, Y, epochs=1)
    bad = Rows(X, Y, fail_row=100)
    with pytest.raises(PrefetchError, match=r"reading the rows of batch 7 of the evaluation in a prefetch thread "
                                            r"failed: KeyError: 'row 100 is unreadable'"):
        xpnet.training.loop.evaluate(model, bad, None, batch_size=16, prefetch=2)
    with pytest.raises(PrefetchError, match=r"batch 7 of predict_proba\(dataset\)") as info:
        model.predict_proba(bad, batch_size=16, prefetch=2)
    assert isinstance(info.value.__cause__, KeyError)
    for call in (lambda: model.evaluate(Rows(X, Y), prefetch=-1), lambda: model.predict(X, prefetch=1.5),
                 lambda: model.predict_proba(Rows(X, Y), prefetch="2")):
        with pytest.raises(xpnet.InputError, match=r"\(prefetch=.*\): must be a non-negative integer; a dataset.s"):
            call()
