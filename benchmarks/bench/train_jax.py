"""The jax-jit row: the case written as a JAX user would write it (run_jax_jit); case F as a native JAX LeNet-5
(lax.conv_general_dilated, lax.reduce_window)."""
from __future__ import annotations

import time

from .cases import onehot
from .train_xpnet import compiled_extra


def prepare() -> None:
    import jax  # noqa: F401 (imported before the RSS after load)


def run_jax_jit(case, dtype, X, y, epochs, device):
    """_run_jax_jit with full float32 products, as xpnet's JAX backend pins while it works
    (JaxBackend.matmul_precision) and as the torch rows run: JAX's default uses TF32 on GPUs that have it.
    A context, not jax.config.update: the setting must not outlive the run (the tests call this in-process)."""
    import jax
    with jax.default_matmul_precision("highest"):
        return _run_jax_jit(case, dtype, X, y, epochs, device)


def _run_jax_jit(case, dtype, X, y, epochs, device):
    """The case written as a JAX user would: one jax.jit call per minibatch that gathers the minibatch's rows
    from device-resident data (jnp.take with the step's index slice passed in), takes jax.value_and_grad of
    the loss (+ the case's L2 penalty), applies the case's update (SGD, classical momentum or the book's
    look-back) and returns the loss and the argmax. The same initial weights and batch order as xpnet (the
    permutations drawn from the generator the weights came from; composed for the book's case D, whose
    learning rate decays per epoch as the book's does). Case F: LeNet-5 on X (N, 1, 28, 28), see lenet5_features.
    Losses and predictions stay on the device until the epoch ends (one transfer per epoch, as xpnet's fit).
    epochs + 1 epochs: the first compiles, untimed. Beside compiled_extra's figures it reports the last epoch's
    loss and accuracy (as xpnet's history) and first_step_loss (the first minibatch's loss, before any update)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    kind, _, index = device.partition(":")
    dev = jax.devices("cpu" if kind == "cpu" else "gpu")[int(index or 0)]
    book = case.book_args
    if book.get("l1"):
        raise NotImplementedError("an L1 penalty (the book's cost and gradient differ)")
    l2, mu, alpha, decay = book.get("l2", 0.0), case.momentum, book.get("alpha", 0.0), book.get("decrease_const", 0.0)
    rng = case.host_rng()
    params = [tuple(jax.device_put(np.asarray(a, dtype=dtype), dev) for a in wb) for wb in case.initial_params(rng)]
    bufs = jax.tree_util.tree_map(jnp.zeros_like, params)  # momentum / the book's previous delta
    act = jax.nn.sigmoid if case.hidden == "sigmoid" else jax.nn.relu
    traces = []

    def objective(ps, xb, yb):
        z = lenet5_features(ps[:2], xb) if case.conv else xb
        dense = ps[2:] if case.conv else ps
        for i, (w, b) in enumerate(dense):
            z = z @ w.T + b
            if i < len(dense) - 1:
                z = act(z)
        if case.loss == "logistic":  # sigmoid + binary cross-entropy, from the logits
            value = jnp.sum(jax.nn.softplus(z) - yb * z)
        else:
            value = -jnp.sum(yb * jax.nn.log_softmax(z, axis=1))
        if case.reduction == "mean":
            value = value / z.shape[0]
        if l2:
            value = value + 0.5 * l2 * sum(jnp.sum(w * w) for w, _ in ps)
        return value, z

    @jax.jit
    def step(ps, bufs, X, Y, idx, lr):
        traces.append(1)
        xb, yb = jnp.take(X, idx, axis=0), jnp.take(Y, idx, axis=0)
        (value, z), g = jax.value_and_grad(objective, has_aux=True)(ps, xb, yb)
        if mu:  # classical momentum (PyTorch's form)
            bufs = jax.tree_util.tree_map(lambda v, gi: mu * v + gi, bufs, g)
            ps = jax.tree_util.tree_map(lambda p, v: p - lr * v, ps, bufs)
        elif alpha:  # the book's look-back: w -= lr * g + alpha * previous (lr * g)
            delta = jax.tree_util.tree_map(lambda gi: lr * gi, g)
            ps = jax.tree_util.tree_map(lambda p, d, prev: p - (d + alpha * prev), ps, delta, bufs)
            bufs = delta
        else:
            ps = jax.tree_util.tree_map(lambda p, gi: p - lr * gi, ps, g)
        return ps, bufs, value, jnp.argmax(z, axis=1)

    n = X.shape[0]
    with jax.default_device(dev):
        Xd, Yd = jax.device_put(X, dev), jax.device_put(onehot(y, case.sizes[-1], dtype), dev)
        labels = jax.device_put(y.astype(np.int32), dev)
        bounds, order, lr, seconds, first_step = case.bounds(n), None, case.lr, [], None
        for epoch in range(epochs + 1):
            t0 = time.perf_counter()
            lr = lr / (1 + decay * epoch) if decay else lr
            perm = rng.permutation(n)
            order = perm if order is None or not case.book else order[perm]
            order_d = jax.device_put(order, dev)
            losses, preds = [], []
            for s, e in bounds:
                params, bufs, value, pred = step(params, bufs, Xd, Yd, order_d[s:e], lr)
                losses.append(value)
                preds.append(pred)
            correct = jnp.sum(jnp.concatenate(preds) == jnp.take(labels, order_d, axis=0))
            host, correct = np.asarray(jnp.stack(losses)), int(correct)
            first_step = float(host[0]) if epoch == 0 else first_step
            jax.block_until_ready(params)
            seconds.append(time.perf_counter() - t0)
            if not np.isfinite(host).all():
                raise FloatingPointError(f"the loss became {host[~np.isfinite(host)][0]} in epoch {epoch + 1}")
    weights = np.array([e - s for s, e in bounds] if case.reduction == "mean" else [1] * len(bounds))
    last = {"last_epoch_loss": float(host @ weights) / n, "last_epoch_accuracy": correct / n,  # as xpnet's history
            "first_step_loss": first_step}
    return seconds[1:], f"jax {jax.__version__} on {dev.platform}", compiled_extra(seconds, len(traces)) | last


def lenet5_features(convs, x):
    """LeNet-5's convolutional part as a JAX user writes it: x (N, 1, 28, 28) -> (N, 400). convs: [(W (6, 1, 5, 5),
    b (6,)), (W (16, 6, 5, 5), b (16,))] (xpnet's OIHW). conv 6@5x5 padding 2 -> ReLU -> 2x2 max-pool (N, 6, 14, 14)
    -> conv 16@5x5 -> ReLU -> 2x2 max-pool (N, 16, 5, 5) -> flattened channel-major, as xpnet's Flatten and
    torch.nn.Flatten do."""
    import jax
    import jax.numpy as jnp
    from jax import lax
    z = x
    for (w, b), pad in zip(convs, (2, 0)):
        z = lax.conv_general_dilated(z, w, window_strides=(1, 1), padding=[(pad, pad), (pad, pad)],
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))
        z = jax.nn.relu(z + b[None, :, None, None])
        z = lax.reduce_window(z, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
    return z.reshape(z.shape[0], -1)
