"""Models: `network` (Network: the layers and the pure training step), `sequential` (Sequential: a Network
with the estimator face: data, labels, predict, save, fit), `mlp` (the book's NeuralNetMLP) and
`presets` (the named CNN configs and their image helpers)."""
