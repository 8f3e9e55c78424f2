// The transport lab as a person sees it: the transport picker reads in
// full, old-IE-only transports are marked and cannot be picked, and the
// xhr-streaming prelude is shown for what it is, not as a frame.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, launchBrowser, echoConfig } from './lib.mjs';

let browser, gateway, page;

before(async () => {
  gateway = await startGateway(echoConfig());
  browser = await launchBrowser();
  page = await browser.newPage();
  await page.goto(`${gateway.url}/lab.html`);
});

after(async () => {
  await browser?.close();
  await gateway?.stop();
});

test('the transport picker shows its whole label', async () => {
  const fit = await page.evaluate(() => {
    const select = document.getElementById('transport');
    const style = getComputedStyle(select);
    const ctx = document.createElement('canvas').getContext('2d');
    ctx.font = `${style.fontSize} ${style.fontFamily}`;
    const text = select.options[select.selectedIndex].text;
    // Room for the text: the box less its padding and the drop-down arrow.
    const room = select.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 20;
    return { text, width: ctx.measureText(text).width, room };
  });
  assert.match(fit.text, /^any/);
  assert.ok(fit.width <= fit.room, `"${fit.text}" needs ${fit.width}px, has ${fit.room}px`);
});

test('xdr transports are marked as old Internet Explorer only and cannot be picked', async () => {
  const xdr = await page.evaluate(() => [...document.querySelectorAll('#transport option')]
    .filter((o) => o.value.startsWith('xdr-'))
    .map((o) => ({ value: o.value, disabled: o.disabled, group: o.parentElement.label || '' })));
  assert.deepEqual(xdr.map((o) => o.value).sort(), ['xdr-polling', 'xdr-streaming']);
  for (const o of xdr) {
    assert.ok(o.disabled, `${o.value} can be picked`);
    assert.match(o.group, /Internet Explorer/);
  }
});

test('the xhr-streaming prelude is logged as a prelude, not as a frame', async () => {
  const used = await page.evaluate((u) => lab.connect(u, 'xhr-streaming'), `${gateway.url}/echo`);
  assert.equal(used, 'xhr-streaming');
  await page.evaluate(() => lab.echo('hello'));
  const lines = await page.evaluate(() => [...document.querySelectorAll('#log div')].map((d) => d.textContent));
  assert.ok(lines.some((l) => l.includes("xhr-streaming prelude: 2048 bytes of 'h'")), lines.join('\n'));
  assert.ok(!lines.some((l) => /⇐ hh/.test(l)), `prelude logged as a frame:\n${lines.join('\n')}`);
  assert.ok(lines.some((l) => l.includes('⇐ o')), 'the open frame is still shown');
  await page.evaluate(() => lab.close(1000, 'bye'));
});
