"""The layering rule of DESIGN.md section 2, enforced on the source so it cannot erode.

`arbkit/` (the library) imports neither the layers above it nor any I/O client; `pipelines/` imports only the
library; `backtest/` and `live/` import the library and pipelines; `api/` may import all of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IO_CLIENTS = {"redis", "asyncpg", "fastapi", "websockets", "uvicorn", "httpx", "starlette", "aiohttp", "requests"}
LAYERS = {"arbkit", "pipelines", "backtest", "live", "api"}
ALLOWED = {
    "arbkit": set(),
    "pipelines": {"arbkit"},
    "backtest": {"arbkit", "pipelines"},
    "live": {"arbkit", "pipelines"},
    "api": {"arbkit", "pipelines", "backtest", "live"},
}
FORBIDDEN_CLIENTS = {"arbkit": IO_CLIENTS, "pipelines": IO_CLIENTS, "backtest": IO_CLIENTS - {"httpx"}}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def violations(package: str, root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted((root / package).rglob("*.py")):
        for line, module in _imports(path):
            top = module.split(".")[0]
            if top in LAYERS and top != package and top not in ALLOWED[package]:
                found.append(f"{path.relative_to(root)}:{line} imports {module} (layer {package} may not)")
            if top in FORBIDDEN_CLIENTS.get(package, set()):
                found.append(f"{path.relative_to(root)}:{line} imports I/O client {module}")
    return found


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_layers_import_only_downwards(package: str) -> None:
    assert violations(package) == []


def test_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    (tmp_path / "arbkit").mkdir()
    (tmp_path / "arbkit" / "mod.py").write_text("import redis\nfrom pipelines import get\nfrom arbkit import schema\n")
    assert violations("arbkit", tmp_path) == [
        "arbkit/mod.py:1 imports I/O client redis",
        "arbkit/mod.py:2 imports pipelines (layer arbkit may not)",
    ]
