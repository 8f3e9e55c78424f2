// The fault test (issue 29): Redis, three gateway nodes behind nginx's
// shipped config (plain round-robin), CLIENTS STOMP clients in Node on
// sockjs-client (websocket, xhr-streaming, xhr-polling), each recovering
// exactly as docs/stomp.md's subscribeKept() does, and a publisher that
// sends RATE publications a second through the three nodes' API, retrying
// any answer but 200 with the same idempotency_key. Every 15-20 s a fault:
// one at a time (a node killed, paused, stopped; Redis restarted empty,
// its subscriptions killed, asleep; clients dropped), then two at once (a
// node paused while Redis restarts empty; Redis asleep while every client
// reconnects; a node killed and every client reconnecting at once).
// Afterwards every acknowledged publication is checked at every client
// that was subscribed when it was made: received once, in order, or a
// loss was announced to it (x-recovered: false) after it, within 30 s.
// TOPOLOGY=sentinel (issue 31): a master, a replica and three Sentinels
// instead of one Redis, the nodes on redis_sentinels with
// redis_min_replicas = 1, and the master killed (kill -9) among the faults:
// Sentinel promotes the replica, and the old master comes back as its
// replica (as a supervisor brings it back).
//   node bench/chaos.mjs          (or: bash bench/chaos.sh)
// Environment: SECONDS_TO_RUN (180), CLIENTS (30), RATE (100), BASE port
// (18580; the topology takes up to BASE + 14), TOPOLOGY (one, sentinel),
// ONLY_FAULTS (indices into the topology's faults), DEBUG_CLIENTS (each client's
// story). Prints one line, and exits 1 unless silent losses, duplicates
// and out-of-order deliveries are all 0, every retried publication arrived
// once, no publication answered 503 went out, and none was refused while
// only the nodes' subscriptions were down.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import SockJS from 'sockjs-client';
import { Client } from '@stomp/stompjs';
import { shippedNginxConfig } from '../tests/browser/lib.mjs';

const ROOT = path.resolve(import.meta.dirname, '..');
const BIN = process.env.GATEWAY_BIN || path.join(ROOT, 'target/release/sockjs-gateway');
const SECONDS = Number(process.env.SECONDS_TO_RUN || 180);
const CLIENTS = Number(process.env.CLIENTS || 30);
const RATE = Number(process.env.RATE || 100);
const BASE = Number(process.env.BASE || 18580);
const KEY = 'chaos-api-key-0123456789';
const TOPIC = '/topic/chaos';
const TRANSPORTS = ['websocket', 'xhr-streaming', 'xhr-polling'];
const REDIS_PORT = BASE + 9;
const TOPOLOGY = process.env.TOPOLOGY || 'one';
// With Sentinel: the other data node, and the Sentinels.
const REPLICA_PORT = BASE + 10;
const SENTINEL_PORTS = [BASE + 11, BASE + 12, BASE + 13];
const MASTER_NAME = 'mymaster';
// A loss told later than this after its publication counts as silent.
const NOTICE_WITHIN_MS = 30000;
const NGINX_PORT = BASE;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chaos-'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.error(new Date().toISOString().slice(11, 23), ...a);
const procs = new Set();

// --- processes ---------------------------------------------------------

function track(proc) {
  procs.add(proc);
  proc.once('exit', () => procs.delete(proc));
  return proc;
}

function exited(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((r) => proc.once('exit', r));
}

async function until(what, check, ms = 15000) {
  const end = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(50);
  }
}

// The first line of a Redis server's answer; to the master by default.
function redisCommand(text, port = masterPort) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(`${text}\r\n`));
    let data = '';
    s.setTimeout(5000, () => { s.destroy(); reject(new Error('redis timed out')); });
    s.on('data', (d) => {
      data += d;
      if (data.includes('\r\n')) { s.end(); resolve(data.split('\r\n')[0]); }
    });
    s.once('error', reject);
  });
}

