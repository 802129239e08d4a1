"""Data: `datasets` (MNIST and friends, array files), `labels` (the label rule), `preprocessing` (scalers),
`validation` (input checks) and `predict_inputs` (reading the inputs of `xpnet predict`)."""
# the loaders users call, one import away: `from xpnet.data import load_digits` (as keras.datasets' loaders)
from .datasets import load_array_file, load_digits, load_mnist  # noqa: E402,F401
