// STOMP over SockJS in Chromium: @stomp/stompjs and sockjs-client from npm,
// driving the notifications page over every transport, against the
// gateway's `stomp` service, its HTTP API and an app webhook in the Node
// backend. Connect with a JWT; subscribe to a topic and a user queue; a
// topic publish from the API; a notification to alice reaches both her
// tabs and not bob; a SEND to /app through the webhook and its reply; a bad
// token, an expired token, a forbidden subscription and a malformed frame
// each get an ERROR, then a close. Recovery: a page offline while 20
// notifications go to its user gets all 20, in order, once back, and after
// a reload recovers from what it kept in localStorage.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { TRANSPORTS, startGateway, startNodeBackend, launchBrowser, wontPick, freePort, apiCall } from './lib.mjs';

const SECRET = 'browser-test-secret-0123456789abcdef';
const KEY = 'browser-test-api-key-0123';
let browser, gateway, backend, apiPort;

// An HS256 JWT, as a login service would mint it.
function jwt(sub, ttl, secret = SECRET) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, exp: now + ttl })}`;
  return `${body}.${crypto.createHmac('sha256', secret).update(body).digest('base64url')}`;
}

const api = (path, body) => apiCall(`http://127.0.0.1:${apiPort}`, KEY, 'POST', path, body);

before(async () => {
  apiPort = await freePort();
  backend = await startNodeBackend();
  gateway = await startGateway(`
[api]
listen = "127.0.0.1:${apiPort}"
key = "${KEY}"
[auth]
jwt_secret = "${SECRET}"
[services.stomp]
prefix = "/stomp"
kind = "stomp"
subscribe = ["/topic/**", "/user/queue/**"]
send = ["/app/**", "/topic/feed"]
app_webhook = "http://127.0.0.1:${backend.port}/stomp"
[[services.stomp.history]]
destinations = ["/user/queue/alerts"]
size = 100
ttl = 600
`);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  for (const p of [gateway, backend]) await p?.stop();
});

