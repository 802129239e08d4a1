"""Data: `datasets` (MNIST and friends, array files), `labels` (the label rule), `preprocessing` (scalers),
`validation` (input checks) and `predict_inputs` (reading the inputs of `xpnet predict`)."""
