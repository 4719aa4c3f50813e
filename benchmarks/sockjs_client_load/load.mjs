// A second load generator for cursorshare: the real sockjs-client 1.6.1 in node, so the
// senders, receivers and framing are the ones browsers run (over HTTP: one send in flight, a
// 25 ms pause after each, moves batched meanwhile). It cross-checks `cursorshare bench`.
//
//   node load.mjs --url http://127.0.0.1:8080/ws --transport xhr-streaming \
//     --clients 1000 --rooms 200 --rate 30 --duration 15 --warmup 3 --drain 2
//
// Client i is in room i % K (the session URL's `room` query, r<i % K>, as our bench names
// rooms; sockjs-client keeps the base URL's query on every request; with K = 1 no query) and
// moves at `rate` Hz on one global schedule: its k-th move is due at start + (k*N + i)/(N*rate)
// s. A move is the tutorial shape {"x","y","t","s","c"}: t in ms on the run's clock (ms since
// --start, epoch ms, shared by every process of a run), s the client's sequence number, c its
// index. Every client receives its room's moves; observers (--observers, default all) parse
// each one for latency (moves with t inside the window) and coverage (per receiver and sender
// of its room, the highest s received by the end of the drain against the sender's window
// seqs; a move the server superseded by a later one of the same sender counts as delivered).
// Prints one JSON line; gen_cpu_percent and loop_lag_p99_ms show a generator-bound point.
// --part p/P runs only clients whose room r has r % P == p (every room whole in one process),
// so P processes started with the same --start share one run; each prints its own line with
// its rooms' figures.

import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import SockJS from 'sockjs-client';

const { values: opt } = parseArgs({
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:8080/ws' },
    transport: { type: 'string', default: 'websocket' },
    clients: { type: 'string', default: '100' },
    rooms: { type: 'string', default: '1' },
    rate: { type: 'string', default: '30' },
    duration: { type: 'string', default: '15' },
    warmup: { type: 'string', default: '3' },
    drain: { type: 'string', default: '2' },
    observers: { type: 'string', default: '' }, // per room; default: every client observes
    'connect-concurrency': { type: 'string', default: '50' },
    'connect-timeout': { type: 'string', default: '30' },
    start: { type: 'string', default: '' }, // epoch ms of the schedule's start (multi-process)
    part: { type: 'string', default: '0/1' },
    'server-pid': { type: 'string', default: '' }, // report its CPU % over the window
  },
});
const N = Number(opt.clients);
const K = Math.max(1, Number(opt.rooms));
const RATE = Number(opt.rate);
const DURATION = Number(opt.duration);
const WARMUP = Number(opt.warmup);
const DRAIN = Number(opt.drain);
const OBSERVERS_PER_ROOM = opt.observers === '' ? Infinity : Number(opt.observers);
const [PART, PARTS] = opt.part.split('/').map(Number);
const PERIOD_MS = 1000 / RATE;
const SLOT_MS = PERIOD_MS / N;

// The run's clock: epoch ms (performance.timeOrigin is the process's start in epoch ms).
const epochNow = () => performance.timeOrigin + performance.now();

// A local process's user+sys CPU seconds, from /proc/PID/stat (fields 14 and 15, in ticks of
// 1/100 s, the USER_HZ of every Linux architecture node runs on); null when unreadable.
function cpuSecondsOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return null;
  }
}

// Every CPU's busy time (all but idle and iowait) in seconds, from /proc/stat's `cpu` line.
function machineBusySeconds() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
    return (f[1] + f[2] + f[3] + f[6] + f[7] + f[8]) / 100;
  } catch {
    return null;
  }
}

// Latency histogram: 0.1 ms buckets below 1 s, then 10 ms buckets up to 60 s (last = more).
const FINE = 10000;
const BUCKETS = FINE + 5900;
const bucketOf = (ms) => {
  if (ms < 1000) return ms > 0 ? Math.floor(ms * 10) : 0;
  return Math.min(BUCKETS - 1, FINE + Math.floor((ms - 1000) / 10));
};
const bucketMid = (i) => (i < FINE ? (i + 0.5) / 10 : 1000 + (i - FINE) * 10 + 5);
function percentile(hist, q) {
  let total = 0;
  for (const n of hist) total += n;
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil((q / 100) * total));
  let seen = 0;
  for (let i = 0; i < hist.length; i++) {
    seen += hist[i];
    if (seen >= rank) return Math.round(bucketMid(i) * 100) / 100;
  }
  return null;
}

// A cursor path: 64 points on an ellipse, each client starting at its own offset.
const PATH = Array.from({ length: 64 }, (_, k) => {
  const a = (2 * Math.PI * k) / 64;
  return [500 + Math.round(400 * Math.cos(a)), 400 + Math.round(300 * Math.sin(a))];
});

const tally = {
  received: 0, // messages received inside the window, every client
  crossRoom: 0,
  foreign: 0,
  errors: 0,
  lastError: '',
  inWindow: false,
};
function error(text) {
  tally.errors += 1;
  tally.lastError = text;
}

