"""The label colours (issue #13): every colour of the palette has an ink, black or white, at a
WCAG 2.x contrast ratio of at least 4.5:1 (success criterion 1.4.3, normal text), and keeps it
with the ink a page picks by a luminance threshold (web/static/app.js when this was written:
dark ink #111827 above relative luminance 0.4, white below), which is where the old palette's
green (2.68) and orange (2.59) failed."""

from __future__ import annotations

import re

import pytest

from cursorshare.cursors.messages import PALETTE

WHITE = "#ffffff"
BLACK = "#000000"


def relative_luminance(color: str) -> float:
    """WCAG 2.x relative luminance of an sRGB ``#rrggbb`` colour."""
    channels = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    light, dark = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_contrast_formula_gives_the_wcag_figures() -> None:
    assert contrast(BLACK, WHITE) == pytest.approx(21.0)
    assert contrast(WHITE, WHITE) == pytest.approx(1.0)
    # The figures for two labels of the old palette.
    assert contrast("#3cb44b", WHITE) == pytest.approx(2.68, abs=0.01)
    assert contrast("#f58231", WHITE) == pytest.approx(2.59, abs=0.01)


@pytest.mark.parametrize("color", PALETTE)
def test_every_colour_has_an_ink_at_4_5_to_1(color: str) -> None:
    assert re.fullmatch(r"#[0-9a-f]{6}", color)
    assert max(contrast(color, WHITE), contrast(color, BLACK)) >= 4.5


#: The page's ink rule (web/static/app.js `inkFor`).
PAGE_DARK_INK = "#111827"
PAGE_THRESHOLD = 0.4


def page_ink(color: str) -> str:
    return PAGE_DARK_INK if relative_luminance(color) > PAGE_THRESHOLD else WHITE


@pytest.mark.parametrize("color", PALETTE)
def test_every_colour_keeps_4_5_to_1_with_the_ink_the_page_picks(color: str) -> None:
    assert contrast(color, page_ink(color)) >= 4.5


def test_the_palette_has_sixteen_different_colours() -> None:
    assert len(PALETTE) == len(set(PALETTE)) == 16
