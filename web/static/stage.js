/* cursorshare: the shared stage and the remote cursors drawn on it.
 *
 * Positions on the wire are fractions of a shared 16:10 stage (docs/protocol.md, "Where a
 * cursor is"). Each window scales the stage uniformly to cover its viewport, centred: the
 * same (x, y) is the same spot of the stage everywhere and shapes never stretch; a window of
 * another shape sees less of the stage, and draws cursors outside its view as edge markers.
 */
(function (lib) {
  'use strict';

  var STAGE_W = 1600;
  var STAGE_H = 1000;
  var EDGE_INSET = 14;        // px between an edge marker and the viewport's edge
  var LABEL_GAP = 34;         // px the label needs past the point before it flips
  var SVG_NS = 'http://www.w3.org/2000/svg';
  var ARROW_PATH = 'M4 2.5 19.5 12l-6.9 1.5 3.9 7.3-2.9 1.6-3.9-7.4L4 19.6Z';
  var POINTERS = { mouse: true, touch: true, pen: true };

  // where the stage lies in this viewport: {left, top, width, height} in CSS px
  function geometry() {
    var w = window.innerWidth;
    var h = window.innerHeight;
    var scale = Math.max(w / STAGE_W, h / STAGE_H);
    var width = STAGE_W * scale;
    var height = STAGE_H * scale;
    return { left: (w - width) / 2, top: (h - height) / 2, width: width, height: height,
             viewW: w, viewH: h };
  }

  function round4(v) { return Math.round(v * 10000) / 10000; }
  function clamp(v, lo, hi) { return v < lo ? lo : v > hi ? hi : v; }

  // a viewport point as stage fractions, as sent on the wire
  function toStage(clientX, clientY) {
    var g = geometry();
    return { x: round4(clamp((clientX - g.left) / g.width, 0, 1)),
             y: round4(clamp((clientY - g.top) / g.height, 0, 1)) };
  }

  function toClient(x, y) {
    var g = geometry();
    return { x: g.left + x * g.width, y: g.top + y * g.height };
  }

  function pointerKind(p) {
    return typeof p === 'string' && POINTERS[p] ? p : 'mouse';
  }

  function createCursor(id) {
    var el = document.createElement('div');
    el.className = 'cursor';
    el.setAttribute('data-id', id);
    el.setAttribute('data-pointer', 'mouse');
    el.hidden = true;

    var svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('class', 'cursor-arrow');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('width', '24');
    svg.setAttribute('height', '24');
    var path = document.createElementNS(SVG_NS, 'path');
    path.setAttribute('d', ARROW_PATH);
    svg.appendChild(path);

    var dot = document.createElement('span');
    dot.className = 'cursor-dot';        // touch and pen: a contact point, not an arrow
    var edge = document.createElement('span');
    edge.className = 'cursor-edge';      // off-view: a chevron pointing where the cursor is
    var label = document.createElement('span');
    label.className = 'cursor-name';

    el.appendChild(svg);
    el.appendChild(dot);
    el.appendChild(edge);
    el.appendChild(label);
    return { el: el, label: label, labelWidth: 0 };
  }

  function paintCursor(c, user) {
    var color = lib.safeColor(user.color);
    if (c.color !== color) {
      c.color = color;
      c.el.style.setProperty('--cursor-color', color);
      c.el.style.setProperty('--cursor-ink', lib.inkFor(color));
    }
    if (c.label.textContent !== user.name) {
      c.label.textContent = user.name;
      c.labelWidth = 0; // measured again when next placed
    }
    c.el.setAttribute('data-pointer', pointerKind(user.pointer));
    c.el.setAttribute('data-status', user.status);
    c.el.classList.toggle('idle', user.idle);
  }

  // put the cursor of `user` where its position falls in this viewport
  function placeCursor(c, user) {
    if (!lib.isNum(user.x) || !lib.isNum(user.y)) return;
    var g = geometry();
    var p = user.px ? { x: user.x, y: user.y } : toClient(user.x, user.y);
    var left = clamp(p.x, EDGE_INSET, g.viewW - EDGE_INSET);
    var top = clamp(p.y, EDGE_INSET, g.viewH - EDGE_INSET);
    var outside = p.x < 0 || p.y < 0 || p.x > g.viewW || p.y > g.viewH;
    if (outside) {
      c.el.setAttribute('data-offscreen', 'true');
      // the chevron points from the marker towards the real position
      var angle = Math.atan2(p.y - top, p.x - left) * 180 / Math.PI;
      c.el.style.setProperty('--edge-angle', angle.toFixed(0) + 'deg');
    } else {
      c.el.removeAttribute('data-offscreen');
      left = clamp(p.x, 0, g.viewW);
      top = clamp(p.y, 0, g.viewH);
    }
    if (!c.labelWidth && !c.el.hidden) c.labelWidth = c.label.offsetWidth;
    // labels turn inwards near the right and bottom edges so they stay readable
    c.el.classList.toggle('flip-x', left + (c.labelWidth || 120) + LABEL_GAP > g.viewW);
    c.el.classList.toggle('flip-y', top + 2 * LABEL_GAP > g.viewH);
    c.el.style.transform = 'translate3d(' + left.toFixed(1) + 'px,' + top.toFixed(1) + 'px,0)';
  }

  // first appearance: jump into place, no slide in from the corner
  function showCursor(c, user) {
    c.el.classList.add('no-anim');
    c.el.hidden = false;
    c.labelWidth = c.label.offsetWidth;
    placeCursor(c, user);
    void c.el.offsetWidth; // flush styles before re-enabling the transition
    c.el.classList.remove('no-anim');
  }

  lib.stage = {
    geometry: geometry,
    toStage: toStage,
    toClient: toClient,
    pointerKind: pointerKind,
    createCursor: createCursor,
    paintCursor: paintCursor,
    placeCursor: placeCursor,
    showCursor: showCursor
  };
})(window.cursorshareLib = window.cursorshareLib || {});
