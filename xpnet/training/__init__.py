"""Training: the loop (`loop`: fit, evaluate), its callbacks (`callbacks`: Callback, EarlyStopping) and its state
(`state`: TrainState, the history). The training errors are xpnet.errors' (also importable from here).
`xpnet.training.fit` and the other names of the former xpnet/training.py stay here."""
from .callbacks import Callback
from .loop import (CALLBACK_HOOKS, EarlyStopping, OutOfMemory, TrainingDiverged, TrainingInterrupted, batch_bounds,
                   check_callbacks, epoch_figures, epoch_line, evaluate, fit)
from .state import HISTORY_KEYS, TrainState, empty_history

__all__ = ["CALLBACK_HOOKS", "Callback", "EarlyStopping", "HISTORY_KEYS", "OutOfMemory", "TrainState", "TrainingDiverged",
           "TrainingInterrupted", "batch_bounds", "check_callbacks", "empty_history", "epoch_figures", "epoch_line",
           "evaluate", "fit"]
