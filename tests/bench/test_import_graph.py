"""The runtime package stays out of the benchmark tooling (issue #12).

The server and the ``cursorshare`` command must never import the comparison tooling
(``benchmarks/``) nor psutil and httptools (the ``bench`` extra) at import time, and must run
without them installed. Checked in fresh interpreters, since this process has both loaded
(tests/test_architecture.py checks the same from the source, and the size of every module).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import cursorshare

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(cursorshare.__file__).resolve().parent

_LOADED = """
import json, sys
import cursorshare.server, cursorshare.cli
cursorshare.cli.build_parser()  # wires the bench subcommand
print(json.dumps(sorted(m for m in sys.modules
                        if m.split(".")[0] in ("benchmarks", "psutil", "httptools"))))
"""

# psutil made unimportable (a None entry in sys.modules makes `import psutil` fail).
_WITHOUT_PSUTIL = """
import sys
sys.modules["psutil"] = None
from cursorshare import config
from cursorshare.cli import build_parser
from cursorshare.server import build_app
from cursorshare.bench.probes import ServerProbe
args = build_parser().parse_args(["serve", "--port", "0"])
build_app(config.from_args(args))
build_parser().parse_args(["bench", "--url", "http://127.0.0.1:1/ws", "--rooms", "3"])
try:
    ServerProbe(1)
except RuntimeError as exc:
    print(exc)
"""


# httptools made unimportable: the load generator's HTTP client says what it needs.
_WITHOUT_HTTPTOOLS = """
import sys
sys.modules["httptools"] = None
from cursorshare.cli import build_parser
from cursorshare.bench.generator import http_pool
build_parser().parse_args(["bench", "--url", "http://127.0.0.1:1/ws", "-t", "xhr-polling"])
try:
    http_pool("http://127.0.0.1:1/ws")
except RuntimeError as exc:
    print(exc)
"""


def _python(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout


def test_server_and_cli_import_neither_benchmarks_nor_psutil() -> None:
    assert json.loads(_python(_LOADED)) == []


def test_the_server_runs_without_psutil_and_says_what_the_probe_needs() -> None:
    out = _python(_WITHOUT_PSUTIL)
    assert "needs psutil" in out and "cursorshare[bench]" in out


def test_the_load_generator_says_it_needs_httptools() -> None:
    out = _python(_WITHOUT_HTTPTOOLS)
    assert "needs httptools" in out and "cursorshare[bench]" in out


def test_the_comparison_tooling_is_not_in_the_package() -> None:
    assert not (PACKAGE / "bench" / "compare.py").exists()
    assert (ROOT / "benchmarks" / "compare.py").exists()
    assert (ROOT / "benchmarks" / "sockjs-node" / "server.js").exists()
    assert not (ROOT / "bench").exists()


@pytest.mark.parametrize("package", ["psutil", "httptools"])
def test_bench_packages_are_an_extra_not_a_dependency(package: str) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert not [d for d in project["dependencies"] if d.startswith(package)]
    assert [d for d in project["optional-dependencies"]["bench"] if d.startswith(package)]
    # scripts/bootstrap installs the test extra: the bench tests need it too.
    assert [d for d in project["optional-dependencies"]["test"] if d.startswith(package)]
