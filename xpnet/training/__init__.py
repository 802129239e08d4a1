"""Training: the loop (`loop`: fit, evaluate), its step strategies (`steps`), batch sources (`sources`:
ShuffledEpochs, IndexBatches, RandomBatches; datasets in place of arrays), callbacks (`callbacks`: Callback,
EarlyStopping, ProgressBar, ModelCheckpoint) and state (`state`: TrainState, the history). The training errors are xpnet.errors' (also importable from here).
`xpnet.training.fit` and the other names of the former xpnet/training.py stay here."""
from .callbacks import Callback, ModelCheckpoint, ProgressBar
from .loop import (CALLBACK_HOOKS, EarlyStopping, OutOfMemory, TrainingDiverged, TrainingInterrupted, batch_bounds,
                   check_callbacks, epoch_figures, epoch_line, evaluate, fit)
from .prefetch import PrefetchError
from .sources import BatchSource, IndexBatches, RandomBatches, ShuffledEpochs
from .state import HISTORY_KEYS, STEP_HISTORY_KEYS, TrainState, empty_history
from .steps import CompiledStep, DataParallelStep, DatasetStep, EagerStep

__all__ = ["CALLBACK_HOOKS", "BatchSource", "Callback", "CompiledStep", "DataParallelStep", "DatasetStep",
           "EagerStep", "EarlyStopping", "HISTORY_KEYS", "IndexBatches", "ModelCheckpoint", "OutOfMemory",
           "PrefetchError", "ProgressBar", "RandomBatches", "STEP_HISTORY_KEYS", "ShuffledEpochs", "TrainState", "TrainingDiverged",
           "TrainingInterrupted",
           "batch_bounds", "check_callbacks", "empty_history", "epoch_figures", "epoch_line", "evaluate", "fit"]
