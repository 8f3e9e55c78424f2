// The shipped nginx config (config/nginx/) in front of three clustered
// gateways with plain round-robin: every transport works through it though
// one session's requests reach several gateways, bare proxy_pass configs
// show what each of its settings is for, and docs/deployment.md's TLS
// server block serves https and wss with a self-signed certificate.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import {
  ROOT, TRANSPORTS, startGateway, startNginx, launchBrowser, exerciseTransport, echoConfig, freePort, substitute,
  startRedis, clusterSection, untilJoined, shippedNginxConfig, stopProcess,
} from './lib.mjs';

let browser, pages, gw1, gw2, gateways, redis, proxy, prefixOnly;

// Most deployments: the application's pages come from elsewhere (here
// nginx's own root, with sockjs-client at an application path), and only
// the SockJS prefixes go to the gateway, with the shipped proxy settings.
function prefixOnlyConfig(port, upstream, pagesDir) {
  // The main location alone: only the prefixes are routed, /_cluster/ is not.
  const shipped = fs.readFileSync(path.join(ROOT, 'config/nginx/sockjs-proxy.conf'), 'utf8');
  const proxyConf = shipped.slice(shipped.indexOf('location / {'));
  const locations = ['/echo/', '/close/'].map((p) => substitute(proxyConf, 'location / {', `location ${p} {`)).join('\n');
  return `pid nginx.pid;
events {}
http {
  include ${ROOT}/config/nginx/sockjs-maps.conf;
  access_log off;
  types { text/html html; text/css css; application/javascript js; }
  upstream sockjs_gateway { server 127.0.0.1:${upstream}; }
  server {
    listen 127.0.0.1:${port};
    ${locations}
    location / { root ${pagesDir}; }
  }
}`;
}

// The lab page as an application would ship it: its own copy of
// sockjs-client at its own path, nothing at /sockjs-client/.
function applicationPages() {
  const dir = fs.mkdtempSync(path.join(ROOT, 'target', 'app-pages-'));
  fs.chmodSync(dir, 0o755); // nginx's workers read it as another user
  fs.mkdirSync(path.join(dir, 'assets'));
  fs.copyFileSync(path.join(ROOT, 'node_modules/sockjs-client/dist/sockjs.min.js'), path.join(dir, 'assets/sockjs.min.js'));
  for (const f of ['lab.js', 'style.css']) fs.copyFileSync(path.join(ROOT, 'static', f), path.join(dir, f));
  const lab = fs.readFileSync(path.join(ROOT, 'static/lab.html'), 'utf8');
  fs.writeFileSync(path.join(dir, 'lab.html'), substitute(lab, '/sockjs-client/sockjs.min.js', '/assets/sockjs.min.js'));
  return dir;
}

function bareConfig(port, upstreams, extra = '') {
  return `pid nginx.pid;
events {}
http {
  access_log off;
  upstream gateways { ${upstreams.map((p) => `server 127.0.0.1:${p};`).join(' ')} }
  server { listen 127.0.0.1:${port}; location / { proxy_pass http://gateways; ${extra} } }
}`;
}

before(async () => {
  pages = await startGateway('[services.unused]\nprefix = "/unused"\n');
  const port = await freePort();
  const origins = [pages.url, `http://127.0.0.1:${port}`];
  // Two gateways on their own, for the bare proxy_pass configs below.
  gw1 = await startGateway(echoConfig({ allowed: origins }));
  gw2 = await startGateway(echoConfig({ allowed: origins }));
  redis = await startRedis();
  const ids = ['n1', 'n2', 'n3'];
  gateways = [];
  for (const id of ids) {
    const apiPort = await freePort();
    const metrics = `[api]\nlisten = "127.0.0.1:${apiPort}"\nmetrics = true\n`;
    const g = await startGateway(echoConfig({ allowed: origins, extra: clusterSection(redis, id) + metrics }));
    g.apiUrl = `http://127.0.0.1:${apiPort}`;
    gateways.push(g);
  }
  await untilJoined(redis, ids);
  const dir = fs.mkdtempSync(path.join(ROOT, 'target', 'nginx-logs-'));
  proxy = await startNginx(shippedNginxConfig(port, gateways.map((g) => g.port), dir));
  proxy.log = path.join(dir, 'access.log');
  const prefixPort = await freePort();
  const gw3 = await startGateway(echoConfig({ allowed: [pages.url, `http://127.0.0.1:${prefixPort}`] }));
  prefixOnly = await startNginx(prefixOnlyConfig(prefixPort, gw3.port, applicationPages()));
  prefixOnly.gateway = gw3;
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await proxy?.stop();
  await prefixOnly?.stop();
  for (const p of [gw1, gw2, ...(gateways || []), prefixOnly?.gateway, pages, redis]) await p?.stop();
});

