/* cursorshare: helpers shared by the page's scripts (loaded first; no bundler, no modules).
 * Each script adds its part to `window.cursorshareLib`; app.js puts them together. */
(function (lib) {
  'use strict';

  var COLOR_RE = /^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i;
  var FALLBACK_COLOR = '#64748b';
  var NAME_MAX = 32;
  var DARK_INK = '#111827';
  var LIGHT_INK = '#ffffff';

  // at most `max` characters (code points: never half of a surrogate pair, which JSON would
  // carry as a lone surrogate escape, refused by the server, and encodeURIComponent throws on)
  function clip(text, max) {
    return Array.from(text).slice(0, max).join('');
  }

  function safeColor(c) {
    return typeof c === 'string' && COLOR_RE.test(c) ? c : FALLBACK_COLOR;
  }

  // WCAG relative luminance of a #rgb / #rrggbb colour
  function luminance(color) {
    var hex = color.slice(1);
    if (hex.length === 3) hex = hex.replace(/./g, '$&$&');
    var rgb = [0, 2, 4].map(function (i) {
      var v = parseInt(hex.substr(i, 2), 16) / 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2];
  }

  function contrast(a, b) {
    var la = luminance(a);
    var lb = luminance(b);
    return (Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05);
  }

  // the text colour (dark or white) that reads best on a coloured label
  function inkFor(color) {
    return contrast(color, DARK_INK) >= contrast(color, LIGHT_INK) ? DARK_INK : LIGHT_INK;
  }

  function isNum(v) {
    return typeof v === 'number' && isFinite(v);
  }

  function displayName(n, id) {
    return typeof n === 'string' && n.trim() ? clip(n.trim(), NAME_MAX)
      : 'guest ' + String(id).slice(0, 6);
  }

  // storage may be disabled (privacy settings, sandboxed frames): then we do without
  function storageGet(storage, key) {
    try { return window[storage].getItem(key); } catch (e) { return null; }
  }

  function storageSet(storage, key, value) {
    try { window[storage].setItem(key, value); } catch (e) { /* storage disabled */ }
  }

  lib.NAME_MAX = NAME_MAX;
  lib.FALLBACK_COLOR = FALLBACK_COLOR;
  lib.clip = clip;
  lib.safeColor = safeColor;
  lib.contrast = contrast;
  lib.inkFor = inkFor;
  lib.isNum = isNum;
  lib.displayName = displayName;
  lib.storageGet = storageGet;
  lib.storageSet = storageSet;
})(window.cursorshareLib = window.cursorshareLib || {});
