/* cursorshare: who is in the room. One record per person (id, name, colour, status, pointer,
 * position) drives both the presence list and the cursors; the count and the empty-state text
 * are derived from the same records, so they always agree. */
(function (lib) {
  'use strict';

  var IDLE_MS = 20000;         // no move or status change for this long: drawn faded
  var STATUSES = { active: true, away: true, reconnecting: true };
  var STATUS_TEXT = { away: 'away', reconnecting: 'reconnecting\u2026', idle: 'idle' };

  function People(dom, announce) {
    this.dom = dom;              // {list, count, countLabel, empty, emptyTitle, emptySub, cursors}
    this.announce = announce;
    this.users = new Map();      // id -> record (everyone but me)
    this.me = null;              // {id, name, color, pointer}
    this.meItem = null;
  }

  People.prototype.status = function (s) {
    return typeof s === 'string' && STATUSES[s] ? s : 'active';
  };

  // a fresh session: me, and everyone the welcome lists
  People.prototype.reset = function (me, users) {
    var self = this;
    this.users.forEach(function (u) { self.drop(u); });
    this.users.clear();
    this.me = me;
    if (!this.meItem) {
      this.meItem = this.makeItem();
      this.meItem.li.classList.add('me');
      this.dom.list.insertBefore(this.meItem.li, this.dom.list.firstChild);
    }
    this.paintItem(this.meItem, { name: me.name, color: me.color, status: 'active',
                                  pointer: me.pointer, idle: false }, true);
    users.forEach(function (m) {
      var u = self.upsert(m, false);
      if (u && m && lib.isNum(m.x) && lib.isNum(m.y)) self.move(u, m.x, m.y, m.px, u.status);
    });
    this.render();
  };

  People.prototype.makeItem = function () {
    var li = document.createElement('li');
    li.className = 'person';
    var swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.setAttribute('aria-hidden', 'true');
    var name = document.createElement('span');
    name.className = 'person-name';
    var note = document.createElement('span');
    note.className = 'person-note';
    li.appendChild(swatch);
    li.appendChild(name);
    li.appendChild(note);
    return { li: li, swatch: swatch, name: name, note: note };
  };

  People.prototype.paintItem = function (item, u, isMe) {
    item.swatch.style.backgroundColor = lib.safeColor(u.color);
    item.name.textContent = u.name;
    var notes = [];
    if (isMe) notes.push('you');
    var shown = u.status !== 'active' ? u.status : u.idle ? 'idle' : null;
    if (shown) notes.push(STATUS_TEXT[shown]);
    if (u.pointer === 'touch') notes.push('touch');
    if (u.pointer === 'pen') notes.push('pen');
    item.note.textContent = notes.length ? '(' + notes.join(', ') + ')' : '';
    item.li.setAttribute('data-status', shown || 'active');
  };

  // add or update someone from a welcome, join or move; returns the record
  People.prototype.upsert = function (m, announce) {
    if (!m || m.id === undefined || m.id === null) return null;
    var id = String(m.id);
    if (this.me && id === this.me.id) return null;
    var u = this.users.get(id);
    var isNew = !u;
    if (isNew) {
      var cursor = lib.stage.createCursor(id);
      u = { id: id, name: null, color: null, status: 'active', pointer: 'mouse', x: null,
            y: null, px: false, idle: false, lastChange: Date.now(), cursor: cursor,
            item: this.makeItem() };
      u.item.li.setAttribute('data-id', id);
      this.users.set(id, u);
      this.dom.cursors.appendChild(cursor.el);
      this.dom.list.appendChild(u.item.li);
    }
    if (m.color !== undefined && m.color !== null) u.color = lib.safeColor(m.color);
    else if (!u.color) u.color = lib.FALLBACK_COLOR;
    // keep a known name when a message carries none
    if ((m.name !== undefined && m.name !== null) || u.name === null) {
      u.name = lib.displayName(m.name, id);
    }
    if (m.status !== undefined) u.status = this.status(m.status);
    if (m.pointer !== undefined) u.pointer = lib.stage.pointerKind(m.pointer);
    this.paint(u);
    if (isNew) {
      if (announce) this.announce(u.name + ' joined');
      this.render();
    }
    return u;
  };

  People.prototype.paint = function (u) {
    lib.stage.paintCursor(u.cursor, u);
    this.paintItem(u.item, u, false);
  };

  // `status`: as the welcome says; a move otherwise also means active
  People.prototype.move = function (u, x, y, px, status) {
    if (!lib.isNum(x) || !lib.isNum(y)) return;
    u.x = x;
    u.y = y;
    u.px = px === true;
    u.lastChange = Date.now();
    u.status = status || 'active';
    u.idle = false;
    var el = u.cursor.el;
    el.setAttribute('data-x', String(x));
    el.setAttribute('data-y', String(y));
    if (u.px) el.setAttribute('data-px', 'true'); else el.removeAttribute('data-px');
    el.classList.remove('stale');
    this.paint(u);
    if (el.hidden) {
      lib.stage.showCursor(u.cursor, u);
      this.render();
    } else {
      lib.stage.placeCursor(u.cursor, u);
    }
  };

  People.prototype.setStatus = function (id, status) {
    var u = this.users.get(String(id));
    if (!u) return;
    u.status = this.status(status);
    u.lastChange = Date.now();
    u.idle = false;
    this.paint(u);
  };

  People.prototype.drop = function (u) {
    u.cursor.el.remove();
    u.item.li.remove();
  };

  People.prototype.remove = function (id) {
    var u = this.users.get(String(id));
    if (!u) return;
    this.users.delete(u.id);
    this.drop(u);
    this.announce(u.name + ' left');
    this.render();
  };

  // our connection is down: what we show may be out of date
  People.prototype.stale = function () {
    this.users.forEach(function (u) { u.cursor.el.classList.add('stale'); });
  };

  People.prototype.placeAll = function () {
    this.users.forEach(function (u) {
      if (!u.cursor.el.hidden) lib.stage.placeCursor(u.cursor, u);
    });
  };

  // faded after IDLE_MS without a move or a status change (computed here, no wire message)
  People.prototype.tick = function () {
    var now = Date.now();
    var self = this;
    this.users.forEach(function (u) {
      var idle = u.status === 'active' && now - u.lastChange >= IDLE_MS;
      if (idle !== u.idle) {
        u.idle = idle;
        self.paint(u);
      }
    });
  };

  People.prototype.setMe = function (fields) {
    if (!this.me || !this.meItem) return;
    Object.keys(fields).forEach(function (k) { this.me[k] = fields[k]; }, this);
    this.paintItem(this.meItem, { name: this.me.name, color: this.me.color, status: 'active',
                                  pointer: this.me.pointer, idle: false }, true);
  };

  // the count and the empty-state text, from the same records as the list
  People.prototype.render = function () {
    var others = this.users.size;
    var moving = 0;
    this.users.forEach(function (u) { if (!u.cursor.el.hidden) moving += 1; });
    var total = others + (this.me ? 1 : 0);
    this.dom.count.textContent = String(total);
    this.dom.countLabel.textContent = total === 1 ? 'person here' : 'people here';
    this.dom.empty.classList.toggle('gone', moving > 0);
    if (others === 0) {
      this.dom.emptyTitle.textContent = 'Nobody else is here yet.';
      this.dom.emptySub.textContent = 'Open this page in another window and move the mouse.';
    } else {
      this.dom.emptyTitle.textContent = (others === 1 ? '1 other person is' : others +
        ' other people are') + ' here, not moving yet.';
      this.dom.emptySub.textContent = 'Their cursors appear when they move.';
    }
  };

  lib.People = People;
  lib.IDLE_MS = IDLE_MS;
})(window.cursorshareLib = window.cursorshareLib || {});
