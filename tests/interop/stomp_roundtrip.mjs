// STOMP over SockJS with clients others wrote: @stomp/stompjs on sockjs-client, in node.
//
//   node stomp_roundtrip.mjs <sockjs endpoint URL> <sockjs-client transport>
//
// Connects with only that transport allowed, subscribes, sends MESSAGES (asking a receipt
// for each), waits for each to come back through the broker, disconnects, and prints one
// JSON line: {"transport": the transport sockjs-client used, "received": [...], ...}.
// Any failure prints {"error": ...} and exits 1. The only timer is an upper bound.
import { Client } from '@stomp/stompjs';
import SockJS from 'sockjs-client';

const [url, transport] = process.argv.slice(2);
const destination = `/topic/roundtrip-${transport}`;
const MESSAGES = [
  { body: 'hello', headers: {} },
  // Non-ASCII, characters SockJS escapes, and a NUL: content-length must count bytes.
  { body: 'ünïcødé ☃ 𝄞 \u2028 \u0000 end', headers: { 'content-type': 'text/plain' } },
  // A header value with what STOMP 1.2 must escape in headers.
  { body: 'escaped header', headers: { 'x-note': 'a:b\nc\\d' } },
  // Many TCP segments, yet under the endpoint's max_message_size (64 KiB by default).
  { body: 'x'.repeat(48 * 1024), headers: {} },
];
const UPPER_BOUND_MS = 20000;

let finished = false;
function finish(result, code) {
  if (finished) return;
  finished = true;
  // Exit once written: to a pipe, a write is asynchronous and exit() would cut it short.
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code));
}

const timer = setTimeout(() => finish({ error: `no result within ${UPPER_BOUND_MS} ms` }, 1), UPPER_BOUND_MS);
let socket = null;
const received = [];
const receipts = [];

const client = new Client({
  webSocketFactory: () => {
    socket = new SockJS(url, null, { transports: [transport] });
    return socket;
  },
  reconnectDelay: 0,
  heartbeatIncoming: 0,
  heartbeatOutgoing: 0,
  debug: () => {},
});

client.onStompError = (frame) => finish({ error: `ERROR frame: ${frame.headers.message}` }, 1);
client.onWebSocketClose = (event) => {
  if (received.length < MESSAGES.length || receipts.length < MESSAGES.length) {
    finish({ error: `socket closed early: ${event.code} ${event.reason}` }, 1);
  }
};

client.onConnect = (connected) => {
  const used = socket.transport;
  const whenAllBack = () => {
    if (received.length < MESSAGES.length || receipts.length < MESSAGES.length) return;
    client.deactivate().then(() => {
      clearTimeout(timer);
      const result = { transport: used, version: connected.headers.version };
      finish({ ...result, sent: MESSAGES, received, receipts }, 0);
    });
  };
  client.subscribe(destination, (message) => {
    received.push({ body: message.body, headers: message.headers });
    whenAllBack();
  });
  MESSAGES.forEach((message, index) => {
    const receipt = `r-${index}`;
    client.watchForReceipt(receipt, (frame) => {
      receipts.push(frame.headers['receipt-id']);
      whenAllBack();
    });
    client.publish({ destination, body: message.body, headers: { ...message.headers, receipt } });
  });
};

client.activate();
