// Token renewal in Chromium: the notifications page, signed in through the
// demo's /demo/token with tokens that last 6 s, against a gateway that ends
// sessions at `exp` ([auth] expire_sessions) and gives notice 4 s before.
// On every transport the page renews its token when told (a SEND to
// /gateway/token), so it stays connected past the first token's exp, on
// the same connection, and still gets its user's notifications. Three
// transports at a time: nine pages at once on two cores slow the iframe
// transports' start past sockjs-client's own timeout (close 2000).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TRANSPORTS, startGateway, launchBrowser, wontPick, freePort, apiCall } from './lib.mjs';

const KEY = 'browser-test-api-key-0123';
const TTL = 6;
let browser, gateway, apiPort;

before(async () => {
  apiPort = await freePort();
  gateway = await startGateway(`
[api]
listen = "127.0.0.1:${apiPort}"
key = "${KEY}"
[auth]
demo_login = true
expire_sessions = true
token_refresh_notice = 4
[services.stomp]
prefix = "/stomp"
kind = "stomp"
subscribe = ["/topic/**", "/user/queue/**"]
send = ["/topic/feed"]
`);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await gateway?.stop();
});

const send = (user, body) => apiCall(`http://127.0.0.1:${apiPort}`, KEY, 'POST',
  `/api/users/${user}/send`, { destination: '/user/queue/notifications', body });

test('the notifications page renews its token on every transport', { concurrency: 3 }, async (t) => {
  await Promise.all(TRANSPORTS.map((transport) => t.test(transport, async (st) => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const pageErrors = [];
      page.on('pageerror', (e) => pageErrors.push(e.message));
      await page.goto(`${gateway.url}/notifications.html?token_ttl=${TTL}`);
      const user = `renew-${transport}`;
      const signedIn = Date.now();
      // As the page's sign-in does, over the one transport.
      const failed = await page.evaluate(([tr, user]) => notify.token(user)
        .then((token) => notify.connect({ transport: tr, token, reconnect: true, renew: () => notify.token(user) }))
        .then(() => notify.subscribe('/user/queue/notifications'))
        .then(() => null, (e) => e.message), [transport, user]);
      const used = await page.evaluate(() => notify.sock?.transport);
      if (used !== transport) {
        const reason = wontPick(transport, false);
        if (reason) return st.skip(reason);
        assert.fail(`${transport} was not used: ${used} (${failed})`);
      }
      // Past the first token's exp, having renewed at least twice.
      await page.waitForFunction(([from, ttl]) => Date.now() > from + (ttl + 1.5) * 1000 && notify.refreshes.length >= 2,
        [signedIn, TTL], { timeout: 20000 });
      const state = await page.evaluate(() => ({ closes: notify.closes, errors: notify.errors, transport: notify.sock.transport }));
      assert.deepEqual(state, { closes: [], errors: [], transport });
      const refreshes = await page.evaluate(() => notify.refreshes);
      for (const r of refreshes) assert.ok(r.expiresIn >= 1 && r.expiresIn <= 4, JSON.stringify(refreshes));
      // Still the same session, still reached.
      assert.deepEqual(await send(user, 'still here'), { delivered: 1 });
      const [m] = await page.evaluate(() => notify.waitFor('/user/queue/notifications', 1));
      assert.equal(m.body, 'still here');
      assert.deepEqual(pageErrors, []);
    } finally {
      await context.close();
    }
  })));
});

test('without renewal the session ends at exp with 4401', async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${gateway.url}/notifications.html`);
    const closed = await page.evaluate(async (ttl) => {
      const r = await fetch('/demo/token?user=lapsed&ttl=' + ttl);
      const { token } = await r.json();
      await notify.connect({ token });
      return notify.waitForClose(15000);
    }, TTL);
    assert.equal(closed.code, 4401);
    assert.deepEqual(await page.evaluate(() => notify.errors.map((e) => e.message)), ['Token expired']);
  } finally {
    await context.close();
  }
});
