"""Models: `network` (Network: the layers and the pure training step), `sequential` (Sequential: a Network
with the estimator face: data, labels, predict, save, fit), `mlp` (the book's NeuralNetMLP) and
`presets` (the presets as data: PRESETS, one row each, and model_spec; the CNN layers; image inputs)."""