for (const [setup, crossOrigin] of [['through nginx, same-origin', false], ['through nginx, cross-origin', true]]) {
  test(setup, async (t) => {
    for (const transport of TRANSPORTS) {
      await t.test(transport, async (t) => {
        const skip = await exerciseTransport(t, browser, {
          pageOrigin: crossOrigin ? pages.url : proxy.url,
          echoUrl: `${proxy.url}/echo`, closeUrl: `${proxy.url}/close`, transport, crossOrigin,
        });
        if (skip) t.skip(skip);
      });
    }
  });
}

for (const [setup, crossOrigin] of [['nginx routing only the prefixes, same-origin', false], ['nginx routing only the prefixes, cross-origin', true]]) {
  test(setup, async (t) => {
    const root = await fetch(`${prefixOnly.url}/sockjs-client/sockjs.min.js`);
    assert.equal(root.status, 404, 'this proxy must not route the gateway\'s root');
    for (const transport of TRANSPORTS) {
      await t.test(transport, async (t) => {
        const skip = await exerciseTransport(t, browser, {
          pageOrigin: crossOrigin ? pages.url : prefixOnly.url,
          echoUrl: `${prefixOnly.url}/echo`, closeUrl: `${prefixOnly.url}/close`, transport, crossOrigin,
        });
        if (skip) t.skip(skip);
      });
    }
  });
}

test('round-robin spread sessions over the gateways, which forwarded to each other', async () => {
  const lines = fs.readFileSync(proxy.log, 'utf8').trim().split('\n');
  const sessionUrl = /"\w+ \S*\/[^/.]+\/([^/.]+)\/(xhr|xhr_send|xhr_streaming|eventsource|htmlfile|jsonp|jsonp_send)[?\s]/;
  const bySession = new Map();
  const upstreams = new Set();
  for (const line of lines) {
    const m = sessionUrl.exec(line);
    if (!m) continue;
    const upstream = /upstream=(\S+)/.exec(line)[1];
    if (!bySession.has(m[1])) bySession.set(m[1], new Set());
    bySession.get(m[1]).add(upstream);
    upstreams.add(upstream);
  }
  assert.ok(bySession.size >= 20, `only ${bySession.size} HTTP sessions in the log`);
  const spread = [...bySession].filter(([, ups]) => ups.size > 1);
  assert.ok(spread.length >= bySession.size / 2, `few sessions reached several gateways: ${spread.length} of ${bySession.size}`);
  assert.equal(upstreams.size, 3, `all three gateways should serve: ${[...upstreams]}`);
  let forwarded = 0;
  for (const g of gateways) {
    const text = await (await fetch(`${g.apiUrl}/metrics`)).text();
    forwarded += Number(/^sockjs_gateway_cluster_forwarded_requests_total (\d+)/m.exec(text)[1]);
  }
  assert.ok(forwarded > 0, 'no request was forwarded');
});

// --- what a bare proxy_pass gets wrong -------------------------------------

function request(url, { method = 'GET', headers = {}, body = '' } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: { ...headers, 'content-length': Buffer.byteLength(body) }, agent: false });
    req.once('upgrade', (res, socket) => { socket.destroy(); resolve({ status: res.statusCode, body: '' }); });
    req.once('response', (res) => {
      let data = '';
      res.on('data', (d) => (data += d));
      res.on('end', () => resolve({ status: res.statusCode, body: data }));
    });
    req.once('error', reject);
    req.end(body);
  });
}

