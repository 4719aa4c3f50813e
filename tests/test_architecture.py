"""The package's shape, read from its source (docs/architecture.md says why it is this way).

Every import of every module of `cursorshare` is read with `ast`, wherever it is written (at
the top, inside a function, under ``TYPE_CHECKING``), and resolved to the module it names.
From that graph: no import circles; the protocol layer imports nothing outside itself; the hub
and the backplanes import neither the protocol layer nor the cursor app; the runtime package
never imports the comparison tooling (`benchmarks/`). Also: the hub and the backplanes never
name a cursor field, no module is over 400 lines, and the options path carries no
``type: ignore``.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import cursorshare

PACKAGE = Path(cursorshare.__file__).resolve().parent
ROOT = PACKAGE.parent
MAX_MODULE_LINES = 400

#: What a cursor carries (cursorshare/cursors/messages.py); the hub and backplanes treat a
#: member's state as opaque, so none of these may appear in them as a key or a string.
CURSOR_FIELDS = frozenset({"x", "y", "color", "name", "px"})


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _tree(module: str) -> ast.Module:
    return ast.parse(modules()[module].read_text(encoding="utf-8"), str(modules()[module]))


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` names (its base, before the names)."""
    if node.level == 0:
        return node.module or ""
    is_package = modules()[module].name == "__init__.py"
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(module: str) -> Iterator[str]:
    """Every module ``module`` imports: package submodules when a name is one, else the base."""
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield sub if sub in modules() else base


@cache
def graph() -> dict[str, frozenset[str]]:
    """Module -> the modules of the package it imports."""
    return {
        module: frozenset(target for target in imports_of(module) if target in modules())
        for module in modules()
    }


def cycles(edges: dict[str, frozenset[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module, or a self-import."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan; the package is small enough for recursion
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in edges[node]:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _under(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def imports_from(packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Module of ``packages`` -> every module it imports (of the package or not)."""
    return {module: set(imports_of(module)) for module in modules() if _under(module, *packages)}


# -- the finder itself, on made-up modules ------------------------------------------------------


def test_cycles_finds_a_circle_and_nothing_else() -> None:
    edges = {
        "a": frozenset({"b"}),
        "b": frozenset({"c"}),
        "c": frozenset({"a"}),
        "d": frozenset({"a"}),
        "e": frozenset({"e"}),
    }
    assert sorted(cycles(edges)) == [["a", "b", "c"], ["e"]]
    assert cycles({"a": frozenset({"b"}), "b": frozenset()}) == []


def test_relative_imports_resolve_to_modules_of_the_package() -> None:
    assert "cursorshare.sockjs.session" in graph()["cursorshare.sockjs.manager"]
    assert "cursorshare.sockjs.frames" in graph()["cursorshare.sockjs"]  # `from . import frames`
    assert "cursorshare.hub" in graph()["cursorshare.cursors.app"]  # `from ..hub import ...`


# -- the package ---------------------------------------------------------------------------------


def test_there_are_no_import_circles() -> None:
    assert cycles(graph()) == []


def test_the_protocol_layer_imports_nothing_outside_itself() -> None:
    outside = {
        module: sorted(
            t for t in targets if _under(t, "cursorshare") and not _under(t, "cursorshare.sockjs")
        )
        for module, targets in imports_from(("cursorshare.sockjs",)).items()
    }
    assert {m: t for m, t in outside.items() if t} == {}


def test_the_hub_and_backplanes_import_neither_transports_nor_cursors() -> None:
    forbidden = (
        "cursorshare.sockjs",
        "cursorshare.cursors",
        "cursorshare.server",
        "cursorshare.config",
        "cursorshare.httpguard",
        "aiohttp",
    )
    found = {
        module: sorted(t for t in targets if _under(t, *forbidden))
        for module, targets in imports_from(("cursorshare.hub", "cursorshare.backplanes")).items()
    }
    assert {m: t for m, t in found.items() if t} == {}
    hub_to_backplanes = {
        module: sorted(t for t in targets if _under(t, "cursorshare.backplanes"))
        for module, targets in imports_from(("cursorshare.hub",)).items()
    }
    assert {m: t for m, t in hub_to_backplanes.items() if t} == {}


def cursor_field_strings(module: str) -> list[tuple[int, str]]:
    return [
        (node.lineno, node.value)
        for node in ast.walk(_tree(module))
        if isinstance(node, ast.Constant) and node.value in CURSOR_FIELDS
    ]


def test_the_hub_and_backplanes_name_no_cursor_field() -> None:
    found = {
        module: cursor_field_strings(module)
        for module in modules()
        if _under(module, "cursorshare.hub", "cursorshare.backplanes")
    }
    assert {m: f for m, f in found.items() if f} == {}
    # The check does find them where they belong.
    assert cursor_field_strings("cursorshare.cursors.messages")


def test_the_runtime_package_never_imports_the_comparison_tooling() -> None:
    found = {
        module: sorted(t for t in targets if _under(t, "benchmarks", "tests", "scripts"))
        for module, targets in imports_from(("cursorshare",)).items()
    }
    assert {m: t for m, t in found.items() if t} == {}


def test_no_module_is_over_400_lines() -> None:
    sizes = {
        module: len(path.read_text(encoding="utf-8").splitlines())
        for module, path in modules().items()
    }
    assert {m: n for m, n in sizes.items() if n > MAX_MODULE_LINES} == {}


# -- the options path ----------------------------------------------------------------------------

OPTIONS_PATH = (
    "cursorshare/config.py",
    "cursorshare/cli.py",
    "cursorshare/server.py",
    "cursorshare/sockjs/options.py",
    "cursorshare/sockjs/endpoint.py",
    "cursorshare/sockjs/compat/__init__.py",
)


def test_the_options_path_carries_no_type_ignore() -> None:
    found = [
        f"{path}:{number}"
        for path in OPTIONS_PATH
        for number, line in enumerate((ROOT / path).read_text().splitlines(), 1)
        if "type: ignore" in line
    ]
    assert found == []


_MISTYPED_OPTIONS = """
from aiohttp import web
from cursorshare.sockjs import EndpointOptions, Session, SockjsMessage, add_endpoint
from cursorshare.sockjs import compat

async def handler(msg: SockjsMessage, session: Session) -> None: ...

app = web.Application()
add_endpoint(app, handler, max_queue_bytes=1024, disabled_transports=["websocket"])
add_endpoint(app, handler, options=EndpointOptions(max_sessions=10), heartbeat_delay=1.0)
add_endpoint(app, handler, max_queue_byte=1024)  # line 10: misspelled
add_endpoint(app, handler, heartbeat_delay="soon")  # line 11: not a float
compat.add_endpoint(app, handler, max_sessions="many")  # line 12: not an int
"""


def test_mypy_checks_endpoint_overrides(tmp_path: Path) -> None:
    """Typed callers get their option names and types checked (the timeout is only a bound)."""
    program = tmp_path / "uses_options.py"
    program.write_text(textwrap.dedent(_MISTYPED_OPTIONS).lstrip("\n"))
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(program)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # By file name: mypy may report a cached result under the path it first saw.
    errors = re.findall(r"^\S*uses_options\.py:(\d+): error:", result.stdout, re.MULTILINE)
    lines = {int(number) for number in errors}
    assert lines == {10, 11, 12}, result.stdout + result.stderr
