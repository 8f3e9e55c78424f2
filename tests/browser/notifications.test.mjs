// The notifications page used as a newcomer does, through its own form:
// sign in by name (the demo's /demo/token), get a notification from the
// API, reload, and sign in again after two more went out. The page must say
// how many it recovered, above them, and no "Signed in as" placeholder may
// stay above them (issue 30: the recovery line was overwritten by it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, launchBrowser, freePort, apiCall } from './lib.mjs';

const KEY = 'browser-test-api-key-0123';
let browser, gateway, apiPort;

before(async () => {
  apiPort = await freePort();
  gateway = await startGateway(`
[api]
listen = "127.0.0.1:${apiPort}"
key = "${KEY}"
[auth]
anonymous = true
demo_login = true
[services.stomp]
prefix = "/stomp"
kind = "stomp"
subscribe = ["/topic/**", "/user/queue/**"]
send = ["/topic/feed"]
[[services.stomp.history]]
destinations = ["/topic/**", "/user/queue/**"]
size = 100
ttl = 600
`);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await gateway?.stop();
});

const notifyAlice = (body) => apiCall(`http://127.0.0.1:${apiPort}`, KEY, 'POST',
  '/api/users/alice/send', { destination: '/user/queue/notifications', body });

// Signs in as alice with the page's form; resolves once it says connected.
async function signIn(page) {
  await page.fill('#user', 'alice');
  await page.click('#connect');
  await page.waitForFunction(() => /^connected over .* as alice$/.test(document.getElementById('status').textContent),
    null, { timeout: 15000 });
  // The form's handler subscribes, then says connected: the recovery (if
  // any) is in by then.
}

const lines = (page) => page.$$eval('#mine > *', (els) => els.map((e) => e.textContent.trim()));

test('the page says how many notifications a reload recovered', async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${gateway.url}/notifications.html`);
    await signIn(page);
    assert.deepEqual(await lines(page), ['Signed in as alice: your notifications appear here.']);
    assert.equal((await notifyAlice('first')).delivered, 1);
    await page.waitForFunction(() => document.getElementById('mine').textContent.includes('first'));
    assert.equal((await lines(page)).length, 1, 'the placeholder went with the first notification');

    await page.reload();
    // (Published while no tab of alice's is signed in: kept in history.)
    await notifyAlice('second');
    await notifyAlice('third');
    await signIn(page);
    const shown = await lines(page);
    assert.equal(shown.length, 3, JSON.stringify(shown));
    assert.match(shown[0], /\/user\/queue\/notifications: 2 missed notifications recovered$/);
    assert.match(shown[1], /\/user\/queue\/notifications {2}third$/);
    assert.match(shown[2], /\/user\/queue\/notifications {2}second$/);
    assert.ok(!shown.some((l) => l.startsWith('Signed in as')), JSON.stringify(shown));

    // A live one goes on top; the recovery line stays.
    assert.equal((await notifyAlice('fourth')).delivered, 1);
    await page.waitForFunction(() => document.getElementById('mine').textContent.includes('fourth'));
    const after = await lines(page);
    assert.equal(after.length, 4, JSON.stringify(after));
    assert.match(after[1], /2 missed notifications recovered$/);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});