const rooms = new Map(); // room -> { hist, clients: [] }
const clients = [];
for (let i = 0; i < N; i++) {
  const room = i % K;
  if (room % PARTS !== PART) continue;
  if (!rooms.has(room)) rooms.set(room, { hist: new Uint32Array(BUCKETS), members: [] });
  const r = rooms.get(room);
  const member = Math.floor(i / K); // c // K is the sender's member number in its room
  const c = {
    index: i,
    room,
    member,
    observer: r.members.length < OBSERVERS_PER_ROOM,
    sock: null,
    open: false,
    seq: 0,
    first: 0, // window's first seq
    last: -1, // window's last seq
    lastSeen: null, // highest s received per member of the room
  };
  r.members.push(c);
  clients.push(c);
}
const membersPerRoom = Math.ceil(N / K);
const overall = new Uint32Array(BUCKETS);
let winLo = Infinity; // the window on the run's clock, ms
let winHi = Infinity;
let t0 = 0; // epoch ms of the run's clock origin (the schedule's start)

function onMessage(c, hist, data) {
  if (tally.inWindow) tally.received += 1;
  if (!c.observer) return;
  const now = epochNow() - t0;
  let m;
  try {
    m = JSON.parse(data);
  } catch {
    tally.foreign += 1;
    return;
  }
  const { c: from, s, t } = m;
  if (!Number.isInteger(from) || from < 0 || from >= N || !Number.isInteger(s)) {
    tally.foreign += 1;
    return;
  }
  if (from % K !== c.room) {
    tally.crossRoom += 1;
    error(`room ${c.room} received a move of client ${from} (room ${from % K})`);
    return;
  }
  const p = Math.floor(from / K);
  if (s > c.lastSeen[p]) c.lastSeen[p] = s;
  if (t >= winLo && t < winHi) {
    const b = bucketOf(now - t);
    hist[b] += 1;
    overall[b] += 1;
  }
}

function openClient(c, timeoutMs) {
  return new Promise((resolve) => {
    const query = K > 1 ? `?room=r${c.room}` : '';
    const sock = new SockJS(opt.url + query, null, { transports: [opt.transport] });
    const hist = rooms.get(c.room).hist;
    c.sock = sock;
    const timer = setTimeout(() => {
      error(`${opt.transport} open: no open frame within ${timeoutMs} ms`);
      sock.close();
      resolve(false);
    }, timeoutMs);
    sock.onopen = () => {
      clearTimeout(timer);
      c.open = true;
      if (c.observer) c.lastSeen = new Array(membersPerRoom).fill(-1);
      resolve(true);
    };
    sock.onmessage = (e) => onMessage(c, hist, e.data);
    sock.onclose = (e) => {
      clearTimeout(timer);
      if (c.open && !closing) error(`${opt.transport}: session closed ${e.code} ${e.reason}`);
      c.open = false;
      resolve(false);
    };
  });
}

async function openAll() {
  const timeoutMs = Number(opt['connect-timeout']) * 1000;
  let next = 0;
  const worker = async () => {
    while (next < clients.length) await openClient(clients[next++], timeoutMs);
  };
  await Promise.all(Array.from({ length: Number(opt['connect-concurrency']) }, worker));
}

function move(c, now) {
  const s = c.seq++;
  const [x, y] = PATH[(s + c.index * 7) & 63];
  c.sock.send(JSON.stringify({ x, y, t: Math.round(now * 1000) / 1000, s, c: c.index }));
}

