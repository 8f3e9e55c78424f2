// Every sockjs-client transport in headless Chromium against the gateway,
// same-origin and cross-origin, asserting the transport really used.
import { test, before, after } from 'node:test';
import { TRANSPORTS, startGateway, launchBrowser, exerciseTransport, echoConfig } from './lib.mjs';

let browser, pages, gateway;

before(async () => {
  // The cross-origin page comes from a second gateway that only serves pages.
  pages = await startGateway('[services.unused]\nprefix = "/unused"\n');
  gateway = await startGateway(echoConfig({ allowed: [pages.url] }));
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await gateway?.stop();
  await pages?.stop();
});

for (const [setup, crossOrigin] of [['same-origin', false], ['cross-origin', true]]) {
  test(setup, async (t) => {
    for (const transport of TRANSPORTS) {
      await t.test(transport, async (t) => {
        const pageOrigin = crossOrigin ? pages.url : gateway.url;
        const skip = await exerciseTransport(t, browser, {
          pageOrigin, echoUrl: `${gateway.url}/echo`, closeUrl: `${gateway.url}/close`, transport, crossOrigin,
        });
        if (skip) t.skip(skip);
      });
    }
  });
}
