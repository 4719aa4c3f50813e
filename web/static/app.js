/* cursorshare browser app: plain JS on sockjs-client, no bundler, no framework.
 *
 * Wire protocol: docs/protocol.md (v2). User-provided text (names, room) only ever goes
 * through textContent / setAttribute, never innerHTML. The parts: util.js (helpers),
 * stage.js (positions and cursors), people.js (who is here), connection.js (SockJS, resume,
 * retries); this file puts them together with the page.
 */
(function (lib) {
  'use strict';

  var NOTICE_MS = 4000;
  var IDLE_CHECK_MS = 1000;
  var NAME_KEY = 'cursorshare.name';

  var params = new URLSearchParams(window.location.search);
  var room = (params.get('room') || '').trim() || 'lobby';
  var name = lib.clip((params.get('name') || '').trim(), lib.NAME_MAX) || storedName();
  var transports = (params.get('transports') || '')
    .split(',')
    .map(function (t) { return t.trim(); })
    .filter(Boolean);

  // ---- DOM -----------------------------------------------------------------------------------

  var $ = function (id) { return document.getElementById(id); };
  var statusEl = $('status');
  var statusText = $('status-text');
  var statusTransport = $('status-transport');
  var retryButton = $('retry-now');
  var problemEl = $('problem');
  var announcerEl = $('announcer');
  var noticeEl = $('notice');
  var serverNoteEl = $('server-note');
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
  document.title = 'cursorshare \u00b7 ' + room;

  // ---- state ---------------------------------------------------------------------------------

  var api = window.cursorshare = {
    sock: null, id: null, color: null, transport: null, state: 'connecting',
    room: room, name: name, url: null, refusedServer: null, resumed: null,
    closeCode: null, presence: 'active', announcements: []
  };
  var connection = null;
  var countdownTimer = null;
  var noticeTimer = null;
  var lastAnnounced = '';
  var people = new lib.People({
    list: $('people-list'), count: $('peers'), countLabel: $('peers-label'), empty: $('empty'),
    emptyTitle: $('empty-title'), emptySub: $('empty-sub'), cursors: $('cursors')
  }, announce);

  // own pointer: latest stage position, last sent, its kind; rAF throttle
  var pointer = null;
  var pointerKind = 'mouse';
  var lastSent = null;
  var frameRequested = false;

  function storedName() {
    var n = lib.storageGet('localStorage', NAME_KEY);
    if (n && n.trim() && Array.from(n).length <= lib.NAME_MAX) return n.trim();
    n = friendlyName();
    lib.storageSet('localStorage', NAME_KEY, n);
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

  // ---- what the page says --------------------------------------------------------------------

  // the live region: only real changes (never a countdown tick, never the same text twice)
  function announce(text) {
    if (text === lastAnnounced) return;
    lastAnnounced = text;
    api.announcements.push(text);
    announcerEl.textContent = text;
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

  function setBadge(state, text, transport) {
    api.state = state;
    statusEl.setAttribute('data-state', state);
    statusText.textContent = text;
    api.transport = transport || null;
    statusEl.setAttribute('data-transport', transport || '');
    statusTransport.textContent = transport || '';
  }

  function showProblem(message, code, reason) {
    problemEl.textContent = message + (code ? ' (' + code + (reason ? ': ' + reason : '') + ')' : '');
    problemEl.hidden = !message;
  }

  function onState(s) {
    var was = api.state;
    clearInterval(countdownTimer);
    countdownTimer = null;
    api.closeCode = s.code === undefined ? api.closeCode : s.code;
    retryButton.hidden = !(s.state === 'retrying' || s.state === 'held');
    if (s.state !== 'held' && s.state !== 'failed') showProblem('');
    if (s.state !== 'open' && s.state !== 'connecting') {
      api.sock = null;
      api.id = null;
      people.stale();
    }
    switch (s.state) {
      case 'connecting':
        setBadge(was === 'retrying' ? 'closed' : 'connecting',
                 was === 'retrying' ? 'reconnecting' : 'connecting');
        api.state = 'connecting';
        api.sock = connection.sock;
        break;
      case 'retrying': {
        var render = function () {
          var secs = Math.max(1, Math.ceil((s.retryAt - Date.now()) / 1000));
          setBadge('closed', 'offline \u2014 retrying in ' + secs + ' s');
          api.state = 'retrying';
        };
        render();
        countdownTimer = setInterval(render, 250);
        if (was === 'open') announce('Connection lost. Reconnecting.');
        break;
      }
      case 'held':
      case 'failed':
        setBadge('closed', s.state === 'held' ? 'not connected' : 'cannot connect');
        api.state = s.state;
        showProblem(s.message, s.code, s.reason);
        announce(s.message);
        break;
      case 'closed':
        setBadge('closed', 'closed');
        break;
      default:
        break;
    }
  }

  function onOpen(transport) {
    setBadge('open', 'connected', transport);
    api.sock = connection.sock;
  }

  // ---- incoming messages ---------------------------------------------------------------------

  function onWelcome(m) {
    api.id = m.id === undefined || m.id === null ? null : String(m.id);
    api.resumed = m.resumed === true;
    connection.welcomed();
    connection.keepResumeKey(m.resume);
    if (typeof m.name === 'string' && m.name.trim()) {
      name = api.name = lib.clip(m.name.trim(), lib.NAME_MAX);
      meEl.textContent = name;
    }
    api.color = m.color;
    meColorEl.style.backgroundColor = lib.safeColor(m.color);
    people.reset({ id: api.id, name: name, color: m.color, pointer: pointerKind },
                 Array.isArray(m.users) ? m.users : []);
    announce('Connected to room ' + room + '. ' + $('peers').textContent + ' ' +
             $('peers-label').textContent + '.');
    // tell the room where we are if the pointer is already over the page, and how we are
    lastSent = null;
    if (pointer) requestSend();
    if (ownStatus() === 'away') sendPresence('away');
    else api.presence = 'active';
  }

  function onMessage(m) {
    switch (m.type) {
      case 'welcome':
        onWelcome(m);
        break;
      case 'join':
        people.upsert(m, true);
        break;
      case 'move': {
        if (m.sender === undefined || m.sender === null || String(m.sender) === api.id) return;
        var u = people.upsert({ id: m.sender, color: m.color, name: m.name, pointer: m.pointer },
                              true);
        if (u) people.move(u, m.x, m.y, m.px);
        break;
      }
      case 'presence':
        people.setStatus(m.id, m.status);
        break;
      case 'leave':
        people.remove(m.id);
        break;
      case 'error':
        showNotice('error: ' + String(m.error));
        break;
      default:
        break;
    }
  }

  // ---- own pointer and presence --------------------------------------------------------------

  function ownStatus() {
    return document.visibilityState === 'hidden' || !document.hasFocus() ? 'away' : api.presence;
  }

  function sendPresence(status) {
    if (api.presence === status) return;
    api.presence = status;
    connection.send({ type: 'presence', status: status });
  }

  function onPointer(e) {
    var kind = lib.stage.pointerKind(e.pointerType);
    if (kind !== pointerKind) {
      pointerKind = kind;
      lastSent = null;
      people.setMe({ pointer: kind });
    }
    pointer = lib.stage.toStage(e.clientX, e.clientY);
    api.presence = 'active'; // a move also means active
    requestSend();
  }

  function requestSend() {
    if (frameRequested) return;
    frameRequested = true;
    window.requestAnimationFrame(flushMove);
  }

  function flushMove() {
    frameRequested = false;
    if (!pointer || !connection.open()) return;
    if (lastSent && lastSent.x === pointer.x && lastSent.y === pointer.y) return;
    var msg = { type: 'move', x: pointer.x, y: pointer.y, pointer: pointerKind };
    if (!lastSent) msg.name = name;
    connection.send(msg);
    lastSent = pointer;
  }

  function goAway() { sendPresence('away'); }
  function comeBack() {
    if (document.visibilityState !== 'hidden') sendPresence('active');
  }

  window.addEventListener('pointermove', onPointer, { passive: true });
  window.addEventListener('pointerdown', onPointer, { passive: true });
  // a finger lifted (or a pen taken away) leaves no pointer on the page
  window.addEventListener('pointerup', function (e) { if (e.pointerType !== 'mouse') goAway(); });
  window.addEventListener('pointercancel', goAway);
  document.documentElement.addEventListener('pointerleave', function (e) {
    if (e.pointerType === 'mouse') goAway();
  });
  document.addEventListener('visibilitychange', function () {
    if (document.visibilityState === 'hidden') goAway(); else comeBack();
  });
  window.addEventListener('blur', goAway);
  window.addEventListener('focus', comeBack);
  window.addEventListener('resize', function () { people.placeAll(); });
  setInterval(function () { people.tick(); }, IDLE_CHECK_MS);

  retryButton.addEventListener('click', function () { connection.retryNow(); });
  window.addEventListener('online', function () { if (connection) connection.online(); });
  // leave for good when the page goes away; come back if restored from the bfcache
  window.addEventListener('pagehide', function () { if (connection) connection.stop(); });
  window.addEventListener('pageshow', function (e) {
    if (e.persisted && connection) connection.restart();
  });

  // ---- go ------------------------------------------------------------------------------------

  if (typeof window.SockJS !== 'function') {
    setBadge('closed', 'closed \u2014 sockjs-client missing (run npm install in web/)');
    return;
  }
  lib.chooseBackend(params.get('server'), function (base, refused) {
    if (refused) {
      api.refusedServer = refused[0];
      console.warn('cursorshare: ignoring ?server=' + refused[0] + ': ' + refused[1]);
      serverNoteEl.textContent = 'Ignored ?server=' + refused[0] + ': it ' + refused[1] +
        '. Connected to ' + window.location.host + ' instead.';
      serverNoteEl.hidden = false;
    }
    connection = new lib.Connection({
      base: base, room: room, name: name, transports: transports,
      onOpen: onOpen, onMessage: onMessage, onState: onState
    });
    api.url = connection.url();
    // for tests and the curious: is a reconnect scheduled, how many connects so far
    Object.defineProperty(api, 'retryPending', {
      get: function () { return connection.retryTimer !== null; }
    });
    Object.defineProperty(api, 'connects', { get: function () { return connection.connects; } });
    connection.connect();
  });
})(window.cursorshareLib);
