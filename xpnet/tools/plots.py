"""PNG plots as the book shows them (matplotlib, an optional extra: pip install "xpnet[plot]")."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import InputError


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise InputError('--plot needs matplotlib; install it with: pip install "xpnet[plot]"') from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def write_filters(folder, weight) -> Path:
    """filters.png: a first convolutional layer's filters, weight (out_channels, in_channels, kh, kw) as a host
    array, one panel per output channel (the mean over input channels), gray levels scaled per filter."""
    plt = _pyplot()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    w = np.asarray(weight, dtype=np.float64).mean(axis=1)
    cols = min(8, w.shape[0])
    rows = math.ceil(w.shape[0] / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.3 * rows + 0.4), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= w.shape[0]:
            ax.axis("off")
            continue
        ax.imshow(w[k], cmap="gray", interpolation="nearest")
        ax.set_title(str(k), fontsize=8)
    fig.suptitle(f"first layer's {w.shape[0]} filters ({weight.shape[2]}x{weight.shape[3]})", fontsize=9)
    fig.tight_layout()
    path = folder / "filters.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(folder, batch_losses: list, history: dict, batches_per_epoch: int, X_images=None, y_true=None,
                y_pred=None, names: dict | None = None) -> list[Path]:
    """cost.png (per minibatch, and the per-epoch average), accuracy.png (train / validation per epoch),
    misclassified.png (the first 25 misclassified images titled true/predicted, in rows of up to 5 and no
    more rows than they need; `names` maps a label's str to its class name, e.g. Fashion-MNIST's). Returns the
    paths."""
    name = (lambda v: names.get(str(v), str(v))) if names else str  # noqa: E731
    plt = _pyplot()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(range(len(batch_losses)), batch_losses, lw=0.6)
    ax1.set_xlabel(f"Epochs * {batches_per_epoch}")
    ax1.set_ylabel("Cost")
    ax1.set_title("cost per minibatch")
    ax1.set_ylim(0, max(batch_losses[len(batch_losses) // 50:] or batch_losses) * 1.1)
    per_epoch = np.asarray(batch_losses[:batches_per_epoch * (len(batch_losses) // batches_per_epoch)])
    per_epoch = per_epoch.reshape(-1, batches_per_epoch).mean(axis=1)
    ax2.plot(range(1, len(per_epoch) + 1), per_epoch, color="red")
    ax2.set_xlabel("Epochs")
    ax2.set_ylabel("Cost")
    ax2.set_title("average cost per epoch")
    shown = per_epoch[1:] if len(per_epoch) > 10 else per_epoch  # as the book, keep epoch 1 from flattening the rest
    ax2.set_ylim(0, shown.max() * 1.1 if len(shown) else 1)
    fig.tight_layout()
    paths.append(folder / "cost.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = history["epoch"]
    ax.plot(epochs, history["accuracy"], label="training")
    if any(v is not None for v in history["val_accuracy"]):
        ax.plot(epochs, history["val_accuracy"], label="validation", linestyle="--")
    ax.set_xlabel("Epochs")
    ax.set_ylabel("Accuracy")
    ax.legend(loc="lower right")
    fig.tight_layout()
    paths.append(folder / "accuracy.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    if X_images is not None:
        X_images = np.asarray(X_images)
        if X_images.ndim == 4 and X_images.shape[1] == 1:  # one-channel images (N, 1, H, W)
            X_images = X_images.reshape(len(X_images), -1)
        side = int(round(math.sqrt(X_images.shape[1]))) if X_images.ndim == 2 else 0
        wrong = np.flatnonzero(np.asarray(y_true) != np.asarray(y_pred))[:25]
        if side and side * side == X_images.shape[1] and wrong.size:
            rows = math.ceil(wrong.size / 5)  # up to 5 columns, the grid as small as the images shown
            cols = math.ceil(wrong.size / rows)
            fig, axes = plt.subplots(rows, cols, sharex=True, sharey=True, figsize=(1.4 * cols, 1.5 * rows),
                                     squeeze=False)
            for k, ax in enumerate(axes.ravel()):
                ax.set_xticks([])
                ax.set_yticks([])
                if k >= wrong.size:
                    ax.axis("off")
            for k, i in enumerate(wrong):
                ax = axes.ravel()[k]
                ax.imshow(np.asarray(X_images[i]).reshape(side, side), cmap="Greys", interpolation="nearest")
                ax.set_title(f"{k + 1}) t: {name(y_true[i])}\np: {name(y_pred[i])}" if names else
                             f"{k + 1}) t: {y_true[i]} p: {y_pred[i]}", fontsize=8 if names else 9)
            fig.tight_layout()
            paths.append(folder / "misclassified.png")
            fig.savefig(paths[-1], dpi=110)
            plt.close(fig)
    return paths
