// Issue 15, the web side of Web Push (docs/push.md), in Chromium against the real server:
// the settings page turns push on and off; the server's real RFC 8291 push is received by a push
// service this test runs, decrypted, and handed to the real service worker, which shows it; a toast's
// `ack` cancels the push, while a kind whose in-app notifications are off is pushed exactly once;
// axe and the keyboard on /settings; signing out removes the device.
//
// The one substitute: the browser's push service. Playwright's contexts are incognito, where
// Chromium refuses the Push API ("Registration failed - permission denied"), and a persistent
// profile's `pushManager.subscribe` never answers here (it needs Google's FCM over the internet).
// So `PushManager.prototype.subscribe`/`getSubscription` are replaced, in the page only, by ones
// answering a subscription whose endpoint is this test's HTTP push service on 127.0.0.1 (the server
// allows http and loopback endpoints outside production) and whose keys this test generated. All
// the rest is real: the page's code, the server's VAPID signing, encryption and escalation, the
// decryption (http_ece, the reference implementation of RFC 8188/8291), and the service worker,
// which gets the decrypted message through CDP's `ServiceWorker.deliverPushMessage` as it would from
// the push service.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import ece from 'http_ece';
import { expectNoAxeViolations, expectVisibleFocus, installHelpers, tabTo, writeAxeReport } from './a11y.mjs';
import { API_KEY, Clocks, RolePage, Server, buildAll, launchBrowser, until } from './harness.mjs';

const DRIVER = 'dana@parkmate.test';
/** A second driver whose subscription is registered through the API only (a barrier, below). */
const OTHER_DRIVER = 'dev@parkmate.test';
/** `push.escalation_window` for this server: how long a notification waits for an ack. */
const WINDOW_S = 10;

/**
 * A push service on loopback, like FCM's or Mozilla's to the server: every POST to
 * `/push/<name>` is kept (headers and encrypted body) and answered 201 Created.
 */
class PushService {
  constructor() {
    this.messages = [];
    this.srv = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        if (req.method === 'POST' && req.url.startsWith('/push/')) {
          this.messages.push({ name: req.url.slice('/push/'.length), headers: req.headers, body: Buffer.concat(chunks) });
          res.writeHead(201, { Location: `/m/${this.messages.length}` }).end();
        } else {
          res.writeHead(404).end();
        }
      });
    });
  }

  static async create() {
    const svc = new PushService();
    svc.srv.listen(0, '127.0.0.1');
    await once(svc.srv, 'listening');
    svc.base = `http://127.0.0.1:${svc.srv.address().port}`;
    return svc;
  }

  /** A browser's side of a subscription: endpoint, P-256 key pair and 16-byte auth secret. */
  device(name) {
    const ecdh = crypto.createECDH('prime256v1');
    ecdh.generateKeys();
    const auth = crypto.randomBytes(16);
    return {
      ecdh,
      auth,
      json: {
        endpoint: `${this.base}/push/${name}`,
        expirationTime: null,
        keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth: auth.toString('base64url') },
      },
    };
  }

  /** The messages to `device` so far, decrypted (RFC 8291 aes128gcm) and parsed. */
  received(device) {
    const name = device.json.endpoint.split('/push/')[1];
    return this.messages
      .filter((m) => m.name === name)
      .map((m) => {
        const text = ece
          .decrypt(m.body, { version: 'aes128gcm', privateKey: device.ecdh, authSecret: device.auth.toString('base64url') })
          .toString('utf8');
        return { headers: m.headers, text, json: JSON.parse(text) };
      });
  }

  /** Waits for a push of notification `id` to `device`; returns every push of it so far. */
  async waitFor(device, id, what) {
    return until(what ?? `a push of notification ${id}`, () => {
      const got = this.received(device).filter((m) => m.json.id === id);
      return got.length > 0 && got;
    });
  }

  async close() {
    this.srv.closeAllConnections();
    await new Promise((r) => this.srv.close(r));
  }
}

/**
 * Runs in the page before its scripts: `pushManager.subscribe` answers `sub` (the test's device)
 * instead of asking Chromium's push service, and `getSubscription` answers it while subscribed
 * (kept in localStorage, as a browser keeps a subscription across reloads). `unsubscribe` forgets it.
 */
