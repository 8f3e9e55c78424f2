// Shared helpers for the browser and proxy tests: start gateway processes
// (the release binary) and nginx on loopback ports, launch Debian's
// Chromium through playwright-core, and run one transport through its paces.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const BIN = process.env.GATEWAY_BIN || path.join(ROOT, 'target/release/sockjs-gateway');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

// Every transport sockjs-client 1.6 knows, in its own order.
export const TRANSPORTS = [
  'websocket', 'xhr-streaming', 'xdr-streaming', 'eventsource', 'iframe-eventsource',
  'htmlfile', 'iframe-htmlfile', 'xhr-polling', 'xdr-polling', 'iframe-xhr-polling', 'jsonp-polling',
];

// Transports sockjs-client will not pick in Chromium, and why (from the
// transports' `enabled()` checks in sockjs-client 1.6.1).
export function wontPick(transport, crossOrigin) {
  if (transport.startsWith('xdr-')) return 'needs XDomainRequest, which only old Internet Explorer has';
  if (transport === 'htmlfile' && crossOrigin) return 'sockjs-client enables htmlfile only same-origin (iframe-htmlfile covers cross-origin)';
  return null;
}

// What every transport must carry back unchanged.
const escaped = [];
for (let c = 0; c < 0x10000; c++) {
  const inRange = c < 0x20 || (c >= 0x7f && c <= 0x9f) || (c >= 0x200c && c <= 0x200f) || (c >= 0x2028 && c <= 0x202f) ||
    (c >= 0x2060 && c <= 0x206f) || (c >= 0xfff0 && c <= 0xffff) || c === 0xad || c === 0xfeff;
  if (inRange) escaped.push(c);
}
export const PAYLOADS = {
  ascii: 'hello world',
  'non-ASCII': 'zażółć gęślą jaźń — 日本語 — 😀🚀 — ünïcödé',
  'SockJS-escaped code points': String.fromCharCode(...escaped),
  'markup and percent': '</script><script>window.pwned=1</script> 100% %41 %E0%A4%A " \\ \' \r\n',
  '100 KB': ('0123456789abcdef-ł'.repeat(5700)).slice(0, 100 * 1024),
};

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sockjs-gw-test-'));
let configs = 0;

// Starts a gateway with `toml`; resolves with { url, port, stop() }.
export async function startGateway(toml) {
  const file = path.join(tmp, `gw-${++configs}.toml`);
  fs.writeFileSync(file, toml);
  return startServer('gateway', BIN, ['--config', file, '--listen', '127.0.0.1:0'], {
    cwd: ROOT,
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' },
  });
}

// Spawns a server that prints "... listening on URL" as its first line;
// resolves with { url, port, proc, stop() }.
async function startServer(what, command, args, options = {}) {
  const proc = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout });
    rl.once('line', resolve);
    proc.once('exit', (code) => reject(new Error(`${what} exited with ${code}`)));
  });
  const url = line.trim().split(' ').pop();
  return { url, port: Number(new URL(url).port), proc, stop: () => stopProcess(proc) };
}

export function stopProcess(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    proc.once('exit', resolve);
    proc.kill('SIGTERM');
  });
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

// Opens the lab page from `pageOrigin`, then drives `transport` against the
// echo service at `echoUrl` and the close service at `closeUrl`. Returns
// the skip reason when sockjs-client will not pick the transport here.
export async function exerciseTransport(t, browser, { pageOrigin, echoUrl, closeUrl, transport, crossOrigin }) {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  try {
    await page.goto(`${pageOrigin}/lab.html`);
    const used = await page.evaluate(([u, tr]) => lab.connect(u, tr).catch((e) => 'failed: ' + e.message), [echoUrl, transport]);
    const reason = wontPick(transport, crossOrigin);
    if (used !== transport) {
      if (reason) return reason;
      assert.fail(`${transport} was not used: ${used}`);
    }
    for (const [name, payload] of Object.entries(PAYLOADS)) {
      const rtt = await page.evaluate((p) => lab.echo(p), payload).catch((e) => assert.fail(`${name}: ${e.message}`));
      assert.ok(rtt >= 0, name);
    }
    const clientClose = await page.evaluate(() => lab.close(1000, 'bye'));
    assert.equal(clientClose.code, 1000);
    // (Without a close service, as in the shipped container config, not.)
    if (closeUrl) {
      const serverClose = await page.evaluate(([u, tr]) => lab.connectAndAwaitClose(u, tr), [closeUrl, transport]);
      assert.equal(serverClose.transport, transport, 'close service transport');
      assert.deepEqual([serverClose.code, serverClose.reason], [3000, 'Go away!']);
    }
    assert.equal(await page.evaluate(() => window.pwned), undefined, 'a message ran as script');
    assert.deepEqual(errors, []);
    return null;
  } finally {
    await page.close();
  }
}

export function echoConfig({ allowed = [], extra = '' } = {}) {
  const origins = JSON.stringify(allowed);
  return `${extra}
[services.echo]
prefix = "/echo"
kind = "echo"
allowed_origins = ${origins}
[services.close]
prefix = "/close"
kind = "close"
allowed_origins = ${origins}
`;
}