// The master's port, and its process; with Sentinel, the other data node's.
let masterPort = REDIS_PORT;
let redis;
let replica;
async function startRedis(port = REDIS_PORT, extra = []) {
  const proc = track(spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', dir, '--dbfilename', `dump-${port}.rdb`, '--enable-debug-command', 'yes', ...extra], { stdio: 'ignore' }));
  if (port === REDIS_PORT && extra.length === 0) redis = proc;
  await until('redis', async () => (await redisCommand('PING', port)) === '+PONG');
  return proc;
}

// A Sentinel's answer, whole (its flat arrays as lines, type marks left out).
function sentinelAnswer(port, text) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(`${text}\r\n`));
    let data = '';
    s.setTimeout(500, () => { s.destroy(); resolve(data); });
    s.on('data', (d) => { data += d; });
    s.once('close', () => resolve(data));
    s.once('error', () => resolve(''));
  }).then((d) => d.split('\r\n').filter((l) => l && !/^[*$]/.test(l)));
}

async function sentinelMaster() {
  for (const p of SENTINEL_PORTS) {
    const lines = await sentinelAnswer(p, `SENTINEL GET-MASTER-ADDR-BY-NAME ${MASTER_NAME}`);
    if (lines.length === 2) return Number(lines[1]);
  }
  return null;
}

