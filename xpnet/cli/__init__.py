"""The `xpnet` command: one module per command (backends, gradcheck, parity, train, evaluate, predict,
export), `_common` (helpers several share) and `app` (the parser, main and the error mapping).
`python -m xpnet` and the console script run `xpnet.cli.app.main`."""
from .app import main

__all__ = ["main"]
