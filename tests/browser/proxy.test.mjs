// The gateway in front of a WebSocket backend in another language (the
// example Node.js backend), through every transport in Chromium, same- and
// cross-origin: echo, a push from the backend, what the backend learned,
// the backend closing with 4001, a forwarded cookie the backend requires,
// the upstream down, and the upstream restarted between sessions.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TRANSPORTS, PAYLOADS, startGateway, startNodeBackend, launchBrowser, wontPick, freePort } from './lib.mjs';

let browser, pages, gateway, backend, deadPort;

function config(backendPort, allowed) {
  const origins = JSON.stringify(allowed);
  const svc = (name, upstream) => `[services.${name}]
prefix = "/${name}"
kind = "proxy"
upstream = ["${upstream}"]
forward_headers = ["cookie"]
allowed_origins = ${origins}
upstream_retry_delay = 0.2
`;
  return svc('app', `ws://127.0.0.1:${backendPort}/socket`)
    + svc('private', `ws://127.0.0.1:${backendPort}/private`)
    + svc('down', `ws://127.0.0.1:${deadPort}/socket`);
}

before(async () => {
  deadPort = await freePort();
  backend = await startNodeBackend();
  pages = await startGateway('[services.unused]\nprefix = "/unused"\n');
  gateway = await startGateway(config(backend.port, [pages.url]));
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  for (const p of [gateway, pages, backend]) await p?.stop();
});

// One transport through its paces against the backend.
async function exercise(t, transport, crossOrigin) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  try {
    await page.goto(`${crossOrigin ? pages.url : gateway.url}/lab.html`);
    const used = await page.evaluate(([u, tr]) => lab.connect(u, tr).catch((e) => 'failed: ' + e.message), [`${gateway.url}/app`, transport]);
    const reason = wontPick(transport, crossOrigin);
    if (used !== transport) {
      if (reason) return reason;
      assert.fail(`${transport} was not used: ${used}`);
    }
    // What the backend learned in its handshake, as it tells the client.
    const hello = JSON.parse(await page.evaluate(() => lab.waitFor('{"hello"')));
    assert.equal(hello.client, '127.0.0.1');
    // Origin as the browser sent it on the request that opened the session:
    // the iframe's own for the iframe transports; none on script loads
    // (jsonp, htmlfile) and same-origin EventSource; always on WebSocket
    // and XHR.
    const pageOrigin = crossOrigin ? pages.url : gateway.url;
    const expected = transport.startsWith('iframe-') ? gateway.url : pageOrigin;
    if (['websocket', 'xhr-streaming', 'xhr-polling'].includes(transport)) {
      assert.equal(hello.origin, expected);
    } else {
      assert.ok(hello.origin === null || hello.origin === expected, `origin ${hello.origin}`);
    }
    for (const [name, payload] of Object.entries(PAYLOADS)) {
      const rtt = await page.evaluate((p) => lab.echo(p), payload).catch((e) => assert.fail(`${name}: ${e.message}`));
      assert.ok(rtt >= 0, name);
    }
    await page.evaluate(() => lab.send('push'));
    assert.match(await page.evaluate(() => lab.waitFor('pushed at ')), /^pushed at \d{4}-/);
    const byBackend = await page.evaluate(() => lab.sendAndAwaitClose('close-4001'));
    assert.deepEqual([byBackend.code, byBackend.reason], [4001, 'Closed by the backend']);

    const down = await page.evaluate(([u, tr]) => lab.connectAndAwaitClose(u, tr), [`${gateway.url}/down`, transport]);
    assert.deepEqual([down.code, down.reason], [4900, 'Upstream unreachable']);

    // A backend that requires login: refused without the cookie, which
    // browsers send on same-origin requests (and the iframe transports).
    const refused = await page.evaluate(([u, tr]) => lab.connectAndAwaitClose(u, tr), [`${gateway.url}/private`, transport]);
    assert.deepEqual([refused.code, refused.reason], [4401, 'Upstream refused the session (HTTP 401)']);
    if (!crossOrigin) {
      await context.addCookies([{ name: 'demo_user', value: 'alice', url: gateway.url }]);
      const again = await page.evaluate(([u, tr]) => lab.connect(u, tr).catch((e) => 'failed: ' + e.message), [`${gateway.url}/private`, transport]);
      assert.equal(again, transport);
      const me = JSON.parse(await page.evaluate(() => lab.waitFor('{"hello":"alice"')));
      assert.equal(me.hello, 'alice');
      await page.evaluate(() => lab.close(1000, 'bye'));
    }
    assert.deepEqual(errors, []);
    return null;
  } finally {
    await context.close();
  }
}

for (const [setup, crossOrigin] of [['proxied to a Node.js backend, same-origin', false], ['proxied to a Node.js backend, cross-origin', true]]) {
  test(setup, async (t) => {
    for (const transport of TRANSPORTS) {
      await t.test(transport, async (t) => {
        const skip = await exercise(t, transport, crossOrigin);
        if (skip) t.skip(skip);
      });
    }
  });
}

test('the upstream restarted between sessions', async () => {
  const page = await browser.newPage();
  try {
    await page.goto(`${gateway.url}/lab.html`);
    const port = backend.port;
    await backend.stop();
    for (const transport of ['websocket', 'xhr-polling']) {
      const down = await page.evaluate(([u, tr]) => lab.connectAndAwaitClose(u, tr), [`${gateway.url}/app`, transport]);
      assert.equal(down.code, 4900, transport);
    }
    backend = await startNodeBackend(port);
    // Past upstream_retry_delay the restarted upstream is tried again.
    await new Promise((r) => setTimeout(r, 300));
    for (const transport of ['websocket', 'xhr-polling']) {
      const used = await page.evaluate(([u, tr]) => lab.connect(u, tr).catch((e) => 'failed: ' + e.message), [`${gateway.url}/app`, transport]);
      assert.equal(used, transport);
      assert.ok(await page.evaluate(() => lab.echo('back again')) >= 0);
      await page.evaluate(() => lab.close(1000, 'bye'));
    }
  } finally {
    await page.close();
  }
});