// A master, its replica and three Sentinels that have met.
async function startSentinels() {
  await startRedis();
  replica = await startRedis(REPLICA_PORT, ['--replicaof', '127.0.0.1', String(REDIS_PORT)]);
  for (const p of SENTINEL_PORTS) {
    const conf = path.join(dir, `sentinel-${p}.conf`);
    fs.writeFileSync(conf, `port ${p}\nbind 127.0.0.1\nsentinel monitor ${MASTER_NAME} 127.0.0.1 ${REDIS_PORT} 2\n`
      + `sentinel down-after-milliseconds ${MASTER_NAME} 2000\nsentinel failover-timeout ${MASTER_NAME} 10000\n`);
    track(spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' }));
  }
  await until('the Sentinels meeting', async () => {
    for (const p of SENTINEL_PORTS) {
      const m = await sentinelAnswer(p, `SENTINEL MASTER ${MASTER_NAME}`);
      const field = (name) => m[m.indexOf(name) + 1];
      if (field('num-slaves') !== '1' || field('num-other-sentinels') !== '2') return false;
    }
    return true;
  }, 30000);
}

// kill -9 the master; once Sentinel promoted the other, the killed one
// comes back as its replica.
async function killMaster() {
  const [deadPort, dead] = masterPort === REDIS_PORT ? [REDIS_PORT, redis] : [REPLICA_PORT, replica];
  const livePort = deadPort === REDIS_PORT ? REPLICA_PORT : REDIS_PORT;
  dead.kill('SIGKILL');
  await exited(dead);
  await until('Sentinel promoting the replica', async () => (await sentinelMaster()) === livePort, 30000);
  masterPort = livePort;
  const back = await startRedis(deadPort, ['--replicaof', '127.0.0.1', String(livePort)]);
  if (deadPort === REDIS_PORT) redis = back; else replica = back;
}

const nodes = [1, 2, 3].map((i) => ({ i, port: BASE + i, api: BASE + 4 + i, proc: null }));

function nodeConfig(n) {
  return `listen = "127.0.0.1:${n.port}"
access_log = false
static_dir = ""
sockjs_client_path = ""
[api]
listen = "127.0.0.1:${n.api}"
key = "${KEY}"
[auth]
anonymous = true
[services.stomp]
prefix = "/stomp"
kind = "stomp"
subscribe = ["/topic/**"]
[[services.stomp.history]]
destinations = ["/topic/**"]
size = 100000
ttl = 600
[cluster]
${TOPOLOGY === 'sentinel'
    ? `redis_sentinels = [${SENTINEL_PORTS.map((p) => `"redis://127.0.0.1:${p}"`).join(', ')}]
redis_master_name = "${MASTER_NAME}"
redis_min_replicas = 1`
    : `redis_url = "redis://127.0.0.1:${REDIS_PORT}/0"`}
secret = "chaos-cluster-secret-0123456789abcdef"
node_id = "n${n.i}"
presence_interval = 0.5
request_timeout = 1
`;
}

async function startNode(n) {
  const file = path.join(dir, `n${n.i}.toml`);
  fs.writeFileSync(file, nodeConfig(n));
  n.proc = track(spawn(BIN, ['--config', file], {
    cwd: ROOT,
    env: { ...process.env, RUST_LOG: process.env.GATEWAY_LOG || 'error' },
    stdio: ['ignore', 'pipe', 'inherit'],
  }));
  await new Promise((resolve, reject) => {
    createInterface({ input: n.proc.stdout }).once('line', resolve);
    n.proc.once('exit', (code) => reject(new Error(`node ${n.i} exited with ${code}`)));
  });
}

let nginx;
async function startNginx() {
  // The shipped config, pointed at the nodes; nginx never gives up on
  // one (a node is back within seconds here).
  const conf = shippedNginxConfig(NGINX_PORT, nodes.map((n) => n.port), dir, { accessLog: false, serverParams: ' max_fails=0' });
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
  nginx = track(spawn(process.env.NGINX || 'nginx', ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', 'stderr', '-g', 'daemon off;'],
    { stdio: ['ignore', 'ignore', fs.openSync(path.join(dir, 'nginx.err'), 'a')] }));
  await until('nginx', () => new Promise((resolve) => {
    const s = net.connect(NGINX_PORT, '127.0.0.1', () => { s.end(); resolve(true); });
    s.once('error', () => resolve(false));
  }));
}

async function joined() {
  return (await redisCommand('SCARD sockjs-gateway:nodes')) === ':3';
}

// --- clients, exactly as docs/stomp.md's subscribeKept() ---------------

const clients = [];

function makeClient(n) {
  const transport = TRANSPORTS[n % TRANSPORTS.length];
  const c = {
    n, transport, start: null, received: [], announced: [], serverDuplicates: 0, resubscribes: 0, events: [],
    stored: null, // what localStorage would hold
  };
  const load = () => c.stored;
  const save = (offset, epoch) => {
    if (offset === undefined || epoch === undefined) return;
    const old = load();
    // A mark never replaces a stream's position: recovering from that
    // position later misses nothing, and repeats nothing.
    if (old && !old.epoch.startsWith('@') && epoch.startsWith('@')) return;
    if (!old || old.epoch !== epoch || Number(offset) > old.offset) c.stored = { offset: Number(offset), epoch };
  };
  const reloadState = (why) => c.announced.push({ at: Date.now(), why });
  const skips = (pos, offset, epoch) => pos && (pos.epoch === epoch ? offset > pos.offset + 1 : offset !== 1);
  const stomp = new Client({
    webSocketFactory: () => new SockJS(`http://127.0.0.1:${NGINX_PORT}/stomp`, null, { transports: [transport] }),
    reconnectDelay: 200,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    debug: () => {},
  });
  let subscription;
  let receipts = 0;
  const subscribe = () => {
    const pos = load();
    // Until its RECEIPT, a recovering subscription gets its recovery: in
    // order, whatever offset it starts at.
    const state = { recovering: !!pos };
    const headers = { receipt: `sub-${n}-${++receipts}` };
    if (pos) {
      headers['x-recover-offset'] = String(pos.offset);
      headers['x-recover-epoch'] = pos.epoch;
    }
    c.events.push({ at: Date.now(), what: 'subscribe', from: pos && `${pos.offset}@${pos.epoch}` });
    stomp.watchForReceipt(headers.receipt, (r) => {
      state.recovering = false;
      c.events.push({ at: Date.now(), what: 'receipt', recovered: r.headers['x-recovered'], pos: `${r.headers['x-stream-offset']}@${r.headers['x-stream-epoch']}`, err: r.headers['x-recover-error'] });
      if (c.start === null) c.start = Date.now();
      if (r.headers['x-recovered'] === 'false') reloadState(r.headers['x-recover-error'] || 'receipt');
      save(r.headers['x-stream-offset'], r.headers['x-stream-epoch']);
    });
    subscription = stomp.subscribe(TOPIC, (m) => {
      const offset = m.headers['x-stream-offset'];
      const epoch = m.headers['x-stream-epoch'];
      if (m.headers['x-recovered'] === 'false') {
        c.events.push({ at: Date.now(), what: 'notice', pos: `${offset}@${epoch}`, why: m.headers['x-recover-error'] });
        reloadState(m.headers['x-recover-error'] || 'message');
        save(offset, epoch);
        return;
      }
      if (offset !== undefined) {
        const pos = load();
        if (pos && pos.epoch === epoch && Number(offset) <= pos.offset) { c.serverDuplicates++; return; }
        if (!state.recovering && skips(pos, Number(offset), epoch)) {
          c.events.push({ at: Date.now(), what: 'gap', got: `${offset}@${epoch}`, had: `${pos.offset}@${pos.epoch}` });
          c.resubscribes++;
          subscription.unsubscribe();
          subscribe();
          return;
        }
      }
      // onMessage: what the application sees.
      c.received.push({ id: JSON.parse(m.body).id, offset: Number(offset), epoch, at: Date.now() });
      save(offset, epoch);
    }, headers);
  };
  stomp.onConnect = () => {
    c.connects = (c.connects || 0) + 1;
    subscribe();
  };
  stomp.onWebSocketClose = (e) => {
    c.closes = (c.closes || 0) + 1;
    c.lastClose = `${e.code} ${e.reason}`;
    c.events.push({ at: Date.now(), what: 'close', code: e.code, reason: e.reason });
  };
  stomp.onWebSocketError = () => {};
  stomp.onStompError = () => {};
  c.stomp = stomp;
  stomp.activate();
  // sockjs-client's Node XHR driver does not notice a connection the
  // server dropped until it sends (a browser's XHR errors at once): a
  // bare line end every second (a STOMP heart-beat the gateway ignores)
  // finds it, as a page's own traffic would.
  c.keepalive = setInterval(() => {
    if (stomp.connected && transport !== 'websocket') {
      try { stomp.webSocket.send('\n'); } catch { /* closing */ }
    }
  }, 1000);
  return c;
}

// Every client's connection cut at once; stompjs reconnects them.
async function dropClients() {
  await Promise.all(clients.map((c) => c.stomp.forceDisconnect()));
}

// --- the publisher -----------------------------------------------------

const published = []; // { id, began, acked, retried, duplicate }
let publishing = true;
let nextNode = 0;

async function publishOne(id) {
  const p = { id, began: Date.now(), acked: null, retried: false, answers: [] };
  published.push(p);
  const body = JSON.stringify({ destination: TOPIC, body: JSON.stringify({ id }), idempotency_key: `pub-${id}`, count: false });
  const end = Date.now() + 60000;
  while (Date.now() < end) {
    const n = nodes[nextNode++ % nodes.length];
    let status;
    try {
      const r = await fetch(`http://127.0.0.1:${n.api}/api/publish`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(5000),
      });
      status = r.status;
      const answer = await r.json().catch(() => ({}));
      if (status === 200) {
        p.acked = Date.now();
        p.duplicate = !!answer.duplicate;
        p.position = `${answer.offset}@${answer.epoch}`;
        return;
      }
    } catch (e) {
      status = e.name;
    }
    p.answers.push({ status, at: Date.now() });
    p.retried = true;
    await sleep(100);
  }
}

