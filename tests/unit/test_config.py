from __future__ import annotations

from pathlib import Path

import pytest

from arbkit.config import ConfigError, build_registry, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_example_config_loads_and_overrides_fees() -> None:
    settings = load_settings(ROOT / "config" / "example.toml", env={})
    assert settings.database.backend == "duckdb"
    assert build_registry(settings).get("coinbase", "BTC/USDT").taker_fee == 0.008
    assert build_registry(settings).get("binance", "BTC/USDT").taker_fee == 0.001


def test_env_overrides_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[api]\nport = 8100\n")
    settings = load_settings(cfg, env={"ARBKIT_API__PORT": "8200", "ARBKIT_API__JWT_SECRET": "s3cret"})
    assert settings.api.port == 8200
    assert settings.api.jwt_secret is not None
    assert settings.api.jwt_secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[api]\nprot = 1\n", "api.prot: unknown key"),
        ("[risk_management]\nmax_drawdown = 2\n", "risk_management.max_drawdown"),
        ("[database]\npassword = 'x'\n", "database.password: secrets are read only from the environment"),
        ("[exchanges.okx]\napi_key = 'x'\n", "exchanges.okx.api_key: secrets are read only"),
        ("[exchanges.ftx]\nenabled = true\n", "unknown exchange(s) ['ftx']"),
        ("[database]\npool_min = 5\npool_max = 2\n", "pool_min (5) must not exceed pool_max (2)"),
        ("[api\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, env={})
    assert message in str(info.value)


def test_json_config_and_missing_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text('{"bus": {"backend": "redis"}, "redis": {"enabled": true}}')
    assert load_settings(cfg, env={}).bus.backend == "redis"
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "missing.toml", env={})


def test_settings_are_frozen() -> None:
    settings = load_settings(None, env={})
    with pytest.raises(Exception, match="frozen"):
        settings.api.port = 1  # type: ignore[misc]
