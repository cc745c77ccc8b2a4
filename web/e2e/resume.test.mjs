// Issue 12, point 10a: "nothing is lost" holds for a page from its very first `hello`. A signed-in
// page that has not received a single notification loses its network (Chromium goes offline and
// the relay in front of the server resets its socket), three notifications are published, the
// network comes back: the page reconnects by itself with `since` (the `newest_id` its first hello
// named) and shows each of the three as a toast, exactly once.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Relay, RolePage, Server, buildAll, launchBrowser, until } from './harness.mjs';

const DRIVER = 'dev@parkmate.test';

describe('Parkmate in Chromium: lossless from the first hello', { timeout: 120_000 }, () => {
  let server;
  let relay;
  let browser;
  let page;

  before(async () => {
    server = await Server.create(buildAll());
    await server.start();
    relay = await Relay.create(server);
    browser = await launchBrowser();
    // Served through the relay, so pulling the relay is pulling the page's network.
    page = await RolePage.open(browser, { url: relay.url }, 'driver');
  }, { timeout: 20 * 60_000 }); // a cold cargo build

  after(async () => {
    await browser?.close().catch(() => {});
    await relay?.close().catch(() => {});
    if (server) {
      if (process.exitCode) console.error(`server log tail:\n${server.logTail(60)}`);
      await server.dispose();
    }
  });

  test('a network drop before the first notification loses nothing', async () => {
    const sockets = [];
    page.page.on('websocket', (ws) => sockets.push(ws.url()));
    const user = await page.loginAsDemo(DRIVER);
    assert.equal(sockets.length, 1);
    assert.doesNotMatch(sockets[0], /since=/, 'a fresh page has no cursor of its own');
    const before = await page.toasts();
    const unreadBefore = (await server.call('GET', '/api/inbox/unread-count', { auth: page.token })).count;

    await page.context.setOffline(true);
    relay.cut();
    await until('the page noticed the drop', async () => (await page.connectionStatus()) !== 'open');

    const texts = ['Away one', 'Away two', 'Away three'];
    for (const message of texts) await server.publish({ user_id: user.id, level: 'info', message });
    assert.equal((await server.call('GET', '/api/inbox/unread-count', { auth: page.token })).count, unreadBefore + 3);
    for (const t of texts) assert.equal(await page.toastCount(t), 0, `"${t}" arrived while the network was down`);

    relay.restore();
    await page.context.setOffline(false);
    // Past any backoff the client chose while offline (the page's clock is the test's).
    await page.context.clock.fastForward(60_000);
    await page.waitConnected();
    for (const t of texts) await page.waitToast(t);

    const reconnect = sockets.at(-1);
    assert.match(reconnect, /[?&]since=\d+/, `the reconnect resumes (${reconnect})`);
    await page.tid('unread-badge').filter({ hasText: String(unreadBefore + 3) }).waitFor();
    for (const t of texts) assert.equal(await page.toastCount(t), 1, `"${t}" once`);
    assert.equal((await page.toasts()).length, before.length + texts.length, 'no other toast');
  });
});