async function publisher() {
  let id = 0;
  const inFlight = new Set();
  while (publishing) {
    const started = Date.now();
    const job = publishOne(++id).finally(() => inFlight.delete(job));
    inFlight.add(job);
    await sleep(Math.max(0, 1000 / RATE - (Date.now() - started)));
  }
  await Promise.all(inFlight);
}

// --- faults ------------------------------------------------------------

const pick = () => nodes[Math.floor(Math.random() * nodes.length)];
const signal = (n, sig) => n.proc.kill(sig);

const ONE_REDIS_FAULTS = [
  ['a node killed (kill -9)', async () => {
    const n = pick();
    signal(n, 'SIGKILL');
    await exited(n.proc);
    await sleep(3000);
    await startNode(n);
  }],
  ['a node paused 5 s (SIGSTOP)', async () => {
    const n = pick();
    signal(n, 'SIGSTOP');
    await sleep(5000);
    signal(n, 'SIGCONT');
  }],
  ['Redis restarted empty', async () => {
    redis.kill('SIGKILL');
    await exited(redis);
    await startRedis();
  }],
  ['the nodes\' subscriptions killed (CLIENT KILL TYPE pubsub)', async () => {
    await redisCommand('CLIENT KILL TYPE pubsub');
  }],
  ['Redis asleep 3 s (DEBUG SLEEP 3)', async () => {
    await redisCommand('DEBUG SLEEP 3');
  }],
  ['a node stopped (SIGTERM) and started again', async () => {
    const n = pick();
    signal(n, 'SIGTERM');
    await exited(n.proc);
    await startNode(n);
  }],
  ['every client dropped', dropClients],
  ['two at once: a node paused while Redis restarts empty', async () => {
    const n = pick();
    signal(n, 'SIGSTOP');
    redis.kill('SIGKILL');
    await exited(redis);
    await startRedis();
    await sleep(3000);
    signal(n, 'SIGCONT');
  }],
  ['two at once: Redis asleep while every client reconnects', async () => {
    const sleeping = redisCommand('DEBUG SLEEP 3');
    await dropClients();
    await sleeping;
  }],
  ['two at once: a node killed and every client reconnecting at once', async () => {
    const n = pick();
    signal(n, 'SIGKILL');
    await exited(n.proc);
    await dropClients();
    await sleep(2000);
    await startNode(n);
  }],
];

