"""Test-only helpers shared by the suites (not part of the cursorshare package)."""