// A tab on the notifications page, connected as `user` over `transport`.
async function tab(context, transport, user) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${gateway.url}/notifications.html`);
  const used = await page.evaluate(([tr, token]) => notify.connect({ transport: tr, token }).catch((e) => 'failed: ' + e.message),
    [transport, jwt(user, 600)]);
  return { page, used, errors };
}

// The ERROR a connection gets for `act`, and the close after it.
async function refusal(context, transport, token, act) {
  const page = await context.newPage();
  await page.goto(`${gateway.url}/notifications.html`);
  const connected = page.evaluate(([tr, t]) => notify.connect({ transport: tr, token: t }).then(() => 'connected', (e) => e.message),
    [transport, token]);
  if (act) {
    assert.equal(await connected, 'connected');
    await page.evaluate(act);
  } else {
    await connected;
  }
  const close = await page.evaluate(() => notify.waitForClose());
  const errors = await page.evaluate(() => notify.errors);
  await page.close();
  return { message: errors[0]?.message, code: close.code };
}

for (const transport of TRANSPORTS) {
  test(`stomp over ${transport}`, async (t) => {
    const reason = wontPick(transport, false);
    const context = await browser.newContext();
    try {
      const a1 = await tab(context, transport, 'alice');
      if (a1.used !== transport) {
        if (reason) return t.skip(reason);
        assert.fail(`${transport} was not used: ${a1.used}`);
      }
      const a2 = await tab(context, transport, 'alice');
      const b = await tab(context, transport, 'bob');
      assert.equal(a2.used, transport);
      assert.equal(b.used, transport);
      const topic = `/topic/news/${transport}`;
      for (const { page } of [a1, a2, b]) {
        await page.evaluate((d) => notify.subscribe(d), topic);
        await page.evaluate(() => notify.subscribe('/user/queue/notifications'));
      }

      // A topic publish from the HTTP API reaches all three.
      assert.deepEqual(await api('/api/publish', { destination: topic, body: 'extra, extra' }), { delivered: 3 });
      for (const { page } of [a1, a2, b]) {
        const [m] = await page.evaluate((d) => notify.waitFor(d, 1), topic);
        assert.equal(m.body, 'extra, extra');
        assert.equal(m.headers.destination, topic);
      }

      // A notification to alice reaches both her tabs and not bob: his
      // first notification is the one sent to him afterwards.
      const note = { destination: '/user/queue/notifications', body: 'someone commented on your post' };
      assert.deepEqual(await api('/api/users/alice/send', note), { delivered: 2 });
      assert.deepEqual(await api('/api/users/bob/send', { ...note, body: 'for bob' }), { delivered: 1 });
      for (const { page } of [a1, a2]) {
        const [m] = await page.evaluate(() => notify.waitFor('/user/queue/notifications', 1));
        assert.equal(m.body, 'someone commented on your post');
      }
      const [forBob] = await b.page.evaluate(() => notify.waitFor('/user/queue/notifications', 1));
      assert.equal(forBob.body, 'for bob');

      // A SEND to /app goes through the webhook; its reply comes back to
      // the sender only.
      await a1.page.evaluate(() => notify.subscribe('/user/queue/replies'));
      await a1.page.evaluate(() => notify.send('/app/echo', 'ping ☃'));
      const [reply] = await a1.page.evaluate(() => notify.waitFor('/user/queue/replies', 1));
      assert.equal(reply.body, 'echo: ping ☃');

      for (const p of [a1, a2, b]) assert.deepEqual(p.errors, []);

      // Refusals: an ERROR with its message, then close 4400.
      const bad = await refusal(context, transport, jwt('alice', 600, 'another-secret'));
      assert.deepEqual(bad, { message: 'Invalid token: bad signature', code: 4400 });
      const expired = await refusal(context, transport, jwt('alice', -600));
      assert.deepEqual(expired, { message: 'Invalid token: expired', code: 4400 });
      const forbidden = await refusal(context, transport, jwt('alice', 600), () => { notify.client.subscribe('/queue/secret', () => {}); });
      assert.deepEqual(forbidden, { message: 'Forbidden subscription', code: 4400 });
      const malformed = await refusal(context, transport, jwt('alice', 600), () => notify.raw('SEND\nno colon here\n\n\0'));
      assert.deepEqual(malformed, { message: 'Header without a colon: "no colon here"', code: 4400 });
    } finally {
      await context.close();
    }
  });
}

// Sends alice-like `user` notifications n..m on /user/queue/alerts.
async function alerts(user, from, to) {
  for (let i = from; i <= to; i++) {
    const r = await api(`/api/users/${user}/send`, { destination: '/user/queue/alerts', body: `alert ${i}` });
    assert.equal(r.offset, i);
  }
}

// The bodies and offsets a page got on /user/queue/alerts, once `n` are in.
async function gotAlerts(page, n) {
  const got = await page.evaluate((n) => notify.waitFor('/user/queue/alerts', n, 20000), n);
  return got.map((m) => [m.body, Number(m.headers['x-stream-offset'])]);
}

const expected = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => [`alert ${from + i}`, from + i]);

for (const transport of TRANSPORTS) {
  test(`recovery over ${transport}`, async (t) => {
    const reason = wontPick(transport, false);
    const context = await browser.newContext();
    const user = `carol-${transport}`;
    const connect = (page) => page.evaluate(([tr, token]) => notify.connect({ transport: tr, token, reconnect: true })
      .then(async (used) => { await notify.subscribe('/user/queue/alerts'); return used; })
      .catch((e) => 'failed: ' + e.message),
    [transport, jwt(user, 600)]);
    try {
      const page = await context.newPage();
      await page.goto(`${gateway.url}/notifications.html`);
      const used = await connect(page);
      if (used !== transport) {
        if (reason) return t.skip(reason);
        assert.fail(`${transport} was not used: ${used}`);
      }
      await alerts(user, 1, 1);
      assert.deepEqual(await gotAlerts(page, 1), expected(1, 1));

      // Offline, and the connection lost: 20 go out meanwhile.
      await context.setOffline(true);
      await page.evaluate(() => notify.drop());
      await page.evaluate(() => notify.waitForClose());
      await alerts(user, 2, 21);
      await context.setOffline(false);
      assert.deepEqual(await gotAlerts(page, 21), expected(1, 21));
      const recoveries = await page.evaluate(() => notify.recoveries);
      assert.deepEqual(recoveries.at(-1), { destination: '/user/queue/alerts', recovered: true, count: 20 });
      assert.match(await page.textContent('#mine'), /20 missed notifications recovered/);

      // A reload, 5 more sent before the page is back: it recovers them
      // from the position it kept.
      await page.reload();
      await alerts(user, 22, 26);
      assert.equal(await connect(page), transport);
      assert.deepEqual(await gotAlerts(page, 5), expected(22, 26));
      assert.deepEqual(await page.evaluate(() => notify.recoveries),
        [{ destination: '/user/queue/alerts', recovered: true, count: 5 }]);
    } finally {
      await context.close();
    }
  });
}