// With Sentinel: the master killed, and the faults of the nodes, the
// subscriptions and the clients; not Redis restarted empty (a master
// restarted empty without persistence is what Sentinel deployments avoid).
const SENTINEL_FAULTS = [
  ['the master killed (kill -9): Sentinel promotes the replica', killMaster],
  ...ONE_REDIS_FAULTS.filter(([name]) => /^a node|subscriptions|every client dropped/.test(name)),
  ['two at once: the master killed and every client reconnecting at once', async () => {
    const killing = killMaster();
    await dropClients();
    await killing;
  }],
];
const FAULTS = TOPOLOGY === 'sentinel' ? SENTINEL_FAULTS : ONE_REDIS_FAULTS;

// --- the run -----------------------------------------------------------

async function cleanup() {
  // nginx's master stops its workers itself.
  if (nginx && procs.has(nginx)) {
    nginx.kill('SIGTERM');
    await exited(nginx);
  }
  for (const p of procs) {
    try { p.kill('SIGCONT'); p.kill('SIGKILL'); } catch { /* gone */ }
  }
  fs.rmSync(dir, { recursive: true, force: true });
}
process.on('SIGINT', async () => { await cleanup(); process.exit(130); });

async function main() {
  if (TOPOLOGY === 'sentinel') await startSentinels(); else await startRedis();
  for (const n of nodes) await startNode(n);
  await until('the nodes joining', joined);
  await startNginx();
  for (let n = 0; n < CLIENTS; n++) clients.push(makeClient(n));
  await until('every client subscribed', async () => clients.every((c) => c.start !== null), 30000);
  log(`${CLIENTS} clients subscribed; publishing ${RATE}/s for ${SECONDS} s`);
  const run = publisher();
  const end = Date.now() + SECONDS * 1000;
  let f = 0;
  const faults = [];
  // ONLY_FAULTS=7,8: those of FAULTS alone, in turn (to look at one).
  const chosen = process.env.ONLY_FAULTS ? process.env.ONLY_FAULTS.split(',').map((i) => FAULTS[Number(i)]) : FAULTS;
  while (Date.now() + 20000 < end) {
    await sleep(15000 + Math.random() * 5000);
    const [name, fault] = chosen[f++ % chosen.length];
    log(`fault: ${name}`);
    const window = { name, from: Date.now() };
    faults.push(window);
    await fault();
    window.to = Date.now();
  }
  await sleep(Math.max(0, end - Date.now()));
  publishing = false;
  await run;
  // Quiet: every node up, every client caught up (or given up on).
  for (const n of nodes) {
    if (n.proc.exitCode !== null || n.proc.signalCode !== null) await startNode(n);
  }
  await until('the nodes joining again', joined, 30000).catch((e) => log(e.message));
  const acked = published.filter((p) => p.acked !== null);
  const settle = Date.now() + 30000;
  const caughtUp = (c) => {
    const got = new Set(c.received.map((r) => r.id));
    return acked.every((p) => p.began < c.start || got.has(p.id));
  };
  while (Date.now() < settle && !clients.every(caughtUp)) await sleep(200);
  report(acked, faults);
}

