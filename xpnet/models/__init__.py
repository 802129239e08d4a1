"""Models: `sequential` (Sequential, the network and the estimator), `mlp` (the book's NeuralNetMLP) and
`presets` (the presets as data: PRESETS, one row each, and model_spec; the CNN layers; image inputs)."""
