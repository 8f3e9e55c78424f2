// The compose demo's checks, in Chromium through the compose nginx on
// http://127.0.0.1:8080 (tests/e2e/compose-demo.sh test runs them once the
// demo is up, with COMPOSE, the command that drives it, and the API key):
// every sockjs-client transport; the notifications page, signed in as
// alice through its form, gets the notification its own curl line sends;
// `docker compose kill gateway2` while pages are on it: they reconnect and
// recover what was published meanwhile; `docker compose restart` of
// gateway1, then gateway3, while notifications go out: no page loses one.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execSync, execFile } from 'node:child_process';
import { TRANSPORTS, launchBrowser, exerciseTransport } from '../browser/lib.mjs';

const SITE = 'http://127.0.0.1:8080';
const APIS = ['http://127.0.0.1:8081', 'http://127.0.0.1:8082', 'http://127.0.0.1:8083'];
const KEY = process.env.SOCKJS_GATEWAY_API_KEY;
const COMPOSE = process.env.COMPOSE;
assert.ok(KEY && COMPOSE, 'run by tests/e2e/compose-demo.sh test');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const compose = (args) => execSync(`${COMPOSE} ${args}`, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 180000 }).toString();

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

test('every sockjs-client transport through the compose nginx', async (t) => {
  for (const transport of TRANSPORTS) {
    await t.test(transport, async (t) => {
      // The container config has no close service.
      const skip = await exerciseTransport(t, browser, {
        pageOrigin: SITE, echoUrl: `${SITE}/echo`, closeUrl: null, transport, crossOrigin: false,
      });
      if (skip) t.skip(skip);
    });
  }
});

test('the notifications page gets the notification its own curl line sends', async () => {
  const page = await browser.newPage();
  try {
    await page.goto(`${SITE}/notifications.html`);
    await page.fill('#user', 'alice');
    await page.click('#connect');
    await page.waitForFunction(() => /^connected over .* as alice$/.test(document.getElementById('status').textContent),
      null, { timeout: 15000 });
    const curl = (await page.textContent('#curl')).trim();
    assert.match(curl, /\$SOCKJS_GATEWAY_API_KEY/);
    // As a newcomer pastes it, in the shell that holds the key.
    const out = await new Promise((resolve, reject) => execFile('bash', ['-c', curl], { env: { ...process.env } },
      (e, stdout, stderr) => (e ? reject(new Error(`${e.message}: ${stderr}`)) : resolve(stdout))));
    assert.equal(JSON.parse(out).delivered, 1, out);
    await page.waitForFunction(() => document.getElementById('mine').textContent.includes('someone commented on your post'),
      null, { timeout: 10000 });
  } finally {
    await page.close();
  }
});

// --- notifications through node faults ------------------------------------

let sent = 0;
const acked = [];
// Its own user and keys: a demo left running keeps the last run's history
// and idempotency keys.
const RUN = Date.now().toString(36);
const CAROL = `carol-${RUN}`;

// One notification to this run's carol, retried with the same idempotency_key on any
// answer but 200, through whichever API answers.
async function notifyCarol() {
  const n = ++sent;
  const body = JSON.stringify({ destination: '/user/queue/notifications', body: String(n), idempotency_key: `compose-${RUN}-${n}` });
  for (let attempt = 0; attempt < 200; attempt++) {
    const api = APIS[(n + attempt) % APIS.length];
    try {
      const r = await fetch(`${api}/api/users/${CAROL}/send`, {
        method: 'POST', body, signal: AbortSignal.timeout(5000),
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      });
      if (r.status === 200) {
        acked.push(n);
        return;
      }
    } catch { /* that node is down: the next */ }
    await sleep(100);
  }
  assert.fail(`notification ${n} was never acknowledged`);
}

// A tab of carol's, signed in through the demo's token, kept connected and
// recovering as the page does.
async function carolTab(transport) {
  const page = await browser.newPage();
  await page.goto(`${SITE}/notifications.html`);
  const used = await page.evaluate(([tr, user]) => notify.token(user)
    .then((token) => notify.connect({ transport: tr, token, reconnect: true, renew: () => notify.token(user) }))
    .then(() => notify.subscribe('/user/queue/notifications'))
    .then(() => notify.sock.transport, (e) => 'failed: ' + e.message), [transport, CAROL]);
  assert.equal(used, transport);
  return page;
}

// STOMP sessions open on gateway2, from its metrics.
async function sessionsOnGateway2() {
  const text = await (await fetch(`${APIS[1]}/metrics`)).text();
  return [...text.matchAll(/^sockjs_gateway_sessions_open\{[^}]*service="stomp"[^}]*\} (\d+)/gm)]
    .reduce((s, m) => s + Number(m[1]), 0);
}

// What each tab got, once it has every acknowledged notification or time is up.
async function everyTabGotAll(tabs) {
  const want = acked.slice().sort((a, b) => a - b);
  const got = [];
  for (const page of tabs) {
    const bodies = await page.evaluate(async (n) => {
      await notify.waitFor("/user/queue/notifications", n, 60000).catch(() => null);
      return (notify.received['/user/queue/notifications'] || []).map((m) => Number(m.body));
    }, want.length);
    // What the tab went through, for the message if it missed any.
    const story = await page.evaluate(() => JSON.stringify({
      transport: notify.sock && notify.sock.transport, connected: notify.client && notify.client.connected,
      closes: notify.closes, errors: notify.errors, recoveries: notify.recoveries,
    }));
    got.push({ bodies, story });
    const lost = await page.evaluate(() => notify.recoveries.filter((r) => !r.recovered));
    assert.deepEqual(lost, [], `a page was told it may have missed notifications: ${story}`);
  }
  for (const { bodies, story } of got) {
    assert.deepEqual(bodies, want, `got ${bodies.length} of ${want.length}, last ${bodies.at(-1)}: ${story}`);
  }
}

test('kill gateway2, then restart gateway1 and gateway3 one at a time: no page loses a notification', async () => {
  const tabs = [];
  try {
    // Tabs on three transports until gateway2 holds at least one session.
    for (let i = 0; i < 15 && (tabs.length < 3 || (await sessionsOnGateway2()) === 0); i++) {
      tabs.push(await carolTab(['websocket', 'xhr-streaming', 'xhr-polling'][i % 3]));
    }
    assert.ok((await sessionsOnGateway2()) > 0, 'no session reached gateway2');
    for (let i = 0; i < 10; i++) await notifyCarol();

    compose('kill gateway2');
    for (let i = 0; i < 20; i++) await notifyCarol();
    await everyTabGotAll(tabs);
    const closed = await Promise.all(tabs.map((p) => p.evaluate(() => notify.closes.length)));
    assert.ok(closed.some((n) => n > 0), 'no page was on gateway2');
    compose('start gateway2');

    // A publisher at 10 a second while each restarts in turn.
    let publishing = true;
    const publisher = (async () => {
      while (publishing) {
        await notifyCarol();
        await sleep(100);
      }
    })();
    for (const gw of ['gateway1', 'gateway3']) {
      compose(`restart ${gw}`);
      await sleep(3000);
    }
    publishing = false;
    await publisher;
    await everyTabGotAll(tabs);
    assert.ok(acked.length > 60, `only ${acked.length} notifications went out`);
  } finally {
    for (const p of tabs) await p.close();
    compose('start gateway1 gateway2 gateway3'); // whatever failed, the demo stays whole
  }
});
