// A page refused by max_sessions_per_ip hears close 4429, on every
// transport a page commonly gets, as the README promises (issue 30: /info
// answered 429 first, and sockjs-client turned that into 1002 "Cannot
// connect to server").
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, launchBrowser } from './lib.mjs';

let browser, gateway;

before(async () => {
  gateway = await startGateway(`
[services.echo]
prefix = "/echo"
kind = "echo"
max_sessions_per_ip = 1
`);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await gateway?.stop();
});

// Connects `page` once the address's one place is free: a session a
// polling client left ends only after disconnect_delay (5 s).
async function connectWhenFree(page, echo, transport) {
  const until = Date.now() + 15000;
  for (;;) {
    const used = await page.evaluate(([u, tr]) => lab.connect(u, tr).catch((e) => e.message), [echo, transport]);
    if (used === transport) return;
    assert.match(used, /4429 Too many sessions/);
    assert.ok(Date.now() < until, `the place never came back: ${used}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

for (const transport of ['websocket', 'xhr-streaming', 'eventsource', 'xhr-polling']) {
  test(`${transport}: the session past the limit closes with 4429`, async () => {
    const [holder, refused] = [await browser.newPage(), await browser.newPage()];
    try {
      for (const page of [holder, refused]) await page.goto(`${gateway.url}/lab.html`);
      const echo = `${gateway.url}/echo`;
      await connectWhenFree(holder, echo, transport);
      const close = await refused.evaluate(([u, tr]) => lab.connectAndAwaitClose(u, tr), [echo, transport]);
      assert.deepEqual([close.code, close.reason], [4429, 'Too many sessions'], JSON.stringify(close));
      // The place comes back when the holder leaves.
      await holder.close();
      await connectWhenFree(refused, echo, transport);
      await refused.evaluate(() => lab.close(1000, 'bye'));
    } finally {
      await holder.close();
      await refused.close();
    }
  });
}
