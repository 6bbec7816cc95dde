"""Typed, frozen settings: one model for the whole engine, read from TOML/JSON and ``ARBKIT_`` variables.

Sections mirror the configuration schema of the engine: ``system``, ``database``, ``redis``, ``bus``, ``api``,
``exchanges``, ``risk_management``, ``monitoring`` (plus ``detection`` and ``execution`` for the strategy side).
Unknown keys are rejected, and every error names the offending key path (``api.port``).

Only entry points (the CLI and the API's app factory) read files and the environment: they call
:func:`load_settings` with the path and ``os.environ``; library code receives a :class:`Settings` object.

Environment overrides use ``ARBKIT_<SECTION>__<KEY>`` (double underscore between levels), e.g.
``ARBKIT_API__PORT=9000`` or ``ARBKIT_EXCHANGES__BINANCE__ENABLED=false``; values are parsed as JSON when they
parse (numbers, booleans, lists), else taken as strings.  **Secrets** (passwords, JWT secret, API keys) are
accepted only from the environment: a secret in a file is an error, so it can never be committed by accident.

Examples
--------
>>> s = load_settings(None, env={"ARBKIT_API__PORT": "9100"})
>>> s.api.port, s.database.backend
(9100, 'duckdb')
>>> load_settings(None, env={"ARBKIT_API__PROT": "1"})
Traceback (most recent call last):
...
arbkit.config.ConfigError: api.prot: unknown key (from ARBKIT_API__PROT)
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

if TYPE_CHECKING:
    from arbkit.instruments import Registry

__all__ = [
    "ApiSettings",
    "BusSettings",
    "ConfigError",
    "DatabaseSettings",
    "DetectionSettings",
    "ExchangeSettings",
    "ExecutionSettings",
    "MonitoringSettings",
    "RedisSettings",
    "RiskSettings",
    "Settings",
    "SystemSettings",
    "build_registry",
    "load_settings",
]

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(gt=0, lt=1)]
Port = Annotated[int, Field(ge=0, le=65535)]
Bps = Annotated[float, Field(ge=-100, le=500, description="basis points")]

ENV_PREFIX = "ARBKIT_"

#: Key paths that may only come from the environment.
SECRET_KEYS: frozenset[str] = frozenset(
    {"database.password", "redis.password", "api.jwt_secret", "exchanges.*.api_key", "exchanges.*.api_secret"}
)


class ConfigError(ValueError):
    """Bad configuration: names the key path and where the value came from."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SystemSettings(_Model):
    name: str = "arbkit"
    environment: Literal["development", "staging", "production", "test"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    data_dir: Path = Path("data")
    store: Path = Path("data/store")
    paper_trading: bool = True


class DatabaseSettings(_Model):
    backend: Literal["duckdb", "postgresql"] = "duckdb"
    duckdb_path: Path = Path("data/arbkit.duckdb")
    host: str = "127.0.0.1"
    port: Port = 5432
    database: str = "test"
    user: str = "postgres"
    password: SecretStr | None = None
    pool_min: int = Field(1, ge=1)
    pool_max: int = Field(10, ge=1)

    @model_validator(mode="after")
    def _pool(self) -> DatabaseSettings:
        if self.pool_min > self.pool_max:
            raise ValueError(f"pool_min ({self.pool_min}) must not exceed pool_max ({self.pool_max})")
        return self

    def dsn(self) -> str:
        auth = self.user
        if self.password is not None:
            auth += ":" + self.password.get_secret_value()
        return f"postgresql://{auth}@{self.host}:{self.port}/{self.database}"


class RedisSettings(_Model):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: Port = 6379
    db: int = Field(0, ge=0)
    password: SecretStr | None = None
    key_prefix: str = "arbkit:"

    def url(self) -> str:
        auth = f":{self.password.get_secret_value()}@" if self.password is not None else ""
        return f"redis://{auth}{self.host}:{self.port}/{self.db}"


class BusSettings(_Model):
    backend: Literal["inprocess", "redis"] = "inprocess"
    stream_prefix: str = "arbkit:stream:"
    consumer_group: str = "engine"
    max_len: int = Field(100_000, ge=1000)


class ApiSettings(_Model):
    host: str = "127.0.0.1"
    port: Port = 8000
    jwt_secret: SecretStr | None = None
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    token_expiry_s: int = Field(3600, gt=0)
    rate_limit_per_minute: int = Field(600, gt=0)
    cors_origins: tuple[str, ...] = ()


class ExchangeSettings(_Model):
    enabled: bool = True
    markets: tuple[Literal["spot", "swap", "future", "option"], ...] = ("spot",)
    symbols: tuple[str, ...] = ()
    ws_url: str | None = None
    rest_url: str | None = None
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    maker_fee: float | None = Field(None, ge=-0.01, le=0.05)
    taker_fee: float | None = Field(None, ge=0, le=0.05)
    latency_ms: PositiveFloat | None = None
    max_age_ms: PositiveFloat | None = None
    rate_limit_per_s: PositiveFloat = 10.0


def _default_exchanges() -> dict[str, ExchangeSettings]:
    return {
        "binance": ExchangeSettings(markets=("spot", "swap")),
        "okx": ExchangeSettings(markets=("spot", "swap")),
        "bybit": ExchangeSettings(markets=("spot", "swap")),
        "coinbase": ExchangeSettings(markets=("spot",)),
        "kraken": ExchangeSettings(markets=("spot",)),
        "deribit": ExchangeSettings(markets=("swap", "future", "option")),
    }


class RiskSettings(_Model):
    max_var: PositiveFloat = 50_000.0
    var_confidence: Fraction = 0.99
    max_leverage: PositiveFloat = 3.0
    max_concentration: Annotated[float, Field(gt=0, le=1)] = 0.4
    max_drawdown: Annotated[float, Field(gt=0, le=1)] = 0.2
    stop_loss: Annotated[float, Field(gt=0, le=1)] = 0.05
    max_position_notional: PositiveFloat = 250_000.0
    max_venue_notional: PositiveFloat = 1_000_000.0


class DetectionSettings(_Model):
    pipelines: tuple[str, ...] = ("cross_exchange", "triangular", "basis", "options_parity")
    min_profit: NonNegativeFloat = 0.0
    max_notional: PositiveFloat = 50_000.0
    clock: Literal["ts_recv", "ts_event"] = "ts_recv"


class ExecutionSettings(_Model):
    latency_ms: NonNegativeFloat = 20.0
    latency_jitter_ms: NonNegativeFloat = 5.0
    initial_balances: dict[str, float] = Field(default_factory=lambda: {"USDT": 100_000.0, "BTC": 1.0, "ETH": 10.0})


class MonitoringSettings(_Model):
    prometheus: bool = True
    metrics_path: str = "/metrics"
    log_format: Literal["text", "json"] = "text"
    stale_alert_s: PositiveFloat = 5.0


class Settings(_Model):
    """The whole engine's configuration; every section has working embedded defaults."""

    system: SystemSettings = SystemSettings()
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    bus: BusSettings = BusSettings()
    api: ApiSettings = ApiSettings()
    exchanges: dict[str, ExchangeSettings] = Field(default_factory=_default_exchanges)
    risk_management: RiskSettings = RiskSettings()
    detection: DetectionSettings = DetectionSettings()
    execution: ExecutionSettings = ExecutionSettings()
    monitoring: MonitoringSettings = MonitoringSettings()

    @model_validator(mode="after")
    def _known_venues(self) -> Settings:
        from arbkit.instruments import VENUES

        unknown = sorted(set(self.exchanges) - set(VENUES))
        if unknown:
            raise ValueError(f"unknown exchange(s) {unknown}; supported: {list(VENUES)}")
        if self.bus.backend == "redis" and not self.redis.enabled:
            raise ValueError("bus.backend 'redis' needs redis.enabled = true")
        return self


def _is_secret(path: tuple[str, ...]) -> bool:
    dotted = ".".join(path)
    if dotted in SECRET_KEYS:
        return True
    return len(path) == 3 and path[0] == "exchanges" and f"exchanges.*.{path[2]}" in SECRET_KEYS


def _walk_secrets(data: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> None:
    for key, value in data.items():
        path = (*prefix, str(key))
        if _is_secret(path):
            raise ConfigError(
                f"{'.'.join(path)}: secrets are read only from the environment "
                f"(set {ENV_PREFIX}{'__'.join(p.upper() for p in path)})"
            )
        if isinstance(value, Mapping):
            _walk_secrets(value, path)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'TOML'}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a table/object")
    return data


def _env_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """Merge ARBKIT_ variables into ``data``; returns key path -> variable name for error messages."""
    origin: dict[str, str] = {}
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in ("ARBKIT_CONFIG",):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not parts:
            continue
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{'.'.join(parts)}: {name} nests under a non-table value")
            node = child
        node[parts[-1]] = _env_value(env[name])
        origin[".".join(parts)] = name
    return origin


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from an optional TOML/JSON file, then ``ARBKIT_`` variables on top.

    Raises :class:`ConfigError` with the key path of the first problem and where it came from.
    """
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        data = _read_file(path)
        _walk_secrets(data)
        source = str(path)
    origin = _apply_env(data, env or {})
    exchanges = data.get("exchanges")
    if isinstance(exchanges, dict):
        # A venue named in the file or environment overrides that venue's defaults key by key; venues not named keep
        # theirs (disable one with ``enabled = false``).
        defaults = {k: v.model_dump(exclude_none=True) for k, v in _default_exchanges().items()}
        data["exchanges"] = {
            **defaults,
            **{k: {**defaults.get(k, {}), **v} if isinstance(v, dict) else v for k, v in exchanges.items()},
        }
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        where = origin.get(loc, source)
        if err["type"] == "extra_forbidden":
            raise ConfigError(f"{loc}: unknown key (from {where})") from None
        msg = err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{loc or '<root>'}: {msg} (from {where})") from None


def build_registry(settings: Settings) -> Registry:
    """The default instrument registry with the configured per-venue fee, latency and staleness overrides."""
    from arbkit.instruments import InstrumentKind, VenueProfile, default_registry

    registry = default_registry()
    for venue, ex in settings.exchanges.items():
        if ex.maker_fee is not None or ex.taker_fee is not None:
            for kind in ex.markets:
                current = registry.fees.get((venue, InstrumentKind(kind)))
                if current is None:
                    raise ConfigError(f"exchanges.{venue}.markets: {venue} does not list {kind} markets")
                maker = ex.maker_fee if ex.maker_fee is not None else current[0]
                taker = ex.taker_fee if ex.taker_fee is not None else current[1]
                registry = registry.with_fees(venue, kind, maker=maker, taker=taker)
        if ex.latency_ms is not None or ex.max_age_ms is not None:
            base = registry.profile(venue)
            registry = registry.with_profile(
                VenueProfile(
                    venue,
                    latency_ms=ex.latency_ms if ex.latency_ms is not None else base.latency_ms,
                    max_age_ms=ex.max_age_ms if ex.max_age_ms is not None else base.max_age_ms,
                    funding_interval_hours=base.funding_interval_hours,
                )
            )
    return registry