// Opens xhr_streaming and reports whether the `o` frame arrives within `ms`.
function streamOpensWithin(base, ms) {
  return new Promise((resolve, reject) => {
    const sid = 's' + Math.random().toString(36).slice(2);
    const req = http.request(`${base}/echo/000/${sid}/xhr_streaming`, { method: 'POST', agent: false });
    let data = '';
    const timer = setTimeout(() => { req.destroy(); resolve(false); }, ms);
    req.once('response', (res) => res.on('data', (d) => {
      data += d;
      if (data.includes('\no\n')) { clearTimeout(timer); req.destroy(); resolve(true); }
    }));
    req.once('error', (e) => (e.code === 'ECONNRESET' ? null : reject(e)));
    req.end();
  });
}

const wsHeaders = { Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' };

test('bare proxy_pass breaks WebSocket, ours does not', async () => {
  const bare = await startNginx(bareConfig(await freePort(), [gw1.port]));
  try {
    const viaBare = await request(`${bare.url}/echo/000/abc/websocket`, { headers: wsHeaders });
    assert.equal(viaBare.status, 400, 'without the Upgrade headers the gateway sees no handshake');
    const viaOurs = await request(`${proxy.url}/echo/000/abc/websocket`, { headers: wsHeaders });
    assert.equal(viaOurs.status, 101);
  } finally {
    await bare.stop();
  }
});

test('bare proxy_pass stalls streaming unless the X-Accel-Buffering hint is honoured; ours streams regardless', async () => {
  const hintIgnored = 'proxy_ignore_headers X-Accel-Buffering;';
  const bare = await startNginx(bareConfig(await freePort(), [gw1.port]));
  const bareNoHint = await startNginx(bareConfig(await freePort(), [gw1.port], hintIgnored));
  let oursNoHint = substitute(fs.readFileSync(path.join(ROOT, 'config/nginx/sockjs-proxy.conf'), 'utf8'), 'proxy_buffering off;', `proxy_buffering off; ${hintIgnored}`);
  const ourDir = fs.mkdtempSync(path.join(ROOT, 'target', 'nginx-ours-'));
  fs.writeFileSync(path.join(ourDir, 'proxy.conf'), oursNoHint);
  const port = await freePort();
  const ours = await startNginx(`pid nginx.pid; events {} http { include ${ROOT}/config/nginx/sockjs-maps.conf; access_log off;
    upstream sockjs_gateway { server 127.0.0.1:${gw1.port}; } server { listen 127.0.0.1:${port}; include ${ourDir}/proxy.conf; } }`);
  try {
    assert.equal(await streamOpensWithin(bare.url, 2000), true, 'the gateway\'s X-Accel-Buffering: no keeps a careless config streaming');
    assert.equal(await streamOpensWithin(bareNoHint.url, 2000), false, 'buffering proxies hold the frames back');
    assert.equal(await streamOpensWithin(ours.url, 2000), true, 'proxy_buffering off streams without the hint');
  } finally {
    for (const n of [bare, bareNoHint, ours]) await n.stop();
  }
});

test('round-robin without session affinity splits polling sessions; hashing does not', async () => {
  const rr = await startNginx(bareConfig(await freePort(), [gw1.port, gw2.port], 'proxy_http_version 1.1;'));
  const poll = async (base) => {
    const sid = 's' + Math.random().toString(36).slice(2);
    const open = await request(`${base}/echo/000/${sid}/xhr`, { method: 'POST' });
    const send = await request(`${base}/echo/000/${sid}/xhr_send`, { method: 'POST', body: '["x"]' });
    return [open.body, send.status];
  };
  try {
    const results = [];
    for (let i = 0; i < 6; i++) results.push(await poll(rr.url));
    assert.ok(results.some(([, status]) => status === 404), `round-robin never split a session: ${JSON.stringify(results)}`);
    for (let i = 0; i < 6; i++) assert.deepEqual(await poll(proxy.url), ['o\n', 204]);
  } finally {
    await rr.stop();
  }
});

test('a poll dropped behind nginx still interrupts its session', async () => {
  const net = await import('node:net');
  const sid = 's' + Math.random().toString(36).slice(2);
  assert.equal((await request(`${proxy.url}/echo/000/${sid}/xhr`, { method: 'POST' })).body, 'o\n');
  const sock = net.connect(proxy.port, '127.0.0.1');
  sock.write(`POST /echo/000/${sid}/xhr HTTP/1.1\r\nHost: 127.0.0.1:${proxy.port}\r\nContent-Length: 0\r\n\r\n`);
  // nginx sends the head once the gateway attached the poll.
  await new Promise((resolve) => sock.once('data', resolve));
  sock.destroy();
  let body = '';
  for (let i = 0; i < 50; i++) {
    body = (await request(`${proxy.url}/echo/000/${sid}/xhr`, { method: 'POST' })).body;
    if (!body.startsWith('c[2010')) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(body, 'c[1002,"Connection interrupted"]\n');
});

// A gateway that vanished without a word (its container killed, its host
// lost): a connect to it is not refused, it hangs. sockjs-client gives a
// transport about 600 ms and abandons the request, which nginx then never
// counts as the gateway's failure; the shipped proxy_connect_timeout
// gives up first and tries the next gateway. On loopback: a listening
// socket whose accept queue is full drops every SYN.
async function vanishedGateway() {
  const script = `
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)
port = s.getsockname()[1]
held = []
for _ in range(2):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(("127.0.0.1", port))
    except BlockingIOError: pass
    held.append(c)
time.sleep(0.2)
print(port, flush=True)
sys.stdin.read()
`;
  const proc = spawn('python3', ['-c', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    proc.stdout.once('data', (d) => resolve(Number(String(d).trim())));
    proc.once('exit', (code) => reject(new Error(`the vanished gateway exited with ${code}`)));
  });
  // It really hangs: a connect neither succeeds nor fails within a second.
  const net = await import('node:net');
  const probe = net.connect(port, '127.0.0.1');
  const outcome = await new Promise((resolve) => {
    probe.once('connect', () => resolve('connected'));
    probe.once('error', (e) => resolve(e.code));
    setTimeout(() => resolve('hangs'), 1000);
  });
  probe.destroy();
  assert.equal(outcome, 'hangs');
  return { port, stop: () => { proc.stdin.end(); return stopProcess(proc); } };
}

test('a gateway that vanished without a word: every connect goes through the one left', async () => {
  const hole = await vanishedGateway();
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(ROOT, 'target', 'nginx-logs-'));
  const nginx = await startNginx(shippedNginxConfig(port, [gw1.port, hole.port], dir, { accessLog: false }));
  const page = await browser.newPage();
  try {
    await page.goto(`${pages.url}/lab.html`);
    const failed = await page.evaluate(async (url) => {
      const failures = [];
      // Fewer polling ones: sockjs-client 1.6.1 leaves the poll it starts
      // just after open running when closed at once (it starts each XHR in
      // a timer), and Chromium's six connections to one host fill up.
      for (const [transport, n] of [['websocket', 10], ['xhr-streaming', 10], ['xhr-polling', 4]]) {
        for (let i = 0; i < n; i++) {
          const used = await lab.connect(url, transport).catch((e) => 'failed: ' + e.message);
          if (used !== transport) failures.push(`${transport} #${i}: ${used}`);
          else await lab.close(1000, 'bye');
        }
      }
      return failures;
    }, `${nginx.url}/echo`);
    assert.deepEqual(failed, []);
  } finally {
    await page.close();
    await nginx.stop();
    await hole.stop();
  }
});

// Issue 28, finding 5: a client must not speak as a node through the
// shipped config, even one that learned `cluster.secret`: no link between
// nodes through nginx, and none of the gateways' own headers passed on.
test('the shipped config keeps clients from speaking as a node', async () => {
  const secret = 'test-cluster-secret-0123456789abcdef';
  const node = { 'X-Sockjs-Gateway-Secret': secret, 'X-Sockjs-Gateway-Forwarded-By': 'n2' };
  const direct = await request(`http://127.0.0.1:${gateways[0].port}/_cluster/link`, { headers: { ...wsHeaders, ...node } });
  assert.equal(direct.status, 101, 'a node opens a link on the gateway itself');
  const viaNginx = await request(`${proxy.url}/_cluster/link`, { headers: { ...wsHeaders, ...node } });
  assert.equal(viaNginx.status, 404, 'no link through nginx');
  // What the shipped proxy settings pass on, seen by a stand-in upstream.
  const seen = [];
  const recorder = http.createServer((req, res) => { seen.push(req.headers); res.end('ok'); });
  await new Promise((r) => recorder.listen(0, '127.0.0.1', r));
  const port = await freePort();
  const conf = fs.readFileSync(path.join(ROOT, 'config/nginx/sockjs-proxy.conf'), 'utf8');
  const dir = fs.mkdtempSync(path.join(ROOT, 'target', 'nginx-headers-'));
  fs.writeFileSync(path.join(dir, 'proxy.conf'), conf);
  const shipped = await startNginx(`pid nginx.pid; events {} http { include ${ROOT}/config/nginx/sockjs-maps.conf; access_log off;
    upstream sockjs_gateway { server 127.0.0.1:${recorder.address().port}; } server { listen 127.0.0.1:${port}; include ${dir}/proxy.conf; } }`);
  try {
    const r = await request(`${shipped.url}/echo/000/abc/xhr`, { method: 'POST', headers: node });
    assert.equal(r.status, 200);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]['x-sockjs-gateway-secret'], undefined, JSON.stringify(seen[0]));
    assert.equal(seen[0]['x-sockjs-gateway-forwarded-by'], undefined, JSON.stringify(seen[0]));
    assert.equal((await request(`${shipped.url}/_cluster/link`, { headers: { ...wsHeaders, ...node } })).status, 404);
    assert.equal(seen.length, 1, 'nginx itself answers /_cluster/');
  } finally {
    await shipped.stop();
    recorder.close();
  }
});

