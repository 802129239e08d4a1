"""Tools around the library: `gradcheck`, `parity` (backends against NumPy), `testing` (the pytest plugin)
and `plots`."""
