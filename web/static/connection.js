/* cursorshare: the connection to the server. Chooses the backend, opens SockJS, keeps the
 * tab's resume key, and decides after a close: retry with backoff, or stop and say why.
 *
 * Close codes (docs/protocol.md): 4001 invalid room and 4003 origin refused are permanent
 * (shown, never retried); 3010 too many sessions waits for the person ("retry now"); 4004
 * means another window took this tab's identity over with its key (a duplicated tab): the key
 * is forgotten and "retry now" joins as someone new, so the two never take turns; any
 * other close is transient: exponential backoff with full jitter, a countdown, "retry now".
 */
(function (lib) {
  'use strict';

  var BACKOFF_START_MS = 500;
  var BACKOFF_FACTOR = 2;
  var BACKOFF_CAP_MS = 10000;
  // Least time sockjs-client gives a transport to open (its `timeout` option). Its own guess
  // is 300 ms + the /info round trip per round trip of the transport: jsonp-polling's is about
  // 300 ms, which a busy browser or server misses while the session opens fine; the client
  // then drops that session, and everyone saw its member join and, a disconnect delay later,
  // leave. A link that is really that slow still fails over (and the app reconnects).
  var CONNECT_TIMEOUT_MS = 2500;
  var RESUME_KEY = 'cursorshare.resume:';

  var PERMANENT = {
    4001: 'This room name is not valid. Room names are 1 to 64 letters, digits, ' +
      '\u201c-\u201d, \u201c_\u201d or \u201c.\u201d.',
    4003: 'The server does not accept connections from this site.'
  };
  var HELD = {
    3010: 'The server has too many sessions right now.',
    4004: 'You continued in another window or tab. Retry to join here as someone new.'
  };
  var TAKEN_OVER = 4004;

  function originOf(entry) {
    try { return new URL(String(entry)).origin; } catch (e) { return null; }
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

  // The page's own origin, unless ?server= names a backend this site allows (its server's
  // --allowed-backends, read from config.json): a link must not send users elsewhere.
  // done(base, refused): refused = [server, why] when ?server= was ignored.
  function chooseBackend(server, done) {
    if (!server) { done('', null); return; }
    var wanted = parseServer(server);
    if (!wanted) { done('', [server, 'is not an http(s) URL']); return; }
    if (wanted.origin === window.location.origin) { done(wanted.base, null); return; }
    fetch('config.json', { cache: 'no-store', credentials: 'same-origin' })
      .then(function (r) { return r.ok ? r.json() : {}; })
      .catch(function () { return {}; }) // no config: nothing but the page's own origin
      .then(function (config) {
        var list = config && Array.isArray(config.allowedBackends) ? config.allowedBackends : [];
        if (list.map(originOf).indexOf(wanted.origin) !== -1) done(wanted.base, null);
        else done('', [wanted.origin, 'is not a server this site allows']);
      });
  }

  // opts: {base, room, name, transports, onOpen(transport), onMessage(m), onState(s)}
  // onState gets {state: connecting|open|retrying|held|failed|closed, code, reason, message,
  //               retryAt}
  // a session id of [a-z0-9] (the alphabet sockjs-client itself uses), from a CSPRNG
  function randomId(length) {
    var alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
    var bytes = new Uint8Array(length);
    window.crypto.getRandomValues(bytes);
    var id = '';
    for (var i = 0; i < length; i++) id += alphabet.charAt(bytes[i] % alphabet.length);
    return id;
  }

  function Connection(opts) {
    this.opts = opts;
    this.sock = null;
    this.attempt = 0;          // reconnect attempts since the last welcome
    this.retryTimer = null;
    this.stopped = false;      // the page is going away: do not reconnect
    this.connects = 0;         // connection attempts, for the curious
    this.resumeKeyName = RESUME_KEY + opts.base + '|' + opts.room;
  }

  Connection.prototype.url = function () {
    var o = this.opts;
    var url = o.base + '/ws?v=2&room=' + encodeURIComponent(o.room) +
      '&name=' + encodeURIComponent(o.name);
    var resume = lib.storageGet('sessionStorage', this.resumeKeyName);
    return resume ? url + '&resume=' + encodeURIComponent(resume) : url;
  };

  // the welcome's key: presented on the next connect of this tab, to get our identity back
  Connection.prototype.keepResumeKey = function (key) {
    if (typeof key === 'string' && key) lib.storageSet('sessionStorage', this.resumeKeyName, key);
  };

  Connection.prototype.forgetResumeKey = function () {
    try { window.sessionStorage.removeItem(this.resumeKeyName); } catch (e) { /* disabled */ }
  };

  Connection.prototype.welcomed = function () {
    this.attempt = 0; // a successful session: reset the backoff
  };

  Connection.prototype.open = function () {
    return this.sock !== null && this.sock.readyState === 1; /* SockJS.OPEN */
  };

  Connection.prototype.send = function (message) {
    if (!this.open()) return false;
    this.sock.send(JSON.stringify(message));
    return true;
  };

  Connection.prototype.connect = function () {
    var self = this;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.connects += 1;
    this.opts.onState({ state: 'connecting' });
    var transports = this.opts.transports;
    // We name the session ourselves (sockjs-client's `server` and `sessionId` options) so the
    // page knows its session URL: on pagehide a beacon can say bye over HTTP even when the
    // transport itself (an iframe, a jsonp form) dies with the page before its send leaves.
    var server = String(Math.floor(Math.random() * 1000));
    var sessionId = randomId(16);
    this.sessionUrl = this.opts.base + '/ws/' + server + '/' + sessionId;
    var options = { server: server, sessionId: function () { return sessionId; },
                    timeout: CONNECT_TIMEOUT_MS };
    if (transports.length) options.transports = transports;
    var s;
    try {
      s = new SockJS(this.url(), null, options);
    } catch (e) {
      console.error('cursorshare: cannot create SockJS', e);
      this.retry(null, String(e && e.message || e));
      return;
    }
    this.sock = s;
    s.onopen = function () {
      if (self.sock === s) self.opts.onOpen(s.transport);
    };
    s.onmessage = function (e) {
      if (self.sock !== s) return;
      var m;
      try { m = JSON.parse(e.data); } catch (err) { return; }
      if (m && typeof m === 'object') self.opts.onMessage(m);
    };
    s.onclose = function (e) {
      if (self.sock !== s) return;
      self.sock = null;
      self.closed(e && e.code, e && e.reason);
    };
  };

  Connection.prototype.closed = function (code, reason) {
    if (code && code !== 1000) console.info('cursorshare: closed', code, reason);
    if (this.stopped) { this.opts.onState({ state: 'closed', code: code }); return; }
    if (PERMANENT[code]) {
      this.opts.onState({ state: 'failed', code: code, reason: reason, message: PERMANENT[code] });
      return;
    }
    if (code === TAKEN_OVER) this.forgetResumeKey();
    if (HELD[code]) {
      this.opts.onState({ state: 'held', code: code, reason: reason, message: HELD[code] });
      return;
    }
    if (code === 1002) {
      // sockjs-client closes with 1002 when /info fails, whatever the reason; a 403 there is
      // a refused origin (permanent), anything else a network problem (transient)
      var self = this;
      fetch(this.opts.base + '/ws/info', { cache: 'no-store', credentials: 'include' })
        .then(function (r) { return r.status; }, function () { return 0; })
        .then(function (status) {
          if (self.stopped || self.sock) return;
          if (status === 403) self.closed(4003, 'Origin not allowed');
          else self.retry(code, reason);
        });
      return;
    }
    this.retry(code, reason);
  };

  Connection.prototype.retry = function (code, reason) {
    // exponential backoff with full jitter: uniform in [0, min(cap, start * factor^attempt))
    var ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_START_MS * Math.pow(BACKOFF_FACTOR, this.attempt));
    var delay = Math.floor(Math.random() * ceiling);
    this.attempt += 1;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(this.connect.bind(this), delay);
    this.opts.onState({ state: 'retrying', code: code, reason: reason,
                        retryAt: Date.now() + delay });
  };

  // the person asked: now, whatever the backoff or the last close said
  Connection.prototype.retryNow = function () {
    if (this.stopped || this.sock) return;
    this.connect();
  };

  // back online: do not wait for the rest of the backoff
  Connection.prototype.online = function () {
    if (!this.stopped && this.retryTimer) this.connect();
  };

  // the page goes away: say bye (no resume grace) and do not reconnect
  Connection.prototype.stop = function () {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.sock) {
      var sent = this.send({ type: 'bye' });
      if (this.sock.transport !== 'websocket' && this.sessionUrl && navigator.sendBeacon) {
        // a beacon outlives the page; a second bye for a session already gone is a 404
        var body = JSON.stringify([JSON.stringify({ type: 'bye' })]);
        sent = navigator.sendBeacon(this.sessionUrl + '/xhr_send', body) || sent;
      }
      this.sock.close();
    }
    // The bye that does not depend on the session (which the page's aborted requests may end
    // first, or another node may own): the tab's key, over HTTP; the server ends its member
    // wherever it is. text/plain: a CORS-simple request, so another allowed backend gets it.
    var key = lib.storageGet('sessionStorage', this.resumeKeyName);
    if (key && navigator.sendBeacon) {
      navigator.sendBeacon(this.opts.base + '/presence/bye', key);
    }
  };

  // restored from the bfcache
  Connection.prototype.restart = function () {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  };

  lib.chooseBackend = chooseBackend;
  lib.Connection = Connection;
})(window.cursorshareLib = window.cursorshareLib || {});