// --- TLS: docs/deployment.md's server blocks, as written -------------------

// The ```nginx block under "### TLS" in docs/deployment.md.
function documentedTlsBlock() {
  const doc = fs.readFileSync(path.join(ROOT, 'docs/deployment.md'), 'utf8');
  const section = doc.slice(doc.indexOf('### TLS'));
  const m = /```nginx\n([\s\S]*?)```/.exec(section);
  assert.ok(m, 'docs/deployment.md has no nginx block under ### TLS');
  return m[1];
}

test('the documented TLS server block serves every common transport over https and wss', async (t) => {
  const dir = fs.mkdtempSync(path.join(ROOT, 'target', 'nginx-tls-'));
  const [cert, key] = [path.join(dir, 'cert.pem'), path.join(dir, 'key.pem')];
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  const [tlsPort, plainPort] = [await freePort(), await freePort()];
  let block = documentedTlsBlock();
  block = substitute(block, 'listen 443 ssl;', `listen 127.0.0.1:${tlsPort} ssl;`);
  block = substitute(block, 'listen 80;', `listen 127.0.0.1:${plainPort};`);
  block = substitute(block, '/etc/letsencrypt/live/rt.example.com/fullchain.pem', cert);
  block = substitute(block, '/etc/letsencrypt/live/rt.example.com/privkey.pem', key);
  block = substitute(block, 'include sockjs-proxy.conf;', `include ${ROOT}/config/nginx/sockjs-proxy.conf;`);
  const tls = await startNginx(`pid nginx.pid; events {} http { include ${ROOT}/config/nginx/sockjs-maps.conf; access_log off;
    upstream sockjs_gateway { ${gateways.map((g) => `server 127.0.0.1:${g.port};`).join(' ')} }
    ${block} }`);
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  try {
    const origin = `https://127.0.0.1:${tlsPort}`;
    for (const transport of ['websocket', 'xhr-streaming', 'eventsource', 'xhr-polling']) {
      await t.test(transport, async (t) => {
        // A context has newPage() as a browser does.
        const skip = await exerciseTransport(t, context, {
          pageOrigin: origin, echoUrl: `${origin}/echo`, closeUrl: `${origin}/close`, transport, crossOrigin: false,
        });
        assert.equal(skip, null);
      });
    }
    const redirect = await fetch(`http://127.0.0.1:${plainPort}/echo/info`, { redirect: 'manual' });
    assert.equal(redirect.status, 301);
    assert.match(redirect.headers.get('location'), /^https:\/\/127\.0\.0\.1\/echo\/info$/);
  } finally {
    await context.close();
    await tls.stop();
  }
});
