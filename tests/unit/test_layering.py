"""Dependencies point one way: the HTTP surface (api/) sits on top, and nothing below imports it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import heimdall

PACKAGE = Path(heimdall.__file__).parent


def heimdall_imports(path: Path) -> set[str]:
    """Every heimdall module a file imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("heimdall"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("heimdall"))
    return names


def modules(under: str = "") -> list[Path]:
    return sorted((PACKAGE / under).rglob("*.py"))


def name(path: Path) -> str:
    return str(path.relative_to(PACKAGE))


# server.py is the uvicorn entry point: it serves the app, as functions/api/app.py does in Lambda.
BELOW_THE_API = [p for p in modules() if not name(p).startswith("api/") and name(p) != "server.py"]


@pytest.mark.parametrize("path", BELOW_THE_API, ids=name)
def test_nothing_below_the_http_surface_imports_it(path: Path) -> None:
    assert not {m for m in heimdall_imports(path) if m.startswith("heimdall.api")}


@pytest.mark.parametrize("path", modules("core"), ids=name)
def test_core_imports_nothing_of_heimdall_but_core(path: Path) -> None:
    assert all(m.startswith("heimdall.core") for m in heimdall_imports(path))
