"""The `xpnet` command: `app` (the parser, main and the small commands: backends, gradcheck, parity, export)
and `train` (train, evaluate, predict). `python -m xpnet` and the console script run `xpnet.cli.app.main`."""
from .app import main

__all__ = ["main"]
