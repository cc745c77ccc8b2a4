// Everyone can use it: axe-core (WCAG 2.0/2.1 A and AA and best practices) on every page and state
// of the client, for every role, at desktop (1280×800) and phone (390×844) sizes, failing on any
// serious or critical violation; the keyboard alone signs in, opens and closes the inbox, marks
// read, books a slot and dismisses toasts, with focus asserted after every step; toast text is
// checked against both ends of its gradient; and toasts never cover the open inbox's controls nor,
// on a phone, the page heading. One server and one browser for the whole file.

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ARTIFACTS, RolePage, Server, WAIT_MS, buildAll, launchBrowser, until } from './harness.mjs';
import {
  boxes,
  expectApart,
  expectClickable,
  expectFocus,
  expectNoAxeViolations,
  expectVisibleFocus,
  overlaps,
  settled,
  tabTo,
  toastContrast,
  waitFocus,
  writeAxeReport,
} from './a11y.mjs';

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const SIZES = [
  ['desktop', DESKTOP],
  ['phone', PHONE],
];
const DRIVER = 'dana@parkmate.test';
const KEYBOARD_DRIVER = 'dev@parkmate.test';
const OTHERS = [
  ['owner', 'otto@parkmate.test', '/owner'],
  ['admin', 'admin@parkmate.test', '/admin'],
  ['employee', 'emil@parkmate.test', '/jobs'],
];
const LEVELS = ['success', 'error', 'warning', 'info', 'confirm'];

