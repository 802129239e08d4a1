"""TrainState: everything a training run is, in one explicit object.

`fit`, checkpoints, resume, signal handlers and progress bars read and write this object and nothing
else: parameters, optimizer buffers, non-trained layer state (running statistics, when such layers
exist), the current learning rate and update count, the position in the run (epoch, minibatch, data
order), the host RNG, and the history. Arrays live on the model's device; the rest is host data.
"""
from __future__ import annotations

from dataclasses import dataclass, field

HISTORY_KEYS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")
# with clip_norm the history also has "grad_norm": each epoch's mean global gradient norm before clipping
GRAD_NORM = "grad_norm"
# one row per periodic evaluation (fit(eval_every=N)): the run's update count, the mean loss of the N
# minibatches before it, the validation figures and the learning rate
STEP_HISTORY_KEYS = ("step", "loss", "val_loss", "val_accuracy", "lr")


def empty_history() -> dict:
    return {k: [] for k in HISTORY_KEYS}


def empty_step_history() -> dict:
    return {k: [] for k in STEP_HISTORY_KEYS}


@dataclass
class TrainState:
    params: dict                      # "layers.<i>.<name>" -> array, in layer order
    opt_state: dict                   # parameter name -> {buffer name: array}
    rng: object                       # the host generator: weights, shuffles, dropout draws
    lr: float                         # the current (scheduled) learning rate
    layer_state: dict = field(default_factory=dict)   # non-trained layer arrays (e.g. running statistics)
    step: int = 0                     # optimizer updates so far (Adam's t); counts updates, not micro-batches
    epoch: int = 0                    # finished epochs of the current fit
    batch: int = 0                    # finished minibatches of the current epoch
    order: object = None              # host index order of the current epoch (None: not shuffled)
    settings: dict | None = None      # the current fit's settings, what a resume continues with
    history: dict = field(default_factory=empty_history)
    step_history: dict = field(default_factory=empty_step_history)  # fit(eval_every=N)'s rows (STEP_HISTORY_KEYS)
    batch_losses: list = field(default_factory=list)    # every finished minibatch's loss (the book's cost_)
    partial_losses: list = field(default_factory=list)  # this epoch's losses so far (device scalars)
    partial_correct: object = 0.0     # this epoch's correct predictions so far (device scalar or float)
    partial_grad_norms: list = field(default_factory=list)  # with clip_norm: this epoch's pre-clip global
                                                            # gradient norms so far (device scalars)
    grad_norm: object = None          # with clip_norm: the last update's global gradient norm before clipping
    stop_requested: bool = False      # set (e.g. by a signal handler) to stop after the current step
    grads: dict | None = None         # the last update's gradients (for inspection; not saved in checkpoints)
    native_rng: object = None         # the backend's own generator (Dropout(host_rng=False)), seeded from the
                                      # model's seed at the first draw; its state is checkpointed where it can be
    loss_scale: dict | None = None    # mixed precision with float16: {"scale", "good"} device scalars (float32),
                                      # the dynamic loss scale and its clean steps (xpnet.precision.LossScale)
    settle: object = None             # set by fit during an epoch: brings partial_correct up to date, so a
                                      # checkpoint written inside an epoch resumes exactly (not saved)

    def position(self) -> str:
        return f"epoch {self.epoch + 1}, step {self.batch}"
