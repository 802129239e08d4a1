"""xpnet's error types, in a module that imports nothing, so every module can raise them."""


class InputError(ValueError):
    """Bad data or arguments, caught before any training step; the message says what was expected, what
    came and how to fix it."""
