"""arbkit: synthetic arbitrage detection, from notebook research to a live engine, on one pipeline.

The library layer: schemas, instruments, configuration, market data (generator, Parquet store, importers),
alignment, the pipeline contract, detectors, the JAX pricing engine, the risk engine and the shared fill model.
It imports no I/O client and nothing from the layers above it (``pipelines``, ``backtest``, ``live``).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("arbkit")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