// A request to the gateway's HTTP API at `base` with `key`: asserts 200
// and resolves with the JSON answer.
export async function apiCall(base, key, method, path, body) {
  const r = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: body && JSON.stringify(body),
  });
  assert.equal(r.status, 200, await r.clone().text());
  return r.json();
}

// A free loopback port (for nginx, which cannot report the one it got).
export async function freePort() {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Replaces `from` with `to` in `text`, insisting that it was there.
export function substitute(text, from, to) {
  assert.ok(text.includes(from), `config has no ${JSON.stringify(from)}`);
  return text.split(from).join(to);
}

// The shipped nginx.conf, pointed at this test's ports and paths: its
// includes made absolute, and the shipped sockjs-upstreams.conf inlined
// with `upstreams` for its three servers (each with `serverParams`, e.g.
// ' max_fails=0'); its access log in `dir`, or none.
export function shippedNginxConfig(port, upstreams, dir, { accessLog = true, serverParams = '' } = {}) {
  const nginxDir = path.join(ROOT, 'config/nginx');
  const servers = upstreams.map((p) => `server 127.0.0.1:${p}${serverParams};`).join('\n    ');
  const shippedServers = 'server 127.0.0.1:8091;\n    server 127.0.0.1:8092;\n    server 127.0.0.1:8093;';
  const ups = substitute(fs.readFileSync(path.join(nginxDir, 'sockjs-upstreams.conf'), 'utf8'), shippedServers, servers);
  let conf = fs.readFileSync(path.join(nginxDir, 'nginx.conf'), 'utf8');
  conf = substitute(conf, 'include sockjs-upstreams.conf;', ups);
  conf = substitute(conf, 'include sockjs-', `include ${nginxDir}/sockjs-`);
  conf = substitute(conf, 'listen 8080;', `listen 127.0.0.1:${port};`);
  conf = substitute(conf, 'pid /tmp/nginx.pid;', `pid ${dir}/nginx.pid;`);
  conf = substitute(conf, 'access_log /dev/stdout sockjs;', accessLog ? `access_log ${dir}/access.log sockjs;` : 'access_log off;');
  return conf;
}

// Runs nginx in the foreground with `conf`; resolves once it accepts.
export async function startNginx(conf) {
  const dir = fs.mkdtempSync(path.join(tmp, 'nginx-'));
  const file = path.join(dir, 'nginx.conf');
  fs.writeFileSync(file, conf);
  const proc = spawn(process.env.NGINX || 'nginx', ['-p', dir, '-c', file, '-e', 'stderr', '-g', 'daemon off;'], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const port = Number(/listen\s+127\.0\.0\.1:(\d+)/.exec(conf)[1]);
  const net = await import('node:net');
  for (let i = 0; ; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.end(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) break;
    if (proc.exitCode !== null || i > 100) throw new Error('nginx did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url: `http://127.0.0.1:${port}`, port, dir, proc, stop: () => stopProcess(proc) };
}

// Runs a redis-server of its own on a free port; resolves with
// { url, port, command(text), stop() } once it answers.
export async function startRedis() {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(tmp, 'redis-'));
  const command = (text) => redisCommand(port, text);
  const start = async () => {
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    for (let i = 0; (await command('PING').catch(() => '')) !== '+PONG'; i++) {
      if (proc.exitCode !== null || i > 200) throw new Error('redis-server did not start (apt-get install redis-server)');
      await new Promise((r) => setTimeout(r, 50));
    }
    return proc;
  };
  const redis = { url: `redis://127.0.0.1:${port}/0`, port, command, proc: await start() };
  redis.stop = () => stopProcess(redis.proc);
  // Killed outright (SIGKILL), then started again on the same port, empty.
  redis.restart = async () => {
    const exited = new Promise((r) => redis.proc.once('exit', r));
    redis.proc.kill('SIGKILL');
    await exited;
    redis.proc = await start();
  };
  return redis;
}

// One inline command to Redis; resolves with its first reply line.
async function redisCommand(port, text) {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(`${text}\r\n`));
    let data = '';
    s.on('data', (d) => {
      data += d;
      if (data.includes('\r\n')) { s.end(); resolve(data.split('\r\n')[0]); }
    });
    s.once('error', reject);
  });
}

// `[cluster]` for node `id` on `redis`.
export function clusterSection(redis, id) {
  return `[cluster]\nredis_url = "${redis.url}"\nsecret = "test-cluster-secret-0123456789abcdef"\nnode_id = "${id}"\npresence_interval = 0.2\n`;
}

// Waits until nodes `ids` have all written their presence to `redis`.
export async function untilJoined(redis, ids) {
  const keys = ids.map((id) => `sockjs-gateway:node:${id}`).join(' ');
  for (let i = 0; (await redis.command(`EXISTS ${keys}`)) !== `:${ids.length}`; i++) {
    if (i > 200) throw new Error(`nodes ${ids} did not join`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// Runs the example Node.js backend (examples/node-backend) on `port` (0: a
// free one); resolves with { url, port, stop() }.
export async function startNodeBackend(port = 0) {
  const dir = path.join(ROOT, 'examples/node-backend');
  if (!fs.existsSync(path.join(dir, 'node_modules/ws'))) {
    throw new Error('run `npm ci --prefix examples/node-backend` first');
  }
  return startServer('backend', process.execPath, [path.join(dir, 'server.mjs'), `127.0.0.1:${port}`]);
}
