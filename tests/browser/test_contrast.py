"""Every visible text of the page reads at WCAG AA: contrast 4.5:1 or better (issue #13).

For each element with its own visible text, the text colour is compared with the first
opaque background behind it (walking up the tree; translucent layers composited over it);
cursor labels with their palette colour and ink. Desktop and phone.

The labels need the server's palette of issue #13 (S13: every colour with its ink at 4.5:1);
before that merge, a page given one of the old palette's mid-tones fails here.
"""

from __future__ import annotations

import pytest

from .conftest import Apps

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

CONTRASTS = """() => {
  const parse = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const over = (top, bottom) => {
    const a = top.length > 3 ? top[3] : 1;
    return [0, 1, 2].map(i => top[i] * a + bottom[i] * (1 - a));
  };
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c.length > 3 && c[3] === 0) continue;
      layers.push(c);
      if (c.length === 3 || c[3] === 1) break;
    }
    let rgb = [255, 255, 255];
    for (const layer of layers.reverse()) rgb = over(layer, rgb);
    return rgb;
  };
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.checkVisibility({opacityProperty: true})) continue;
    const style = getComputedStyle(el);
    const fg = over(parse(style.color), background(el));
    const [a, b] = [lum(fg), lum(background(el))];
    out.push({text: el.textContent.trim().slice(0, 40),
              ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)});
  }
  return out;
}"""


@pytest.mark.parametrize(
    "viewport", [{"width": 1280, "height": 720}, {"width": 400, "height": 800}]
)
async def test_every_visible_text_reads_at_4_5_to_1(
    apps: Apps, room: str, viewport: dict[str, int]
) -> None:
    pages = [await apps.open(room=room, name=n, viewport=viewport) for n in ("Ada", "Bo", "Cy")]
    for i, app in enumerate(pages[1:]):
        at = await app.point(0.45 + 0.05 * i, 0.5)
        await pages[0].wait_cursor(await app.id(), at, name=app.name)
    checked = await pages[0].page.evaluate(CONTRASTS)
    texts = {c["text"] for c in checked}
    assert {"Bo", "Cy", "connected", "room"} <= texts, texts
    low = [c for c in checked if c["ratio"] < 4.5]
    assert not low, low