function fakePushManager(sub) {
  const KEY = 'e2e.push.applicationServerKey';
  const bytes = (b64) => {
    const s = atob(b64.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (b64.length % 4)) % 4));
    return Uint8Array.from(s, (c) => c.charCodeAt(0)).buffer;
  };
  const b64url = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  const subscription = (key) => ({
    endpoint: sub.endpoint,
    expirationTime: null,
    options: { userVisibleOnly: true, applicationServerKey: bytes(key) },
    getKey: (name) => (name in sub.keys ? bytes(sub.keys[name]) : null),
    toJSON: () => JSON.parse(JSON.stringify(sub)),
    unsubscribe: async () => {
      localStorage.removeItem(KEY);
      return true;
    },
  });
  window.PushManager.prototype.subscribe = async function (options) {
    if (!options || options.userVisibleOnly !== true) throw new DOMException('userVisibleOnly is required', 'NotAllowedError');
    const key = options.applicationServerKey;
    const raw = typeof key === 'string' ? bytes(key) : key instanceof ArrayBuffer ? key : key.buffer.slice(key.byteOffset, key.byteOffset + key.byteLength);
    localStorage.setItem(KEY, b64url(raw));
    return subscription(localStorage.getItem(KEY));
  };
  window.PushManager.prototype.getSubscription = async function () {
    const key = localStorage.getItem(KEY);
    return key ? subscription(key) : null;
  };
}

