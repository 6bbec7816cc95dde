"""Importers of historical market data that people buy or download: Tardis.dev CSV exports and Binance public
data (data.binance.vision).  Files are streamed in chunks (plain, gzip or zip), venue symbols are mapped to
unified ones, every row is validated against :mod:`arbkit.schema`, and bad rows either stop the import with an
:class:`ImportDataError` naming file, line and field, or are skipped and counted (``skip_bad=True``)."""

from arbkit.data.importers._common import ImportDataError, ImportReport, Reject, verify_checksum
from arbkit.data.importers._symbols import unify
from arbkit.data.importers.binance import import_binance
from arbkit.data.importers.tardis import TARDIS_DATA_TYPES, import_tardis

__all__ = [
    "TARDIS_DATA_TYPES",
    "ImportDataError",
    "ImportReport",
    "Reject",
    "import_binance",
    "import_tardis",
    "unify",
    "verify_checksum",
]
