"""Marks every test with the SockJS transports it exercises, for `tox -e <transport>`.

A test exercises a transport when its node id (file, name or parameters) names it.
"""

from __future__ import annotations

import re

import pytest

# Checked in order: the longer names first, so "xhr_streaming" is not also taken for "xhr".
_TRANSPORTS = (
    ("xhr_streaming", re.compile(r"xhr[_-]?streaming")),
    ("eventsource", re.compile(r"event[_-]?source")),
    ("htmlfile", re.compile(r"html[_-]?file")),
    ("jsonp", re.compile(r"jsonp")),
    ("websocket", re.compile(r"web[_-]?socket")),
    ("xhr", re.compile(r"xhr(?![_-]?streaming)")),
)


def pytest_configure(config: pytest.Config) -> None:
    for name, _ in _TRANSPORTS:
        config.addinivalue_line("markers", f"transport_{name}: exercises the {name} transport")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        node = item.nodeid.lower()
        for name, pattern in _TRANSPORTS:
            if pattern.search(node):
                item.add_marker(getattr(pytest.mark, f"transport_{name}"))