let closing = false;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  await openAll();
  const connected = clients.filter((c) => c.open);
  // The schedule's start: given (every process of a run shares it) or 1 s from now.
  t0 = opt.start ? Number(opt.start) : epochNow() + 1000;
  winLo = WARMUP * 1000;
  winHi = winLo + DURATION * 1000;
  const m = connected.length;
  const lagHist = new Uint32Array(BUCKETS);
  // Each sample is the interval between two timer wake-ups; minus the interval asked for,
  // it is how long the loop was busy elsewhere (the lag every timer and socket suffered).
  const LOOP_RESOLUTION_MS = 5;
  const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  let skipped = 0;
  let slots = 0;
  let cpuStart = null;
  let serverCpuStart = null;
  let serverCpu = null;
  let machineStart = null;
  let machineBusy = null;
  let wallStart = 0;
  let cpu = { user: 0, system: 0 };
  let windowS = 0;
  if (m > 0) {
    let j = 0;
    const dueOf = (jj) => (Math.floor(jj / m) * N + connected[jj % m].index) * SLOT_MS;
    let due = dueOf(0);
    await sleep(Math.max(0, t0 - epochNow()));
    for (;;) {
      const now = epochNow() - t0;
      if (!tally.inWindow && now >= winLo) {
        tally.inWindow = true;
        for (const c of connected) c.first = c.seq;
        cpuStart = process.cpuUsage();
        serverCpuStart = opt['server-pid'] ? cpuSecondsOf(opt['server-pid']) : null;
        machineStart = machineBusySeconds();
        wallStart = now;
        loop.enable();
      }
      if (now >= winHi) {
        tally.inWindow = false;
        for (const c of connected) c.last = c.seq - 1;
        cpu = process.cpuUsage(cpuStart);
        const serverCpuEnd = serverCpuStart === null ? null : cpuSecondsOf(opt['server-pid']);
        if (serverCpuEnd !== null) serverCpu = serverCpuEnd - serverCpuStart;
        const machineEnd = machineBusySeconds();
        if (machineStart !== null && machineEnd !== null) machineBusy = machineEnd - machineStart;
        windowS = (now - wallStart) / 1000;
        loop.disable();
        break;
      }
      while (due <= now) {
        const c = connected[j % m];
        const late = now - due;
        if (tally.inWindow) slots += 1;
        if (late > PERIOD_MS) {
          if (tally.inWindow) skipped += 1;
        } else {
          if (tally.inWindow) lagHist[bucketOf(late)] += 1;
          if (c.open) move(c, now);
        }
        j += 1;
        due = dueOf(j);
      }
      await sleep(Math.max(1, Math.min(due, winHi) - (epochNow() - t0)));
    }
    await sleep(DRAIN * 1000);
  }
  closing = true;

  // Coverage per room: each observer x each connected sender of its room.
  let covered = 0;
  let expected = 0;
  let sent = 0;
  let roomCoverageMin = null;
  let roomP99Max = null;
  const isConnected = new Set(connected);
  for (const [, r] of rooms) {
    const live = r.members.filter((c) => isConnected.has(c));
    let rc = 0;
    let re = 0;
    for (const s of live) sent += Math.max(0, s.last - s.first + 1);
    for (const recv of live) {
      if (!recv.observer) continue;
      for (const s of live) {
        const n = s.last - s.first + 1;
        if (n <= 0) continue;
        re += n;
        const seen = recv.lastSeen[s.member];
        if (seen >= s.first) rc += Math.min(seen, s.last) - s.first + 1;
      }
    }
    covered += rc;
    expected += re;
    if (re > 0) roomCoverageMin = Math.min(roomCoverageMin ?? 1, rc / re);
    const p99 = percentile(r.hist, 99);
    if (p99 !== null) roomP99Max = Math.max(roomP99Max ?? 0, p99);
  }
  for (const c of clients) if (c.sock) c.sock.close();

  const cpuPercent = windowS > 0 ? (100 * (cpu.user + cpu.system)) / 1e6 / windowS : 0;
  const loopP99 = windowS > 0 ? Math.max(0, loop.percentile(99) / 1e6 - LOOP_RESOLUTION_MS) : 0;
  const round = (v, d = 3) => (v === null ? null : Math.round(v * 10 ** d) / 10 ** d);
  const result = {
    generator: 'sockjs-client 1.6.1 (node ' + process.version + ')',
    transport: opt.transport,
    clients: N,
    rooms: K,
    part: opt.part,
    own_clients: clients.length,
    connected: connected.length,
    rate: RATE,
    window_s: round(windowS),
    sent,
    sent_per_s: round(windowS ? sent / windowS : 0, 1),
    delivered_per_s: round(windowS ? tally.received / windowS : 0, 1),
    coverage: expected ? round(covered / expected, 4) : null,
    room_coverage_min: round(roomCoverageMin, 4),
    latency_p50_ms: percentile(overall, 50),
    latency_p95_ms: percentile(overall, 95),
    latency_p99_ms: percentile(overall, 99),
    room_p99_max_ms: roomP99Max,
    cross_room: tally.crossRoom,
    foreign: tally.foreign,
    errors: tally.errors,
    last_error: tally.lastError,
    skipped,
    slots,
    schedule_lag_p99_ms: percentile(lagHist, 99),
    server_cpu_percent: serverCpu === null || !windowS ? null : round((100 * serverCpu) / windowS, 1),
    gen_cpu_percent: round(cpuPercent, 1),
    loop_lag_p99_ms: round(loopP99, 2),
  };
  // What the rest of the machine (other programs, other generator processes) used meanwhile.
  result.other_cpu_percent =
    machineBusy === null || serverCpu === null || !windowS
      ? null
      : round((100 * (machineBusy - serverCpu)) / windowS - cpuPercent, 1);
  // The limits `cursorshare bench` applies to itself (cursorshare/bench/results.py), and the
  // event loop's own lag: past any of them the generator, not the server, may set the figures.
  result.generator_bound =
    result.gen_cpu_percent >= 90 ||
    (result.schedule_lag_p99_ms ?? 0) > 10 ||
    skipped > 0.001 * slots ||
    result.loop_lag_p99_ms > 10;
  process.stdout.write(JSON.stringify(result) + '\n');
  // sockjs-client's timers (heartbeat, reconnect of a closing transport) may keep node alive.
  setTimeout(() => process.exit(0), 500).unref();
}

main().catch((e) => {
  process.stderr.write(String(e?.stack ?? e) + '\n');
  process.exit(1);
});
