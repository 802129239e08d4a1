"""Export trained models to formats other runtimes read: ONNX (`xpnet.export.onnx`, with the per-layer table in
`xpnet.export.onnx_layers`). Nothing here is imported by `import xpnet`: the ONNX libraries (the `xpnet[onnx]`
extra) load only when an export runs."""
