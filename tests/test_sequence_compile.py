"""Embedding's id check outside the traced step (issue 31): a compiled transformer step is one torch.compile
graph, and ids out of the vocabulary are still refused in one line in eager calls, fit (eager and compiled),
evaluate and predict, where the data enters the model."""
import numpy as np
import pytest

import xpnet
from fakes import installed
from xpnet.backend import is_traced
from xpnet.tools.parity import sequence_problem, transformer_model

X, Y = sequence_problem(n=16)  # (16, 6) token ids in [0, 11)
BAD = X.copy()
BAD[3, 2] = 11  # one id past the vocabulary
NEGATIVE = X.copy()
NEGATIVE[0, 0] = -1
ONE_LINE = r"Embedding\(11, 8\) takes token ids in \[0, 11\) but got id (11|-1)"


def _refused(call, match=ONE_LINE):
    with pytest.raises(xpnet.InputError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_a_compiled_torch_transformer_step_is_one_graph():
    """torch.compile traces the whole step once (it was 27 graphs while Embedding's check read the ids' values
    inside the step), and the compiled fit equals the eager one in float64."""
    if not installed("torch"):
        pytest.skip("torch is not installed")
    compiled, eager = transformer_model("torch", "float64"), transformer_model("torch", "float64")
    compiled.compile = True
    import torch
    counters = torch._dynamo.utils.counters
    counters.clear()
    compiled.fit(X, Y, epochs=1, batch_size=8, shuffle=False)
    seen = {k: dict(v) for k, v in counters.items()}
    # one frame, one graph, no graph break (it was 27 graphs); in a long test session the backend has been seen
    # to compile that one graph twice (counters: unique_graphs 1, aot_autograd total 2), hence at most 2 traces
    assert seen["frames"]["total"] == 1 and seen["stats"]["unique_graphs"] == 1 and not seen.get("graph_break"), seen
    assert compiled.compile_traces_ in (1, 2), seen
    eager.fit(X, Y, epochs=1, batch_size=8, shuffle=False)
    for k, v in eager.parameters().items():
        np.testing.assert_allclose(compiled.bk.to_numpy(compiled.parameters()[k]), eager.bk.to_numpy(v),
                                   rtol=1e-10, atol=1e-13)
    traces = compiled.compile_traces_
    _refused(lambda: compiled.fit(BAD, Y, epochs=1, batch_size=8))  # refused before the compiled step runs
    assert compiled.compile_traces_ == traces


@pytest.mark.parametrize("name", [b for b in ("numpy", "array_api_strict", "torch", "jax") if installed(b)])
def test_ids_out_of_the_vocabulary_refused_in_one_line_everywhere(name):
    model = transformer_model(name, "float32")
    for bad in (BAD, NEGATIVE):
        _refused(lambda: model.fit(bad, Y, epochs=1, batch_size=8))
        _refused(lambda: model.fit(X, Y, epochs=1, batch_size=8, validation_data=(bad, Y)))
        _refused(lambda: model.evaluate(bad, Y))
        _refused(lambda: model.predict(bad))
        _refused(lambda: model.score(bad, Y))
        # eager calls of the layer itself check each minibatch, host or device ids alike
        ids = model.bk.asarray(bad)
        _refused(lambda: model.forward(ids))
        _refused(lambda: model.predict(ids))
    if name in ("jax", "torch"):
        model.compile = True
        _refused(lambda: model.fit(BAD, Y, epochs=1, batch_size=8))
        assert model.compile_traces_ == 0


def test_is_traced():
    """False for concrete arrays of every library; True for a jax.jit tracer and inside torch.compile."""
    assert not is_traced(np.ones(2))
    if installed("jax"):
        import jax
        seen = []
        jax.jit(lambda a: seen.append(is_traced(a)) or a)(jax.numpy.ones(2))
        assert seen == [True] and not is_traced(jax.numpy.ones(2))
    if installed("torch"):
        import torch
        assert not is_traced(torch.ones(2))
        seen = []

        def f(a):
            seen.append(is_traced(a))
            return a + 1

        torch.compile(f, backend="eager")(torch.ones(2))
        assert seen == [True]
