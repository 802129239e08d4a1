"""xpnet's error types, all of them, in a module that imports nothing, so every module can raise them.

The modules that raised them first still give them under their old names (`xpnet.training.TrainingInterrupted`,
`xpnet.backend.BackendError`, `xpnet.data.datasets.DataError`, ...): the same class objects, imported from here.
"""


class InputError(ValueError):
    """Bad data or arguments, caught before any training step; the message says what was expected, what
    came and how to fix it.

    An error about one keyword argument says so in two fields as well as in its message: `argument`, the
    keyword ("batch_size"), and `detail`, what follows "batch_size=" in the message ("0: must be a positive
    integer"). Make it with `InputError.for_argument("batch_size", "0: must be a positive integer")`, which
    writes the message "batch_size=0: must be a positive integer". The command line reads the two fields
    (never the message) to name the flag that set the keyword instead: "--batch-size 0: must be a positive
    integer" (`xpnet.cli.app.as_flags`). Both are None for any other error."""

    def __init__(self, *args, argument: str | None = None, detail: str | None = None):
        super().__init__(*args)
        self.argument, self.detail = argument, detail

    @classmethod
    def for_argument(cls, argument: str, detail: str):
        """The error '{argument}={detail}' about the keyword `argument` (an instance of cls: InputError,
        DataError, ...)."""
        return cls(f"{argument}={detail}", argument=argument, detail=detail)


class DataError(InputError):
    """A data file that is missing, unreadable, corrupt or of the wrong kind; the message names it."""


class CheckpointError(InputError):
    """A checkpoint that cannot be read or used; the message names the file."""


class BackendError(ValueError):
    """A backend, device or dtype that cannot be used here; the message says how to fix it."""


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite."""


class OutOfMemory(MemoryError):
    """The device (or host) ran out of memory; the message says what to make smaller."""


class TrainingInterrupted(Exception):
    """Training stopped between two steps at the user's request (model.stop_requested); the model holds
    the state after the last finished step, ready to save and resume. epoch (from 1), step (from 1) and
    steps (the epoch's) say where; `where` in words: 'in epoch 3, after step 610 of 625', or 'after the
    last step of epoch 3 (625 of 625)' (the epoch's figures are then computed on resuming)."""

    def __init__(self, epoch: int, step: int, steps: int):
        self.epoch, self.step, self.steps = epoch, step, steps
        self.where = (f"after the last step of epoch {epoch} ({step} of {steps})" if step == steps else
                      f"in epoch {epoch}, after step {step} of {steps}")
        super().__init__(f"stopped {self.where}")


class PrefetchError(RuntimeError):
    """A background reader of fit(prefetch=N) failed to read or stage a minibatch's rows; the message names
    the epoch and step, and the reader's own exception is the `__cause__` (raised from it), with its traceback.
    The model's state is that of the last step before it, as when the read fails without prefetch."""


class DistributedError(RuntimeError):
    """Ranks that cannot train together (a failed NCCL set-up, a rank that is gone)."""