// Which fault an answer at `at` came under (its time, and 5 s after).
function under(faults, at) {
  return faults.find((f) => at >= f.from && at <= (f.to || Infinity) + 5000);
}

function report(acked, faults) {
  let silent = 0;
  let duplicates = 0;
  let outOfOrder = 0;
  let announced = 0;
  let retriedWrong = 0;
  let slowestNotice = 0;
  const examples = [];
  for (const c of clients) {
    const seen = new Map();
    for (const r of c.received) seen.set(r.id, (seen.get(r.id) || 0) + 1);
    for (const [, k] of seen) if (k > 1) duplicates += k - 1;
    // Within an epoch, offsets only go up.
    for (let i = 1; i < c.received.length; i++) {
      const [a, b] = [c.received[i - 1], c.received[i]];
      if (a.epoch === b.epoch && b.offset <= a.offset) outOfOrder++;
    }
    for (const p of acked) {
      if (p.began < c.start) continue;
      const k = seen.get(p.id) || 0;
      if (k === 0) {
        // Told, and soon: the first notice after the publication was
        // made, within NOTICE_WITHIN of its acknowledgement.
        const told = c.announced.find((a) => a.at >= p.began);
        const lag = told ? told.at - p.acked : Infinity;
        if (lag <= NOTICE_WITHIN_MS) {
          announced++;
          slowestNotice = Math.max(slowestNotice, lag);
        } else {
          silent++;
          if (examples.length < 5) examples.push(`client ${c.n} (${c.transport}) missed ${p.id}`);
          (c.silent ||= []).push(p);
        }
      }
      if (p.retried && k > 1) retriedWrong++;
    }
  }
  const retried = acked.filter((p) => p.retried).length;
  // A 503 says nothing went out. A publication whose every failed try was
  // a 503, and whose last try was told "duplicate", went out on a 503.
  const published503 = acked.filter((p) => p.duplicate && p.answers.length > 0
    && p.answers.every((a) => a.status === 503)).length;
  // 503s and 504s by the fault they came under.
  const refusals = {};
  for (const p of published) {
    for (const a of p.answers) {
      const f = under(faults, a.at);
      const k = `${f ? f.name : 'no fault'}: ${a.status}`;
      refusals[k] = (refusals[k] || 0) + 1;
    }
  }
  // Redis was up, and so was every node's publishing connection.
  const refusedWithRedisUp = Object.entries(refusals)
    .filter(([k]) => k.startsWith('the nodes\' subscriptions killed') && k.endsWith(': 503'))
    .reduce((s, [, n]) => s + n, 0);
  const unacked = published.length - acked.length;
  const notices = clients.reduce((s, c) => s + c.announced.length, 0);
  const resubscribes = clients.reduce((s, c) => s + c.resubscribes, 0);
  const serverDuplicates = clients.reduce((s, c) => s + c.serverDuplicates, 0);
  log(`faults: ${faults.map((f) => f.name).join('; ')}`);
  log(`answers but 200, by fault: ${JSON.stringify(refusals)}`);
  log(`${published503} answered 503 though published; ${refusedWithRedisUp} refused while only subscriptions were down`);
  log(`${published.length} published, ${unacked} never acknowledged, ${retried} acknowledged after a retry; ` +
    `${notices} loss notices, ${resubscribes} resubscriptions on a gap, ${serverDuplicates} repeats dropped by the snippet`);
  for (const e of examples) log(e);
  if (process.env.DEBUG_CLIENTS) {
    const t0 = Math.min(...clients.map((c) => c.start));
    const rel = (at) => ((at - t0) / 1000).toFixed(2);
    for (const c of clients.filter((x) => x.silent)) {
      const first = c.silent[0];
      const last = c.silent[c.silent.length - 1];
      log(`client ${c.n} ${c.transport} missed ${c.silent.length}: ids ${first.id}..${last.id} (${first.position}..${last.position}), made ${rel(first.began)}..${rel(last.began)}`);
      for (const e of c.events.filter((e) => e.at >= first.began - 5000 && e.at <= last.acked + 10000)) {
        log(`   ${rel(e.at)} ${JSON.stringify({ ...e, at: undefined })}`);
      }
      const near = c.received.filter((r) => r.at >= first.began - 2000 && r.at <= last.acked + 5000);
      log(`   received near: ${near.slice(0, 3).map((r) => `${r.id}=${r.offset}@${r.epoch}`).join(' ')} ... ${near.slice(-3).map((r) => `${r.id}=${r.offset}@${r.epoch}`).join(' ')}`);
    }
    for (const c of clients) {
      const last = c.received[c.received.length - 1];
      log(`client ${c.n} ${c.transport}: ${c.received.length} got, last ${last && last.id}, connects ${c.connects}, ` +
        `closes ${c.closes || 0} (${c.lastClose || '-'}), connected ${c.stomp.connected}, notices ${c.announced.length}`);
    }
  }
  const line = `chaos (${TOPOLOGY}): ${acked.length} acknowledged, ${silent} silent losses, ${duplicates} duplicates, ` +
    `${outOfOrder} out of order, ${announced} announced losses`;
  console.log(line);
  console.log(JSON.stringify({
    topology: TOPOLOGY, seconds: SECONDS, clients: CLIENTS, rate: RATE, acknowledged: acked.length, silent, duplicates, out_of_order: outOfOrder,
    announced, slowest_notice_ms: slowestNotice, retried, retried_delivered_twice: retriedWrong, never_acknowledged: unacked, loss_notices: notices,
    resubscribes, snippet_dropped_repeats: serverDuplicates, published_though_503: published503,
    refused_with_redis_up: refusedWithRedisUp, answers_by_fault: refusals, faults: faults.map((f) => f.name),
  }));
  const ok = silent === 0 && duplicates === 0 && outOfOrder === 0 && retriedWrong === 0 && unacked === 0
    && published503 === 0 && refusedWithRedisUp === 0;
  process.exitCode = ok ? 0 : 1;
}

main()
  .catch((e) => { console.error(e); process.exitCode = 2; })
  .finally(async () => {
    for (const c of clients) {
      clearInterval(c.keepalive);
      c.stomp.deactivate().catch(() => {});
    }
    await cleanup();
    process.exit();
  });
