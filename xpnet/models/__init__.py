"""Models: `sequential` (Sequential, the network and the estimator), `mlp` (the book's NeuralNetMLP) and
`presets` (the named CNN configs and their image helpers)."""
