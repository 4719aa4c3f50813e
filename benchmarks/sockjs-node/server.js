'use strict';
// The sockjs-node cursor tutorial server: the baseline for `cursorshare bench compare`.
//
// Every connection gets an id and a colour; every message it sends is parsed as JSON and,
// with `sender` and `color` added, written to every open connection of its room, the sender
// included. The room is the `room` query parameter of the session URL, as cursorshare reads it
// (`lobby` when absent), so `cursorshare bench --rooms K` runs the same workload on both.
// SockJS endpoint at /ws, default options (response_limit 128 KiB, heartbeat 25 s).
//
// Usage: node server.js [PORT [HOST]]   (or PORT / HOST in the environment; default 8081 127.0.0.1)

const http = require('http');
const sockjs = require('sockjs');

const port = parseInt(process.argv[2] || process.env.PORT || '8081', 10);
const host = process.argv[3] || process.env.HOST || '127.0.0.1';

const COLORS = [
  '#e6194b', '#3cb44b', '#ffe119', '#4363d8', '#f58231', '#911eb4', '#46f0f0', '#f032e6',
  '#bcf60c', '#fabebe', '#008080', '#e6beff', '#9a6324', '#800000', '#aaffc3', '#808000',
  '#ffd8b1', '#000075', '#808080',
];

const DEFAULT_ROOM = 'lobby';
const rooms = new Map(); // room name -> Map(id -> connection)
let counter = 0;

// conn.url is the URL of the request that opened the session (sockjs-node's transport.js).
function roomOf(conn) {
  const room = new URL(conn.url || '/', 'http://localhost').searchParams.get('room');
  return room || DEFAULT_ROOM;
}

const service = sockjs.createServer({
  prefix: '/ws',
  log: function () {},
});

service.on('connection', function (conn) {
  counter += 1;
  const id = counter.toString(36);
  const color = COLORS[counter % COLORS.length];
  const room = roomOf(conn);
  let members = rooms.get(room);
  if (members === undefined) {
    members = new Map();
    rooms.set(room, members);
  }
  members.set(id, conn);

  conn.on('data', function (message) {
    let msg;
    try {
      msg = JSON.parse(message);
    } catch (e) {
      return;
    }
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
      return;
    }
    msg.sender = id;
    msg.color = color;
    const out = JSON.stringify(msg);
    for (const c of members.values()) {
      c.write(out);
    }
  });

  conn.on('close', function () {
    members.delete(id);
    if (members.size === 0) {
      rooms.delete(room);
    }
  });
});

const server = http.createServer();
service.installHandlers(server);
server.listen(port, host, function () {
  console.log('sockjs-node tutorial server listening on http://' + host + ':' + port + '/ws');
});

function shutdown() {
  server.close();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