describe('Accessibility in Chromium: axe everywhere, keyboard only, toasts', { timeout: 240_000 }, () => {
  let server;
  let browser;
  const shots = [];

  before(async () => {
    server = await Server.create(buildAll());
    await server.start();
    browser = await launchBrowser();
  }, { timeout: 20 * 60_000 });

  after(async () => {
    const axeReport = writeAxeReport();
    if (axeReport) console.log(`axe report: ${axeReport}`);
    if (shots.length) console.log(`screenshots: ${shots.join(', ')}`);
    await browser?.close().catch(() => {});
    if (server) {
      if (process.exitCode) console.error(`server log tail:\n${server.logTail(60)}`);
      await server.dispose();
    }
  });

  /** Publishes one notification per level to `user`, waits until all five are on screen and still. */
  async function fiveToasts(rp, tag) {
    for (const level of LEVELS) await server.publish({ user_id: rp.user.id, level, message: `${tag}: ${level} toast` });
    for (const level of LEVELS) await rp.waitToast(`${tag}: ${level} toast`);
    await settled(rp.page);
  }

  /** Escape with focus outside the toasts dismisses the newest; until none is left. */
  async function dismissAllToasts(rp) {
    await rp.page.evaluate(() => document.activeElement?.blur());
    await until('every toast dismissed with Escape', async () => {
      const left = await rp.page.locator('.Toastify__toast[data-in="true"]').count();
      if (left > 0) await rp.page.keyboard.press('Escape');
      return left === 0;
    });
  }

  function expectReadable(rows, where) {
    assert.ok(rows.length > 0, `${where}: no toast to check`);
    for (const r of rows) {
      assert.ok(r.message >= 4.5, `${where}: ${r.level} toast text is ${r.message?.toFixed(2)}:1 on its gradient`);
      if (r.hint != null) assert.ok(r.hint >= 4.5, `${where}: ${r.level} toast hint is ${r.hint.toFixed(2)}:1`);
      assert.ok(r.close >= 3, `${where}: ${r.level} toast close button is ${r.close?.toFixed(2)}:1`);
    }
  }

  test('sign-in page, empty and with an error, desktop and phone', async () => {
    const rp = await RolePage.open(browser, server, 'signed-out', DESKTOP);
    try {
      for (const [name, size] of SIZES) {
        await rp.page.setViewportSize(size);
        await rp.page.goto('/login');
        await rp.tid('demo-accounts').waitFor();
        await expectNoAxeViolations(rp.page, `sign-in (${name})`);
        await rp.tid('login-email').fill('nobody@parkmate.test');
        await rp.tid('login-password').fill('wrong password');
        await rp.tid('login-submit').click();
        await rp.tid('login-error').waitFor();
        await expectNoAxeViolations(rp.page, `sign-in error (${name})`);
      }
    } finally {
      await rp.close();
    }
  });

  test('driver: lots, booking form, inbox, five toasts, booking page, my bookings — desktop and phone', async () => {
    const rp = await RolePage.open(browser, server, 'driver', DESKTOP);
    try {
      await rp.loginAsDemo(DRIVER);
      await rp.page.waitForURL('**/lots');
      let bookingId = null;
      for (const [name, size] of SIZES) {
        await rp.page.setViewportSize(size);
        const free = rp.page.locator('[data-testid^="slot-"]:not([disabled])').first();
        await free.waitFor();
        await expectNoAxeViolations(rp.page, `driver lots (${name})`);

        await free.click();
        await rp.tid('booking-form').waitFor();
        await expectNoAxeViolations(rp.page, `booking form (${name})`);
        // The radios are visually hidden inside their labels: a pointer clicks the label.
        await rp.page.locator('label', { has: rp.tid('booking-payment-card') }).click();
        await rp.tid('booking-card-number').waitFor();
        await expectNoAxeViolations(rp.page, `booking form, card (${name})`);
        await rp.page.locator('label', { has: rp.tid('booking-payment-cash') }).click();

        await fiveToasts(rp, `driver ${name}`);
        await expectNoAxeViolations(rp.page, `five toasts (${name})`);
        expectReadable(await toastContrast(rp.page), `five toasts (${name})`);
        shots.push(await rp.screenshot(`toasts-${name}.png`));
        // Focused, a toast shows its Escape hint: the same rules hold.
        await rp.page.keyboard.press('Alt+KeyT');
        await rp.page.locator('.Toastify__toast:focus .pm-toast__keys').waitFor();
        await expectNoAxeViolations(rp.page, `five toasts, one focused (${name})`);
        expectReadable(await toastContrast(rp.page), `five toasts, one focused (${name})`);

        await rp.tid('bell').click();
        await rp.tid('inbox').locator('[data-testid^="inbox-item-"]').first().waitFor();
        await settled(rp.page);
        await expectNoAxeViolations(rp.page, `inbox open over five toasts (${name})`);
        shots.push(await rp.screenshot(`inbox-and-toasts-${name}.png`));
        if (name === 'desktop') {
          // The right-hand part only (docs/img/toasts-and-inbox-desktop.png is a copy of this one).
          const clip = path.join(ARTIFACTS, 'toasts-and-inbox-desktop-crop.png');
          await rp.page.screenshot({ path: clip, clip: { x: 440, y: 0, width: 840, height: 440 } });
          shots.push(clip);
        }
        await rp.page.keyboard.press('Escape'); // closes the inbox
        await rp.tid('inbox').waitFor({ state: 'detached' });
        await dismissAllToasts(rp);

        if (bookingId == null) {
          await rp.tid('book-button').click();
          await rp.page.waitForURL(/\/bookings\/\d+$/);
          bookingId = Number(new URL(rp.page.url()).pathname.split('/').pop());
        } else {
          await rp.page.goto(`/bookings/${bookingId}`);
          await rp.waitConnected();
        }
        await rp.tid('countdown').waitFor();
        await expectNoAxeViolations(rp.page, `booking page (${name})`);

        await rp.page.goto('/bookings');
        await rp.tid(`booking-row-${bookingId}`).waitFor();
        await expectNoAxeViolations(rp.page, `my bookings (${name})`);
        await rp.page.goto('/lots');
        await rp.waitConnected();
      }
    } finally {
      await rp.close();
    }
  });

  for (const [role, email, home] of OTHERS) {
    test(`${role}: home page, inbox with unread items, desktop and phone`, async () => {
      const rp = await RolePage.open(browser, server, role, DESKTOP);
      try {
        await rp.loginAsDemo(email);
        await rp.page.waitForURL(`**${home}`);
        // From a known count: earlier tests of this suite may have left this role notifications of
        // their own (an admin hears of every booking request, an owner of every change at a lot).
        const readAll = await rp.page.request.post('/api/inbox/read-all', {
          headers: { Authorization: `Bearer ${rp.token}` },
        });
        assert.equal(readAll.status(), 200);
        await server.publish({ user_id: rp.user.id, level: 'info', message: `For the ${role}: one` });
        await server.publish({ user_id: rp.user.id, level: 'warning', message: `For the ${role}: two` });
        await rp.tid('unread-badge').filter({ hasText: '2' }).waitFor();
        await rp.waitToast(`For the ${role}: two`);
        await dismissAllToasts(rp);
        for (const [name, size] of SIZES) {
          await rp.page.setViewportSize(size);
          await rp.page.locator('main h1').waitFor();
          await expectNoAxeViolations(rp.page, `${role} home (${name})`);
          await rp.tid('bell').click();
          await rp.page.locator('[data-testid^="inbox-item-"][data-read="false"]').first().waitFor();
          await expectNoAxeViolations(rp.page, `${role} inbox (${name})`);
          await rp.tid('bell').click();
          await rp.tid('inbox').waitFor({ state: 'detached' });
        }
      } finally {
        await rp.close();
      }
    });
  }

  describe('keyboard only, focus asserted after every step', () => {
    let rp;
    let bookedSlot;

    before(async () => {
      rp = await RolePage.open(browser, server, 'keyboard', DESKTOP);
    });
    after(async () => {
      await rp?.close();
    });

    test('sign in', async () => {
      const p = rp.page;
      const { accounts } = await server.call('GET', '/api/auth/demo-accounts');
      const me = accounts.find((a) => a.email === KEYBOARD_DRIVER);
      await p.goto('/login');
      await rp.tid('demo-accounts').waitFor();
      await tabTo(p, '[data-testid="login-email"]', { step: 'to the email field' });
      await p.keyboard.type(me.email);
      await p.keyboard.press('Tab');
      await expectFocus(p, '[data-testid="login-password"]', 'Tab to the password');
      await expectVisibleFocus(p, 'password');
      await p.keyboard.type(me.password);
      await p.keyboard.press('Tab');
      await expectFocus(p, '[data-testid="login-submit"]', 'Tab to Sign in');
      await expectVisibleFocus(p, 'Sign in');
      await p.keyboard.press('Enter');
      await p.waitForURL('**/lots');
      await rp.waitConnected();
      // Focus goes to the new page's heading, not <body>.
      await waitFocus(p, 'main h1', 'after signing in');
      assert.equal(await p.evaluate(() => document.activeElement.textContent), 'Find parking');
      rp.token = await p.evaluate(() => localStorage.getItem('parkmate.token'));
      rp.user = JSON.parse(await p.evaluate(() => localStorage.getItem('parkmate.user')));
    });

    test('the skip link is the first Tab stop, is seen, and goes to the page', async () => {
      const p = rp.page;
      await p.reload();
      await rp.waitConnected();
      await p.keyboard.press('Tab');
      await expectFocus(p, '[data-testid="skip-to-main"]', 'first Tab');
      await expectVisibleFocus(p, 'skip link');
      const box = await rp.tid('skip-to-main').boundingBox();
      assert.ok(box && box.x >= 0 && box.y >= 0 && box.width > 40, `skip link on screen: ${JSON.stringify(box)}`);
      await p.keyboard.press('Enter');
      await waitFocus(p, '#main', 'after the skip link');
      await p.keyboard.press('Tab');
      await expectFocus(p, 'main *', 'Tab after skipping');
    });

    test('open the inbox, close it with Escape, mark one read, mark all read', async () => {
      const p = rp.page;
      const a = await server.publish({ user_id: rp.user.id, level: 'info', message: 'Keyboard: first' });
      const b = await server.publish({ user_id: rp.user.id, level: 'success', message: 'Keyboard: second' });
      await rp.tid('unread-badge').filter({ hasText: '2' }).waitFor();
      await rp.waitToast('Keyboard: first');
      await rp.waitToast('Keyboard: second');
      await dismissAllToasts(rp);
      await p.locator('main h1').focus(); // where a navigation leaves the user
      await tabTo(p, '[data-testid="bell"]', { back: true, step: 'back to the bell' });

      await p.keyboard.press('Enter');
      await rp.tid('inbox').waitFor();
      await waitFocus(p, '[data-testid="inbox"]', 'Enter on the bell opens the inbox');
      await p.keyboard.press('Escape');
      await rp.tid('inbox').waitFor({ state: 'detached' });
      await expectFocus(p, '[data-testid="bell"]', 'Escape closes the inbox');

      await p.keyboard.press('Enter');
      await rp.tid(`inbox-item-${a.ids[0]}`).waitFor();
      await waitFocus(p, '[data-testid="inbox"]', 'open again');
      const markOne = `[data-testid="inbox-mark-read-${a.ids[0]}"]`;
      // Its accessible name (as Chromium computes it) starts with what it shows and says which item.
      assert.equal(await p.getByRole('button', { name: 'Mark read: Keyboard: first', exact: true }).getAttribute('data-testid'), `inbox-mark-read-${a.ids[0]}`);
      await tabTo(p, markOne, { step: "to the first item's Mark read", max: 8 });
      await p.keyboard.press('Enter');
      await p.locator(`[data-testid="inbox-item-${a.ids[0]}"][data-read="true"]`).waitFor();
      await waitFocus(p, `#inbox-open-${a.ids[0]}`, 'Mark read hands focus to its item');
      await expectVisibleFocus(p, 'the item after Mark read');

      await tabTo(p, '[data-testid="inbox-mark-all"]', { back: true, step: 'back to Mark all read', max: 8 });
      await p.keyboard.press('Enter');
      await p.locator(`[data-testid="inbox-item-${b.ids[0]}"][data-read="true"]`).waitFor();
      await rp.tid('unread-badge').waitFor({ state: 'detached' });
      await waitFocus(p, '[data-testid="inbox"]', 'Mark all read hands focus to the dialog');
      await p.keyboard.press('Escape');
      await expectFocus(p, '[data-testid="bell"]', 'Escape returns to the bell');
    });

    test('book a slot', async () => {
      const p = rp.page;
      const slot = '[data-testid^="slot-"]:not([disabled])';
      await tabTo(p, slot, { step: 'to a free slot', max: 40 });
      const picked = await p.evaluate(() => document.activeElement.getAttribute('data-slot-number'));
      await p.keyboard.press('Enter');
      await rp.tid('booking-form').waitFor();
      await waitFocus(p, '[data-testid="booking-form"] h3', 'picking a slot moves focus to the form');
      assert.equal(await p.evaluate(() => document.activeElement.textContent), `Book slot #${picked}`);
      await p.keyboard.press('Tab');
      await expectFocus(p, '[data-testid="booking-duration"]', 'Tab to the duration');
      await expectVisibleFocus(p, 'duration');
      await p.keyboard.press('ControlOrMeta+a');
      await p.keyboard.type('45');
      await tabTo(p, '[data-testid="book-button"]', { step: 'to Book now', max: 10 });
      await p.keyboard.press('Enter');
      await p.waitForURL(/\/bookings\/\d+$/);
      await rp.tid('countdown').waitFor();
      await waitFocus(p, 'main h1', 'after booking');
      assert.match(await p.evaluate(() => document.activeElement.textContent), new RegExp(`Slot #${picked}$`));
      await until('the booking toast', async () => (await rp.toasts()).some((t) => t.text.startsWith(`Booked slot #${picked} `)));
      bookedSlot = picked;
    });

    test('toasts: reached with Alt+T or the skip button, paused while focused, dismissed with Escape or the close button', async () => {
      const p = rp.page;
      await dismissAllToasts(rp);
      await p.locator('main h1').focus(); // where the user is: the heading focused after booking
      for (const [level, message] of [
        ['error', 'Keyboard toast: oldest'],
        ['warning', 'Keyboard toast: middle'],
        ['success', 'Keyboard toast: newest'],
      ]) {
        await server.publish({ user_id: rp.user.id, level, message });
        await rp.waitToast(message);
      }
      const toastWith = (text) => p.locator('.Toastify__toast').filter({ hasText: text });
      const playState = (text) => toastWith(text).locator('.Toastify__progress-bar').evaluate((el) => getComputedStyle(el).animationPlayState);

      // Alt+T: the newest toast, paused (its 4 s wait for the user), its Escape hint shown.
      await p.keyboard.press('Alt+KeyT');
      await expectFocus(p, '.Toastify__toast', 'Alt+T');
      assert.match(await p.evaluate(() => document.activeElement.textContent), /Keyboard toast: newest/);
      await expectVisibleFocus(p, 'the focused toast');
      await until('the focused toast to pause', async () => (await playState('Keyboard toast: newest')) === 'paused');
      await toastWith('Keyboard toast: newest').locator('.pm-toast__keys').waitFor();
      // react-toastify's Alt+T pauses them all; only the focused one stays paused.
      await until('the others to run', async () => (await playState('Keyboard toast: middle')) === 'running');

      // Escape dismisses it; focus moves to the next toast (which pauses in turn).
      await p.keyboard.press('Escape');
      await expectFocus(p, '.Toastify__toast', 'Escape on a toast');
      assert.match(await p.evaluate(() => document.activeElement.textContent), /Keyboard toast: middle/);
      await until('the newest toast gone', async () => (await toastWith('Keyboard toast: newest').count()) === 0);
      await until('the middle toast to pause', async () => (await playState('Keyboard toast: middle')) === 'paused');

      // Its close button, by keyboard: the next toast gets focus.
      await p.keyboard.press('Tab');
      await expectFocus(p, '.Toastify__close-button', 'Tab to the close button');
      await expectVisibleFocus(p, 'close button');
      await p.keyboard.press('Enter');
      await expectFocus(p, '.Toastify__toast', 'closing with the button');
      assert.match(await p.evaluate(() => document.activeElement.textContent), /Keyboard toast: oldest/);

      // The error toast has no timer at all; Escape closes it and focus returns where it was.
      assert.equal(await toastWith('Keyboard toast: oldest').locator('.Toastify__progress-bar--animated').count(), 0, 'errors wait for the user');
      await p.keyboard.press('Escape');
      await expectFocus(p, 'main h1', 'after the last toast');
      await until('no toast left', async () => (await p.locator('.Toastify__toast').count()) === 0);

      // Alt+T is on screen: in the skip links while toasts are showing; the button reaches them.
      await server.publish({ user_id: rp.user.id, level: 'info', message: 'Keyboard toast: via the skip button' });
      await rp.waitToast('Keyboard toast: via the skip button');
      await p.keyboard.press('Escape'); // nothing focused in the toasts: the newest goes
      await until('dismissed by Escape from the page', async () => (await toastWith('via the skip button').count()) === 0);
      await expectFocus(p, 'main h1', 'Escape from the page keeps focus');
      await server.publish({ user_id: rp.user.id, level: 'error', message: 'Keyboard toast: persistent' });
      await rp.waitToast('Keyboard toast: persistent');
      await tabTo(p, '[data-testid="skip-to-toasts"]', { back: true, step: 'back to the skip links', max: 20 });
      assert.equal(await p.evaluate(() => document.activeElement.textContent), 'Notifications (Alt+T)');
      const skip = await rp.tid('skip-to-toasts').boundingBox();
      assert.ok(skip && skip.x >= 0 && skip.y >= 0 && skip.width > 40, `the Alt+T button on screen: ${JSON.stringify(skip)}`);
      await p.keyboard.press('Enter');
      await expectFocus(p, '.Toastify__toast', 'the skip button');
      await p.keyboard.press('Escape');
      await expectFocus(p, '[data-testid="skip-to-toasts"]', 'focus back to the skip button');
      await expectVisibleFocus(p, 'the skip button, no toast left');
      // With no toast showing it leads to the inbox's bell.
      await p.keyboard.press('Enter');
      await expectFocus(p, '[data-testid="bell"]', 'the skip button without toasts');
    });

    test('every toast can be read again in the inbox', async () => {
      const p = rp.page;
      await rp.tid('bell').click();
      await rp.tid('inbox').waitFor();
      // From the server: in the inbox proper; the page's own confirmation: under "Other alerts".
      await rp.tid('inbox').locator('.inbox__msg', { hasText: 'Keyboard toast: oldest' }).waitFor();
      const local = rp.tid('inbox-local');
      await local.getByText(`Booked slot #${bookedSlot}`, { exact: false }).waitFor();
      assert.equal(await local.getByText('Keyboard toast: oldest').count(), 0, 'server notifications are not listed twice');
      await p.keyboard.press('Escape');
    });
  });

  describe('issue 13.8: toasts never cover the open inbox, nor the heading on a phone', () => {
    for (const [name, size] of SIZES) {
      test(`${name} ${size.width}×${size.height}: four toasts, the inbox opens, a fifth arrives`, async () => {
        const rp = await RolePage.open(browser, server, `placement-${name}`, size);
        try {
          await rp.loginAsDemo(DRIVER);
          await rp.page.waitForURL('**/lots');
          await rp.page.locator('main h1').waitFor();
          // Errors and warnings: they stay for the whole check (success and info close after 4 s).
          const messages = [];
          for (let i = 1; i <= 4; i++) {
            const level = i % 2 ? 'error' : 'warning';
            const message = `Placement ${name} ${i}: ${level === 'error' ? 'Renewal failed: Card declined' : 'Your booking will expire in 5 minutes!'}`;
            await server.publish({ user_id: rp.user.id, level, message });
            messages.push(message);
          }
          for (const m of messages) await rp.waitToast(m);
          await settled(rp.page);
          const toasts = () => boxes(rp.page, '.Toastify__toast[data-in="true"]');
          assert.equal((await toasts()).length, 4);

          // Inbox closed: clear of the top bar and of the page heading.
          expectApart(await toasts(), await boxes(rp.page, '.topbar'), `${name}: toasts vs the top bar`);
          expectApart(await toasts(), await boxes(rp.page, 'main h1'), `${name}: toasts vs the heading`);

          await rp.tid('bell').click();
          await rp.page.locator('[data-testid^="inbox-mark-read-"]').first().waitFor();
          await settled(rp.page);
          assert.equal((await toasts()).length, 4, 'still four toasts');
          expectApart(await toasts(), await boxes(rp.page, '[data-testid="inbox"]'), `${name}: toasts vs the open inbox`);
          expectApart(await toasts(), await boxes(rp.page, '[data-testid="bell"], [data-testid="logout"]'), `${name}: toasts vs the header's buttons`);
          await expectClickable(rp.page, '[data-testid="inbox-mark-all"], [data-testid^="inbox-mark-read-"]', `${name}: inbox buttons`);
          const inbox = (await boxes(rp.page, '[data-testid="inbox"]'))[0];
          assert.ok(inbox.h >= 120, `${name}: the inbox keeps room to use (${inbox.h}px)`);
          shots.push(await rp.screenshot(`placement-${name}.png`));

          // A fifth toast while the inbox is open lands clear of it too.
          await server.publish({ user_id: rp.user.id, level: 'warning', message: `Placement ${name}: one more` });
          await rp.waitToast(`Placement ${name}: one more`);
          await settled(rp.page);
          assert.equal((await toasts()).length, 5, 'five toasts');
          await until('the inbox to make room', async () => {
            const inboxNow = await boxes(rp.page, '[data-testid="inbox"]');
            return (await toasts()).every((t) => inboxNow.every((b) => !overlaps(t, b)));
          }, WAIT_MS).catch(() => {});
          expectApart(await toasts(), await boxes(rp.page, '[data-testid="inbox"]'), `${name}: a toast arriving while the inbox is open`);
          await expectClickable(rp.page, '[data-testid="inbox-mark-all"], [data-testid^="inbox-mark-read-"]', `${name}: inbox buttons after one more`);
        } finally {
          await rp.close();
        }
      });
    }
  });
});
