"""Exchange simulator: each venue's public WebSocket protocol on loopback, fed from Parquet or frames.

It is the demo's default feed and the target of every live test, so no test touches the internet.  See
:func:`serve` for paths, speeds and the control channel, and :meth:`SimulatorHandle.inject` for faults.
"""

from live.simulator._encoders import (
    ENCODERS,
    BookSnapshot,
    Encoder,
    SessionState,
    Tick,
    format_number,
    kraken_checksum,
    okx_checksum,
    row_market,
)
from live.simulator._server import FAULTS, FeedStats, SimulatorHandle, run_simulator, serve

__all__ = [
    "ENCODERS",
    "FAULTS",
    "BookSnapshot",
    "Encoder",
    "FeedStats",
    "SessionState",
    "SimulatorHandle",
    "Tick",
    "format_number",
    "kraken_checksum",
    "okx_checksum",
    "row_market",
    "run_simulator",
    "serve",
]