describe('Web Push in Chromium: settings, service worker, escalation', { timeout: 180_000 }, () => {
  let server;
  let browser;
  let push;
  let rp;
  let clocks;
  let device;
  let user;

  before(async () => {
    server = await Server.create(buildAll());
    const env = server.env.bind(server);
    server.env = () => ({ ...env(), PARKMATE_PUSH_ESCALATION_WINDOW: `${WINDOW_S}s` });
    await server.start();
    push = await PushService.create();
    browser = await launchBrowser();
    rp = await RolePage.open(browser, server, 'driver');
    device = push.device('dana-chromium');
    await rp.context.addInitScript(fakePushManager, device.json);
    await rp.context.grantPermissions(['notifications'], { origin: server.url });
    clocks = new Clocks(server, [rp]);
    user = await rp.loginAsDemo(DRIVER);
  }, { timeout: 20 * 60_000 }); // a cold cargo build

  after(async () => {
    writeAxeReport();
    await browser?.close().catch(() => {});
    await push?.close().catch(() => {});
    if (server) {
      if (process.exitCode) console.error(`server log tail:\n${server.logTail(60)}`);
      await server.dispose();
    }
  });

  /**
   * Brings the server's manual clock up to the real time (never back). Between advances it stands
   * still, but the store stamps a notification's `created_at` with the system clock, and escalation
   * counts the due time from that (`created_at`, plus the window unless urgent) against the manual
   * clock: without this an urgent push would wait for the next advance. The browser's clock flows in
   * real time already (Playwright's clock, installed without pausing), so this only makes them
   * agree again.
   */
  const catchUp = async () => {
    const { now } = await server.advanceServerClock(0);
    const lag = Date.now() - Date.parse(now);
    if (lag > 0) await server.advanceServerClock(Math.ceil(lag / 1000));
  };

  /**
   * Waits until every notification published so far has been through the escalation: an urgent
   * notification to another driver's device (subscribed through the API, no tab open) is
   * published and its push awaited. Passes scan in id order and finish all their sends before the
   * next one starts, so whatever was owed before it has been pushed by then.
   */
  let other;
  const barrier = async () => {
    if (!other) {
      const { accounts } = await server.call('GET', '/api/auth/demo-accounts');
      const demo = accounts.find((a) => a.email === OTHER_DRIVER);
      const { token, user: u } = await server.login(OTHER_DRIVER, demo.password);
      other = { user: u, device: push.device('dev-api') };
      await server.call('POST', '/api/push/subscriptions', { body: other.device.json, auth: token }, 201);
    }
    const { ids } = await server.publish({ user_id: other.user.id, level: 'warning', event: 'booking_expired', message: 'Your booking for Slot #9 expired' });
    await catchUp();
    await push.waitFor(other.device, ids[0], 'the barrier push');
  };

  /** The server's delivery funnel of notification `id` for the driver (docs/push.md). */
  const funnel = async (id) => (await server.call('GET', `/api/notifications/${id}/status`, { auth: API_KEY })).recipients[0];

  test('the settings page turns push on: permission, service worker, subscription, server', async () => {
    const { page } = rp;
    await rp.tid('nav-settings').click();
    await page.waitForURL('**/settings');
    const status = rp.tid('push-status');
    await until('the device state', async () => (await status.getAttribute('data-state')) === 'off');

    await rp.tid('push-toggle').click();
    await until('push on', async () => (await status.getAttribute('data-state')) === 'on');
    assert.equal(await rp.tid('push-toggle').isChecked(), true);
    assert.match(await status.textContent(), /^On:/);
    assert.equal(await rp.tid('push-error').count(), 0);

    // The real service worker, at the root (scope `/`), active.
    const sw = await page.evaluate(async () => {
      const reg = await navigator.serviceWorker.getRegistration('/');
      return { scope: reg?.scope, script: reg?.active?.scriptURL, permission: Notification.permission };
    });
    assert.deepEqual(sw, { scope: `${server.url}/`, script: `${server.url}/push-sw.js`, permission: 'granted' });

    // The server has it, for this person: posting it again is "refreshed" (200), not "new" (201).
    const again = await server.request('POST', '/api/push/subscriptions', { body: device.json, auth: rp.token });
    assert.equal(again.status, 200, JSON.stringify(again.body));
  });

  test("the app closed: the server's encrypted push decrypts to the notification, and the service worker shows it", async () => {
    const message = 'Your booking will expire in 5 minutes!';
    // The phone in the pocket: no tab open, so nothing can ack it. (An open tab's toast would,
    // and a notification seen live is never pushed, urgent or not.)
    await rp.page.close();
    // Urgent (docs/push.md): pushed at once, without waiting for the escalation window.
    const { ids } = await server.publish({
      user_id: user.id,
      level: 'warning',
      event: 'booking_expiring',
      message,
      data: { booking_id: 4242, end_at: '2031-01-01T10:00:00Z' },
    });
    const [id] = ids;
    await catchUp();
    const [msg, ...more] = await push.waitFor(device, id);
    assert.equal(more.length, 0, 'one push per notification');
    assert.equal(msg.headers['content-encoding'], 'aes128gcm');
    assert.equal(msg.headers.urgency, 'high');
    assert.match(msg.headers.authorization, /^vapid t=[\w-]+\.[\w-]+\.[\w-]+, k=[\w-]+$/);
    assert.ok(Number(msg.headers.ttl) > 0);
    assert.equal(msg.json.id, id);
    assert.equal(msg.json.level, 'warning');
    assert.equal(msg.json.event, 'booking_expiring');
    assert.equal(msg.json.message, message);
    assert.equal(msg.json.data.booking_id, 4242);
    assert.equal(typeof msg.json.created_at, 'string');
    const f = await funnel(id);
    assert.equal(f.seen_at, null);
    assert.notEqual(f.pushed_at, null);

    // Back to the app (same browser profile: still signed in, the worker still registered).
    rp.page = await rp.context.newPage();
    rp.page.on('pageerror', (e) => console.error(`[driver] page error: ${e.message}`));
    await rp.page.goto('/settings');
    await rp.waitConnected();

    // Hand the decrypted message to the service worker, as the push service would.
    const cdp = await rp.context.newCDPSession(rp.page);
    const registrations = [];
    cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => registrations.push(...e.registrations));
    await cdp.send('ServiceWorker.enable');
    const reg = await until('the registration over CDP', () =>
      registrations.find((r) => r.scopeURL === `${server.url}/` && !r.isDeleted),
    );
    // The worker active and in control first: a message delivered while a version is still
    // activating can be dropped by Chromium (seen once in a clean-clone run, never alone).
    await rp.page.evaluate(() => navigator.serviceWorker.ready.then(() => true));
    const shownNow = () =>
      rp.page.evaluate(async (tag) => {
        const r = await navigator.serviceWorker.getRegistration('/');
        const all = await r.getNotifications({ tag });
        return all.map((n) => ({ title: n.title, body: n.body, tag: n.tag, icon: n.icon, data: n.data }))[0];
      }, String(id));
    // Delivered again if it did not show: a push service retries a message the browser did not
    // take, and the tag makes a repeat replace the first, so "one notification" stays exact.
    let shown;
    for (let attempt = 1; !shown; attempt++) {
      await cdp.send('ServiceWorker.deliverPushMessage', { origin: server.url, registrationId: reg.registrationId, data: msg.text });
      try {
        shown = await until('the notification shown by the service worker', shownNow, 5000);
      } catch (e) {
        if (attempt === 3) {
          const state = await rp.page.evaluate(async () => {
            const r = await navigator.serviceWorker.getRegistration('/');
            const all = r ? await r.getNotifications() : [];
            return { active: r?.active?.state, waiting: !!r?.waiting, installing: !!r?.installing, tags: all.map((n) => n.tag) };
          });
          throw new Error(`${e.message}; after 3 deliveries the registration is ${JSON.stringify(state)}`, { cause: e });
        }
      }
    }
    assert.deepEqual(shown, {
      title: 'Parkmate',
      body: message,
      tag: String(id),
      icon: `${server.url}/push-icons/warning.png`,
      data: { id, event: 'booking_expiring', url: '/bookings/4242' },
    });
    const icon = await fetch(shown.icon);
    assert.equal(icon.status, 200);
    assert.equal(icon.headers.get('content-type'), 'image/png');

    // The same notification again replaces it (same tag) instead of stacking a second one.
    await cdp.send('ServiceWorker.deliverPushMessage', { origin: server.url, registrationId: reg.registrationId, data: msg.text });
    const count = await rp.page.evaluate(async (tag) => (await (await navigator.serviceWorker.getRegistration('/')).getNotifications({ tag })).length, String(id));
    assert.equal(count, 1);
    await cdp.detach();

    // A click on it, as the worker handles one (nothing can click a system notification, so its
    // click handler's function is called in the worker): the open tab's router shows the booking,
    // without a reload.
    await rp.page.evaluate(() => {
      window.__sameDocument = true;
    });
    const worker = await until('the service worker in Playwright', () =>
      rp.context.serviceWorkers().find((w) => w.url() === `${server.url}/push-sw.js`),
    );
    // eslint-disable-next-line no-undef -- runs in the worker, where push-sw.js defines it
    assert.equal(await worker.evaluate((url) => openFromNotification(url), shown.data.url), 'tab');
    await rp.page.waitForURL('**/bookings/4242');
    assert.equal(await rp.page.evaluate(() => window.__sameDocument), true, 'the router moved, the page did not reload');
    // eslint-disable-next-line no-undef -- as above
    await worker.evaluate((url) => openFromNotification(url), '/settings');
    await rp.page.waitForURL('**/settings');
    await rp.tid('prefs-form').waitFor();
  });

  test('a toast acks its notification, so it is never pushed; a kind with in-app off is pushed exactly once', async () => {
    // In-app off for car washes, through the settings page.
    const inApp = rp.tid('pref-car_wash_completed-in-app');
    await inApp.uncheck();
    await rp.tid('prefs-save').click();
    await until('saved', async () => (await rp.tid('prefs-status').textContent()) === 'Saved.');
    const saved = await server.call('GET', '/api/push/preferences', { auth: rp.token });
    assert.deepEqual(saved.events, [{ event: 'car_wash_completed', in_app: false, push: true }]);

    const hidden = 'Your car wash service completed';
    const shownText = 'Booking renewed successfully!';
    const b = (await server.publish({ user_id: user.id, level: 'success', event: 'car_wash_completed', message: hidden, data: { booking_id: 7 } })).ids[0];
    const a = (await server.publish({ user_id: user.id, level: 'success', event: 'booking_renewed', message: shownText, data: { booking_id: 7 } })).ids[0];
    // Frames arrive in order: once A is toasted, B was received (and not toasted).
    await rp.waitToast(shownText);
    assert.equal(await rp.toastCount(hidden), 0, 'in-app off: no toast');
    await until('the toast acked', async () => (await funnel(a)).seen_at != null);
    assert.equal((await funnel(b)).seen_at, null, 'not shown, so not acked');

    // Past the escalation window on the server's manual clock: B falls due, A is seen.
    await catchUp();
    await clocks.advance(WINDOW_S + 1);
    const [pushedB] = await push.waitFor(device, b, 'the push of the notification nobody saw');
    assert.equal(pushedB.json.event, 'car_wash_completed');
    assert.equal(pushedB.json.message, hidden);
    assert.equal(pushedB.headers.urgency, 'normal');
    await until('B recorded as pushed', async () => (await funnel(b)).pushed_at != null);

    // A barrier: an urgent notification published now (to another person's device, so no tab
    // acks it) is scanned by a later pass than the one A was due in, and a pass ends only when
    // all its sends have: once it arrives, a push of A would have arrived too.
    await barrier();
    assert.equal(push.received(device).filter((m) => m.json.id === a).length, 0, 'the acked notification was pushed');
    assert.equal(push.received(device).filter((m) => m.json.id === b).length, 1, 'pushed exactly once');
    const fa = await funnel(a);
    assert.equal(fa.pushed_at, null);
    assert.equal(fa.push_failed_at, null);

    // The inbox still lists the one that was not shown.
    await rp.tid('bell').click();
    await rp.tid(`inbox-item-${b}`).waitFor();
    assert.match(await rp.tid(`inbox-item-${b}`).textContent(), /Your car wash service completed/);
    await rp.page.keyboard.press('Escape');
  });

  test('the settings page turns push off: the server forgets it first, then the browser', async () => {
    const status = rp.tid('push-status');
    await rp.tid('push-toggle').click();
    await until('push off', async () => (await status.getAttribute('data-state')) === 'off');
    assert.equal(await rp.tid('push-toggle').isChecked(), false);
    assert.equal(await rp.page.evaluate(async () => (await navigator.serviceWorker.getRegistration('/')).pushManager.getSubscription()), null);
    // Removing it again: the server no longer has it.
    const gone = await server.request('DELETE', '/api/push/subscriptions', { body: { endpoint: device.json.endpoint }, auth: rp.token });
    assert.equal(gone.status, 404);

    // Nothing is pushed to it any more: a car wash (in-app off since the test above, so no ack)
    // past the window owes no push, where with the subscription it was pushed.
    const mine = (await server.publish({ user_id: user.id, level: 'success', event: 'car_wash_completed', message: 'Your car wash service completed' })).ids[0];
    await catchUp();
    await clocks.advance(WINDOW_S + 1);
    await barrier();
    assert.equal(push.received(device).filter((m) => m.json.id === mine).length, 0);
    const f = await funnel(mine);
    assert.equal(f.seen_at, null);
    assert.equal(f.push_due_at, null, 'owes no push');
  });

  test('/settings passes axe and works from the keyboard, desktop and phone', async () => {
    const { page } = rp;
    for (const viewport of [{ width: 1280, height: 800 }, { width: 390, height: 844 }]) {
      await page.setViewportSize(viewport);
      await page.reload();
      await until('the device state', async () => (await rp.tid('push-status').getAttribute('data-state')) === 'off');
      await rp.tid('prefs-form').waitFor();
      await expectNoAxeViolations(page, `settings (push off) ${viewport.width}`);
    }
    await page.setViewportSize({ width: 1280, height: 800 });
    await installHelpers(page);
    await page.locator('main h1').focus();
    await tabTo(page, '[data-testid="push-toggle"]', { step: 'to the push switch' });
    await expectVisibleFocus(page, 'the push switch');
    await page.keyboard.press('Space');
    await until('push on from the keyboard', async () => (await rp.tid('push-status').getAttribute('data-state')) === 'on');
    await expectNoAxeViolations(page, 'settings (push on) 1280');
    await tabTo(page, '[data-testid="pref-booking_renewed-push"]', { step: 'to a push checkbox', max: 30 });
    await expectVisibleFocus(page, 'a push checkbox');
    await page.keyboard.press('Space');
    assert.equal(await rp.tid('pref-booking_renewed-push').isChecked(), false);
    await tabTo(page, '[data-testid="prefs-save"]', { step: 'to Save', max: 40 });
    await expectVisibleFocus(page, 'Save');
    await page.keyboard.press('Enter');
    await until('saved from the keyboard', async () => (await rp.tid('prefs-status').textContent()) === 'Saved.');
    const saved = await server.call('GET', '/api/push/preferences', { auth: rp.token });
    assert.deepEqual(
      saved.events.find((e) => e.event === 'booking_renewed'),
      { event: 'booking_renewed', in_app: true, push: false },
    );
  });

  test('signing out removes this device: the next person on this browser gets none of my pushes', async () => {
    const { page } = rp;
    assert.equal(await rp.tid('push-status').getAttribute('data-state'), 'on', 'left on by the keyboard test');
    await rp.tid('logout').click();
    await page.waitForURL('**/login');
    assert.equal(await page.evaluate(async () => (await navigator.serviceWorker.getRegistration('/')).pushManager.getSubscription()), null);
    const gone = await server.request('DELETE', '/api/push/subscriptions', { body: { endpoint: device.json.endpoint }, auth: rp.token });
    assert.equal(gone.status, 404, 'the server forgot it');
  });
});
