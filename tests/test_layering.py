"""The import graph keeps its layers (README, Layout).

Every module under src/prefect_pipelines is parsed with `ast`, and every import it makes
counts: at module top, inside functions, under TYPE_CHECKING. The translator is pure and
imports only itself, errors and the vocabulary; services/ and api/ never reach into the
flow or the worker, which run on another machine.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "prefect_pipelines"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted((SRC / PACKAGE).rglob("*.py"))}


def _imports(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import of ours in a module, wherever it sits."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                # `from prefect_pipelines import flows` imports the module flows.
                name = f"{base}.{alias.name}"
                found.append((node.lineno, name if name in MODULES else base))
    return sorted({(line, name) for line, name in found if _within(name, PACKAGE)})


def _within(name: str, *prefixes: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


# layer -> (the modules it holds, what of ours it may not import, or None: what it may)
RULES = {
    "translator/ imports only translator/, errors and vocabulary": (
        f"{PACKAGE}.translator",
        lambda name: not _within(name, f"{PACKAGE}.translator", f"{PACKAGE}.errors",
                                 f"{PACKAGE}.vocabulary"),
    ),
    "forges/ imports only forges/, translator/, errors and vocabulary": (
        f"{PACKAGE}.forges",
        lambda name: not _within(name, f"{PACKAGE}.forges", f"{PACKAGE}.translator",
                                 f"{PACKAGE}.errors", f"{PACKAGE}.vocabulary"),
    ),
    "services/ imports neither flows/ nor worker.py": (
        f"{PACKAGE}.services",
        lambda name: _within(name, f"{PACKAGE}.flows", f"{PACKAGE}.worker"),
    ),
    "api/ imports neither flows/ nor worker.py": (
        f"{PACKAGE}.api",
        lambda name: _within(name, f"{PACKAGE}.flows", f"{PACKAGE}.worker"),
    ),
}


@pytest.mark.parametrize("rule", list(RULES))
def test_layers(rule: str) -> None:
    layer, forbidden = RULES[rule]
    offences = [
        f"{module} (line {line}) imports {name}"
        for module, path in MODULES.items() if _within(module, layer)
        for line, name in _imports(module, path) if forbidden(name)
    ]
    assert not offences, f"{rule}, but:\n  " + "\n  ".join(offences)


def test_every_module_is_seen() -> None:
    """The walk finds the layers it checks (a moved src/ would pass every rule silently)."""
    for layer, _ in RULES.values():
        assert any(_within(module, layer) for module in MODULES), layer
