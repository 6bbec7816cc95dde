"""``arbkit simulate`` and ``arbkit record``: the exchange simulator and live recording into the store.

``record`` reads the feeds from the configuration (``exchanges.<venue>.ws_url`` and ``symbols``), or, with
``--from-simulator SRC``, starts the built-in simulator on loopback over the store ``SRC`` and records what it
streams: the same bytes and parsers as a live session, with no network, so ``arbkit record`` then
``arbkit backtest`` can be tried anywhere.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from collections.abc import Mapping

    import polars as pl

    from live.connector import ConnectorConfig
    from live.record import RecordSummary
    from live.simulator import SimulatorHandle

__all__ = ["record_from_simulator", "register"]

StoreOpt = Annotated[Path, typer.Option("--store", help="Parquet store directory.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]


def simulate(
    store: StoreOpt,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 picks a free one).")] = 8765,
    speed: Annotated[float, typer.Option(help="Replay speed-up; 0 = as fast as possible.")] = 1.0,
    venues: Annotated[str | None, typer.Option(help="Comma-separated venues to serve (default: all).")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    once: Annotated[bool, typer.Option("--once", help="Replay once instead of looping.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Serve each venue's public stream protocol on loopback, replaying the store."""
    from arbkit_cli.main import CliError, _csv, _emit_json, out
    from live.simulator import run_simulator

    if not store.is_dir():
        raise CliError(f"--store: {store} is not a directory")
    if speed < 0:
        raise CliError(f"--speed must be >= 0, got {speed}")

    def ready(handle: SimulatorHandle) -> None:
        if as_json:
            return
        out.print(f"simulator on {handle.base_url} (speed {speed:g}x); paths:")
        for path in handle.paths:
            out.print(f"  {handle.base_url}{path}  {len(handle.symbols(path))} symbols")

    stats = run_simulator(
        store, "127.0.0.1", port, speed, _csv(venues), loop=not once, duration_s=duration, on_ready=ready
    )
    payload = {path: _as_dict(s) for path, s in stats.items()}
    if as_json:
        _emit_json(payload)
    else:
        out.print(f"served: { {p: d.get('messages', d) for p, d in payload.items()} }")


def _as_dict(stats: Any) -> dict[str, Any]:
    import dataclasses

    if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        return dataclasses.asdict(stats)
    return dict(vars(stats))


def _feeds_from_settings(config: Path | None) -> list[ConnectorConfig]:
    import os

    from arbkit.config import load_settings
    from arbkit_cli.main import CliError
    from live.connector import ConnectorConfig

    settings = load_settings(config, env=os.environ)
    feeds = []
    for venue, ex in settings.exchanges.items():
        if not ex.enabled or not ex.symbols:
            continue
        if ex.ws_url is None:
            raise CliError(f"exchanges.{venue}.ws_url: needed to record {venue} (or use --from-simulator)")
        spot = tuple(s for s in ex.symbols if ":" not in s)
        derivs = tuple(s for s in ex.symbols if ":" in s)
        for symbols, market in ((spot, "spot"), (derivs, "linear")):
            if symbols:
                feeds.append(
                    ConnectorConfig(
                        venue,
                        ex.ws_url,
                        symbols,
                        market=market if venue in ("binance", "bybit") else None,
                        rest_url=ex.rest_url,
                    )
                )
    if not feeds:
        raise CliError("no feed to record: give exchanges.<venue>.symbols and ws_url in --config, or --from-simulator")
    return feeds


def _feeds_from_simulator(handle: SimulatorHandle) -> list[ConnectorConfig]:
    from live.connector import ConnectorConfig

    feeds = []
    for path in handle.paths:
        parts = path.strip("/").split("/")
        venue, market = parts[0], (parts[1] if len(parts) > 1 else None)
        symbols = tuple(sorted(handle.symbols(path)))
        if symbols:
            rest = handle.rest_url(venue, market) if venue == "binance" else None
            feeds.append(ConnectorConfig(venue, handle.base_url + path, symbols, market=market, rest_url=rest))
    return feeds


def record_from_simulator(
    source: Path | Mapping[str, pl.DataFrame], store: Path, *, duration_s: float, speed: float, loop: bool = True
) -> RecordSummary:
    """The built-in simulator replays ``source`` (a store, or its tables' frames) on loopback, event times stamped
    at send, and every venue's feed is recorded into ``store`` for ``duration_s`` seconds (what ``arbkit record
    --from-simulator`` and the demo run); ``loop=False`` replays ``source`` once."""
    from live.record import record as record_feeds
    from live.runtime import run
    from live.simulator import serve

    async def start_together(handle: SimulatorHandle) -> None:
        # Every venue's replay starts at once, when all feeds have asked to subscribe (or after 5 s whatever
        # happened): started one by one, each venue's clock would be offset by its connection time, which moves
        # cross-venue moments (what cross-exchange detection looks at) apart by seconds of market time.
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and any(s.requests == 0 for s in handle.stats().values()):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # a feed's remaining subscribe requests
        handle.start()

    async def main() -> RecordSummary:
        async with await serve(source, speed=speed, loop=loop, restamp_event_time=True, autostart=False) as handle:
            starter = asyncio.create_task(start_together(handle))
            try:
                return await record_feeds(_feeds_from_simulator(handle), store, duration_s=duration_s)
            finally:
                starter.cancel()

    return run(main())


def record(
    store: StoreOpt,
    config: Annotated[Path | None, typer.Option("--config", help="Settings file with the feeds.")] = None,
    duration: Annotated[float, typer.Option(help="Seconds to record.")] = 10.0,
    from_simulator: Annotated[
        Path | None, typer.Option("--from-simulator", help="Record the built-in simulator replaying this store.")
    ] = None,
    speed: Annotated[float, typer.Option(help="Simulator replay speed-up (with --from-simulator).")] = 1.0,
    as_json: JsonOpt = False,
) -> None:
    """Record live feeds into the store, in the layout the backtester reads."""
    from arbkit_cli.main import CliError, _emit_json, _print_info, out
    from live.record import record as record_feeds

    if duration <= 0:
        raise CliError(f"--duration must be > 0, got {duration}")

    if from_simulator is None:
        from live.runtime import run

        summary = run(record_feeds(_feeds_from_settings(config), store, duration_s=duration))
    else:
        if not from_simulator.is_dir():
            raise CliError(f"--from-simulator: {from_simulator} is not a directory")
        summary = record_from_simulator(from_simulator, store, duration_s=duration, speed=speed)
    payload = summary.to_dict()
    if as_json:
        _emit_json(payload)
        return
    out.print(f"recorded {sum(payload['rows'].values()):,} rows in {payload['duration_s']:.1f}s: {payload['rows']}")
    _print_info(store)


def register(app: typer.Typer) -> None:
    """Add ``simulate`` and ``record`` to ``app``."""
    app.command("simulate")(simulate)
    app.command("record")(record)
