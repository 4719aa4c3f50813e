/* cursorshare browser app: plain JS on sockjs-client, no bundler, no framework.
 *
 * Wire protocol: docs/protocol.md (v2 flavour). User-provided text (names, room) only ever
 * goes through textContent / setAttribute, never innerHTML.
 */
(function () {
  'use strict';

  // ---- configuration -------------------------------------------------------------------------

  var BACKOFF_START_MS = 500;
  var BACKOFF_FACTOR = 2;
  var BACKOFF_CAP_MS = 10000;
  var NOTICE_MS = 4000;
  var NAME_MAX = 32;
  var NAME_KEY = 'cursorshare.name';
  var SVG_NS = 'http://www.w3.org/2000/svg';
  var ARROW_PATH = 'M4 2.5 19.5 12l-6.9 1.5 3.9 7.3-2.9 1.6-3.9-7.4L4 19.6Z';
  var COLOR_RE = /^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i;
  var FALLBACK_COLOR = '#64748b';

  var params = new URLSearchParams(window.location.search);
  var room = (params.get('room') || '').trim() || 'lobby';
  var name = clip((params.get('name') || '').trim(), NAME_MAX) || storedName();
  var transports = (params.get('transports') || '')
    .split(',')
    .map(function (t) { return t.trim(); })
    .filter(Boolean);
  var url = null; // the SockJS URL, once the backend is chosen (chooseBackend)

  // ---- DOM -----------------------------------------------------------------------------------

  var $ = function (id) { return document.getElementById(id); };
  var statusEl = $('status');
  var statusText = $('status-text');
  var statusTransport = $('status-transport');
  var noticeEl = $('notice');
  var serverNoteEl = $('server-note');
  var cursorsEl = $('cursors');
  var emptyEl = $('empty');
  var peersEl = $('peers');
  var meEl = $('me');
  var meColorEl = $('me-color');

  $('room').textContent = room;
  meEl.textContent = name;
  $('hint-link').href = (function () {
    // same room, server and transports; the other window picks its own name
    var u = new URL(window.location.href);
    u.searchParams.delete('name');
    return u.href;
  })();
  document.title = 'cursorshare · ' + room;

  // ---- state ---------------------------------------------------------------------------------

  var api = window.cursorshare = {
    sock: null, id: null, color: null, transport: null, state: 'connecting',
    room: room, name: name, url: url, refusedServer: null
  };
  var sock = null;
  var attempt = 0;              // reconnect attempts since the last welcome
  var retryTimer = null;
  var retryAt = 0;
  var countdownTimer = null;
  var noticeTimer = null;
  var stopped = false;          // page is being hidden/unloaded: do not reconnect
  var cursors = new Map();      // id -> {el, label, color, name, x, y, px, shown}

  // own pointer: latest position (normalised, rounded), last sent, rAF throttle
  var pointer = null;
  var lastSent = null;
  var nameSent = false;
  var frameRequested = false;

  // ---- helpers -------------------------------------------------------------------------------

  function storedName() {
    var n = null;
    try { n = window.localStorage.getItem(NAME_KEY); } catch (e) { /* storage disabled */ }
    if (n && n.trim() && Array.from(n).length <= NAME_MAX) return n.trim();
    n = friendlyName();
    try { window.localStorage.setItem(NAME_KEY, n); } catch (e) { /* storage disabled */ }
    return n;
  }

  function friendlyName() {
    var adjectives = ['Amber', 'Brave', 'Calm', 'Clever', 'Cosmic', 'Dapper', 'Eager', 'Fuzzy',
      'Gentle', 'Happy', 'Jolly', 'Kind', 'Lucky', 'Mellow', 'Nimble', 'Plucky', 'Quick', 'Quiet',
      'Rapid', 'Sunny', 'Swift', 'Tidy', 'Witty', 'Zesty'];
    var animals = ['Badger', 'Beaver', 'Crane', 'Dolphin', 'Falcon', 'Ferret', 'Finch', 'Fox',
      'Gecko', 'Heron', 'Koala', 'Lemur', 'Lynx', 'Marten', 'Otter', 'Panda', 'Puffin', 'Quokka',
      'Raven', 'Seal', 'Stoat', 'Tapir', 'Walrus', 'Wombat'];
    var pick = function (list) { return list[Math.floor(Math.random() * list.length)]; };
    return pick(adjectives) + ' ' + pick(animals);
  }

  // at most `max` characters (code points: never half of a surrogate pair, which JSON would
  // carry as a lone surrogate escape, refused by the server, and encodeURIComponent throws on)
  function clip(text, max) {
    return Array.from(text).slice(0, max).join('');
  }

  // ?server= as {origin, base}; null when malformed
  function parseServer(server) {
    try {
      var u = new URL(server, window.location.href);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
      return { origin: u.origin, base: (u.origin + u.pathname).replace(/\/+$/, '') };
    } catch (e) {
      return null;
    }
  }

  function originOf(entry) {
    try { return new URL(String(entry)).origin; } catch (e) { return null; }
  }

  // The page's own origin, unless ?server= names a backend this site allows (its server's
  // --allowed-backends, read from config.json): a link must not send users elsewhere.
  function chooseBackend(done) {
    var server = params.get('server');
    if (!server) { done(''); return; }
    var wanted = parseServer(server);
    if (!wanted) { refuseServer(server, 'is not an http(s) URL'); done(''); return; }
    if (wanted.origin === window.location.origin) { done(wanted.base); return; }
    fetch('config.json', { cache: 'no-store', credentials: 'same-origin' })
      .then(function (r) { return r.ok ? r.json() : {}; })
      .catch(function () { return {}; }) // no config: nothing but the page's own origin
      .then(function (config) {
        var list = config && Array.isArray(config.allowedBackends) ? config.allowedBackends : [];
        if (list.map(originOf).indexOf(wanted.origin) !== -1) {
          done(wanted.base);
        } else {
          refuseServer(wanted.origin, 'is not a server this site allows');
          done('');
        }
      });
  }

  function refuseServer(server, why) {
    api.refusedServer = server;
    console.warn('cursorshare: ignoring ?server=' + server + ': ' + why);
    serverNoteEl.textContent = 'Ignored ?server=' + server + ': it ' + why +
      '. Connected to ' + window.location.host + ' instead.';
    serverNoteEl.hidden = false;
  }

  function safeColor(c) {
    return typeof c === 'string' && COLOR_RE.test(c) ? c : FALLBACK_COLOR;
  }

  // dark or light text on a coloured label
  function inkFor(color) {
    var hex = color.slice(1);
    if (hex.length === 3) hex = hex.replace(/./g, '$&$&');
    var rgb = [0, 2, 4].map(function (i) {
      var v = parseInt(hex.substr(i, 2), 16) / 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    var lum = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2];
    return lum > 0.4 ? '#111827' : '#ffffff';
  }

  function round4(v) {
    return Math.round(v * 10000) / 10000;
  }

  function clamp01(v) {
    return v < 0 ? 0 : v > 1 ? 1 : v;
  }

  function isNum(v) {
    return typeof v === 'number' && isFinite(v);
  }

  function displayName(n, id) {
    return typeof n === 'string' && n.trim() ? clip(n.trim(), NAME_MAX) : 'guest ' + String(id).slice(0, 6);
  }

  // ---- status badge --------------------------------------------------------------------------

  function setState(state, text) {
    api.state = state;
    statusEl.setAttribute('data-state', state);
    statusText.textContent = text || state;
  }

  function setTransport(t) {
    api.transport = t || null;
    statusEl.setAttribute('data-transport', t || '');
    statusTransport.textContent = t || '';
  }

  function showNotice(text) {
    noticeEl.textContent = text;
    noticeEl.hidden = false;
    noticeEl.classList.remove('fade');
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(function () {
      noticeEl.classList.add('fade');
      noticeTimer = setTimeout(function () { noticeEl.hidden = true; }, 400);
    }, NOTICE_MS);
  }

  function setOwnColor(color) {
    api.color = color;
    meColorEl.style.backgroundColor = safeColor(color);
    meEl.parentNode.setAttribute('data-color', safeColor(color));
  }

  // ---- remote cursors ------------------------------------------------------------------------

  function makeCursorElement(id) {
    var el = document.createElement('div');
    el.className = 'cursor';
    el.setAttribute('data-id', id);
    el.hidden = true;

    var svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('class', 'cursor-arrow');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('width', '24');
    svg.setAttribute('height', '24');
    var path = document.createElementNS(SVG_NS, 'path');
    path.setAttribute('d', ARROW_PATH);
    svg.appendChild(path);

    var label = document.createElement('span');
    label.className = 'cursor-name';

    el.appendChild(svg);
    el.appendChild(label);
    return { el: el, label: label };
  }

  function upsertCursor(id, color, nm) {
    if (id === undefined || id === null || id === api.id) return null;
    id = String(id);
    var c = cursors.get(id);
    if (!c) {
      var parts = makeCursorElement(id);
      c = { el: parts.el, label: parts.label, color: null, name: null,
            x: null, y: null, px: false, shown: false };
      cursors.set(id, c);
      cursorsEl.appendChild(c.el);
    }
    if (color !== undefined && color !== null) {
      var col = safeColor(color);
      if (col !== c.color) {
        c.color = col;
        c.el.style.setProperty('--cursor-color', col);
        c.el.style.setProperty('--cursor-ink', inkFor(col));
      }
    } else if (!c.color) {
      c.color = FALLBACK_COLOR;
      c.el.style.setProperty('--cursor-color', FALLBACK_COLOR);
      c.el.style.setProperty('--cursor-ink', inkFor(FALLBACK_COLOR));
    }
    // keep a known name when a message carries none
    if ((nm !== undefined && nm !== null) || c.name === null) {
      var dn = displayName(nm, id);
      if (dn !== c.name) {
        c.name = dn;
        c.label.textContent = dn;
      }
    }
    updatePeers();
    return c;
  }

  function placeCursor(c) {
    var left, top;
    if (c.px) {
      left = c.x;
      top = c.y;
    } else {
      left = clamp01(c.x) * window.innerWidth;
      top = clamp01(c.y) * window.innerHeight;
    }
    c.el.style.transform = 'translate3d(' + left.toFixed(1) + 'px,' + top.toFixed(1) + 'px,0)';
  }

  function moveCursor(c, x, y, px) {
    if (!isNum(x) || !isNum(y)) return;
    c.x = x;
    c.y = y;
    c.px = px === true;
    c.el.setAttribute('data-x', String(x));
    c.el.setAttribute('data-y', String(y));
    if (c.px) c.el.setAttribute('data-px', 'true'); else c.el.removeAttribute('data-px');
    c.el.classList.remove('stale');
    if (!c.shown) {
      // first appearance: jump into place, no slide in from the corner
      c.el.classList.add('no-anim');
      placeCursor(c);
      c.el.hidden = false;
      void c.el.offsetWidth; // flush styles before re-enabling the transition
      c.el.classList.remove('no-anim');
      c.shown = true;
      updatePeers();
    } else {
      placeCursor(c);
    }
  }

  function removeCursor(id) {
    id = String(id);
    var c = cursors.get(id);
    if (!c) return;
    cursors.delete(id);
    c.el.remove();
    updatePeers();
  }

  function clearCursors() {
    cursors.forEach(function (c) { c.el.remove(); });
    cursors.clear();
    updatePeers();
  }

  function updatePeers() {
    var visible = 0;
    cursors.forEach(function (c) { if (c.shown) visible += 1; });
    peersEl.textContent = String(cursors.size + 1);
    emptyEl.classList.toggle('gone', visible > 0);
  }

  window.addEventListener('resize', function () {
    cursors.forEach(function (c) { if (c.shown && !c.px) placeCursor(c); });
  });

  // ---- incoming messages ---------------------------------------------------------------------

  function onWelcome(m) {
    api.id = m.id === undefined || m.id === null ? null : String(m.id);
    setOwnColor(m.color);
    attempt = 0; // successful session: reset the backoff
    clearCursors();
    (Array.isArray(m.users) ? m.users : []).forEach(function (u) {
      if (!u || typeof u !== 'object') return;
      var c = upsertCursor(u.id, u.color, u.name);
      if (c && isNum(u.x) && isNum(u.y)) moveCursor(c, u.x, u.y, u.px);
    });
    // tell the room where we are (and our name) if the pointer is already over the page
    lastSent = null;
    nameSent = false;
    if (pointer) requestSend();
  }

  function onMessage(m) {
    if (!m || typeof m !== 'object') return;
    switch (m.type) {
      case 'welcome':
        onWelcome(m);
        break;
      case 'join':
        upsertCursor(m.id, m.color, m.name);
        break;
      case 'move': {
        if (m.sender === undefined || m.sender === null || String(m.sender) === api.id) return;
        var c = upsertCursor(m.sender, m.color, m.name);
        if (c) moveCursor(c, m.x, m.y, m.px);
        break;
      }
      case 'leave':
        removeCursor(m.id);
        break;
      case 'error':
        showNotice('error: ' + String(m.error));
        break;
      default:
        break;
    }
  }

  // ---- connection ----------------------------------------------------------------------------

  function connect() {
    clearTimeout(retryTimer);
    clearInterval(countdownTimer);
    retryTimer = countdownTimer = null;
    setState('connecting');
    setTransport(null);
    nameSent = false;
    lastSent = null;

    var opts = transports.length ? { transports: transports } : {};
    var s;
    try {
      s = new SockJS(url, null, opts);
    } catch (e) {
      console.error('cursorshare: cannot create SockJS', e);
      showNotice(String(e && e.message || e));
      scheduleReconnect();
      return;
    }
    sock = api.sock = s;

    s.onopen = function () {
      if (sock !== s) return;
      setState('open');
      setTransport(s.transport);
    };
    s.onmessage = function (e) {
      if (sock !== s) return;
      var m;
      try { m = JSON.parse(e.data); } catch (err) { return; }
      onMessage(m);
    };
    s.onclose = function (e) {
      if (sock !== s) return;
      sock = api.sock = null;
      api.id = null;
      cursors.forEach(function (c) { c.el.classList.add('stale'); });
      if (e && e.code && e.code !== 1000) console.info('cursorshare: closed', e.code, e.reason);
      if (stopped) {
        setState('closed', 'closed');
        return;
      }
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    // exponential backoff with full jitter: uniform in [0, min(cap, start * factor^attempt))
    var ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_START_MS * Math.pow(BACKOFF_FACTOR, attempt));
    var delay = Math.floor(Math.random() * ceiling);
    attempt += 1;
    retryAt = Date.now() + delay;
    setTransport(null);
    renderCountdown();
    clearInterval(countdownTimer);
    countdownTimer = setInterval(renderCountdown, 250);
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, delay);
  }

  function renderCountdown() {
    var secs = Math.max(1, Math.ceil((retryAt - Date.now()) / 1000));
    setState('closed', 'closed \u2014 retrying in ' + secs + 's');
  }

  // back online: do not wait for the rest of the backoff
  window.addEventListener('online', function () {
    if (!stopped && retryTimer) connect();
  });

  // leave promptly when the page goes away; come back if restored from the bfcache
  window.addEventListener('pagehide', function () {
    stopped = true;
    clearTimeout(retryTimer);
    clearInterval(countdownTimer);
    if (sock) sock.close();
  });
  window.addEventListener('pageshow', function (e) {
    if (e.persisted && stopped) {
      stopped = false;
      connect();
    }
  });

  // ---- outgoing moves ------------------------------------------------------------------------

  function onPointer(e) {
    var w = window.innerWidth;
    var h = window.innerHeight;
    if (!w || !h) return;
    pointer = { x: round4(clamp01(e.clientX / w)), y: round4(clamp01(e.clientY / h)) };
    requestSend();
  }

  function requestSend() {
    if (frameRequested) return;
    frameRequested = true;
    window.requestAnimationFrame(flushMove);
  }

  function flushMove() {
    frameRequested = false;
    if (!pointer || !sock || sock.readyState !== 1 /* SockJS.OPEN */) return;
    if (lastSent && lastSent.x === pointer.x && lastSent.y === pointer.y) return;
    var msg = { type: 'move', x: pointer.x, y: pointer.y };
    if (!nameSent) msg.name = name;
    sock.send(JSON.stringify(msg));
    lastSent = pointer;
    nameSent = true;
  }

  window.addEventListener('pointermove', onPointer, { passive: true });
  window.addEventListener('pointerdown', onPointer, { passive: true });

  // ---- go ------------------------------------------------------------------------------------

  if (typeof window.SockJS !== 'function') {
    setState('closed', 'closed \u2014 sockjs-client missing (run npm install in web/)');
    return;
  }
  chooseBackend(function (base) {
    url = api.url = base + '/ws?v=2&room=' + encodeURIComponent(room) +
      '&name=' + encodeURIComponent(name);
    connect();
  });
})();
