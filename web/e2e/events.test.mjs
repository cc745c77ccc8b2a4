// The ten booking events of docs/booking-api.md, end to end: the real server (manual clock), Debian's
// Chromium, and a driver, a lot owner and an admin each in their own browser context, signed in via
// the login page's demo list. Every toast is asserted by its exact text and level styling; time-based
// events move the server's and the browsers' clocks together instead of waiting. Then the server is
// stopped and restarted while a notification is published in the gap: the driver's client reconnects
// by itself and shows the missed one exactly once.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Clocks, RolePage, Server, WAIT_MS, buildAll, launchBrowser, until } from './harness.mjs';

const DRIVER = 'dana@parkmate.test';
const OWNER = 'otto@parkmate.test'; // owns Harbour Park
const ADMIN = 'admin@parkmate.test';
const EMPLOYEE = 'emil@parkmate.test';
const EMPLOYEE_NAME = 'Emil Employee';
const OTHER_DRIVER = 'dev@parkmate.test';

const ICON = { success: 'CheckCircle', confirm: 'CheckCircle', error: 'XCircle', warning: 'AlertTriangle', info: 'Info' };

/** A rendered toast has the level on its body, the level class on its box and the level's icon. */
function assertStyled(rec, level, text) {
  assert.ok(rec, `no toast "${text}"`);
  assert.equal(rec.text, text);
  assert.equal(rec.level, level, `data-level of "${text}"`);
  assert.match(rec.className, new RegExp(`\\bpm-toast--${level}\\b`), `class of "${text}": ${rec.className}`);
  assert.equal(rec.icon, ICON[level], `icon of "${text}"`);
}

async function expectToast(role, text, level) {
  const rec = await role.waitToast(text);
  assertStyled(rec, level, text);
  return rec;
}

describe('Parkmate in Chromium: the ten events, the inbox, and a restart', { timeout: 180_000 }, () => {
  let server;
  let browser;
  let driver;
  let owner;
  let admin;
  let employee;
  let clocks;
  let lot; // Harbour Park
  let emil;
  let washSlot;
  let plainSlot;
  let bookingId; // approved, paid in cash, with a car wash; expires and is renewed
  let declinedId;
  const shots = {};

  before(async () => {
    const bin = buildAll();
    server = await Server.create(bin);
    await server.start();
    browser = await launchBrowser();
    driver = await RolePage.open(browser, server, 'driver');
    owner = await RolePage.open(browser, server, 'owner');
    admin = await RolePage.open(browser, server, 'admin');
    employee = await RolePage.open(browser, server, 'employee');
    clocks = new Clocks(server, [driver, owner, admin, employee]);
  }, { timeout: 20 * 60_000 }); // a cold cargo build

  after(async () => {
    if (Object.keys(shots).length) console.log(`screenshots: ${Object.values(shots).join(', ')}`);
    await browser?.close().catch(() => {});
    if (server) {
      if (process.exitCode) console.error(`server log tail:\n${server.logTail(60)}`);
      await server.dispose();
    }
  });

  test('each role signs in from the demo list and connects', async () => {
    const d = await driver.loginAsDemo(DRIVER);
    const o = await owner.loginAsDemo(OWNER);
    const a = await admin.loginAsDemo(ADMIN);
    assert.equal(d.role, 'user');
    assert.equal(o.role, 'owner');
    assert.equal(a.role, 'admin');
    await driver.page.waitForURL('**/lots');
    await owner.page.waitForURL('**/owner');
    await admin.page.waitForURL('**/admin');

    const lots = await server.call('GET', '/api/lots', { auth: driver.token });
    lot = lots.items.find((l) => l.owner_id === o.id);
    assert.ok(lot, `a lot owned by ${OWNER}: ${JSON.stringify(lots)}`);
    washSlot = lot.slots.find((s) => s.car_wash && !s.occupied);
    plainSlot = lot.slots.find((s) => !s.car_wash && !s.occupied);
    assert.ok(washSlot && plainSlot, `free slots in ${lot.name}`);
    const employees = await server.call('GET', '/api/users?role=employee', { auth: admin.token });
    emil = employees.items.find((u) => u.name === EMPLOYEE_NAME);
    assert.ok(emil, 'the demo employee');
  });

  test('event 8: the driver books (cash, car wash) and the lot owner is told', async () => {
    const p = driver.page;
    await driver.tid(`slot-${washSlot.id}`).click();
    await driver.tid('booking-duration').fill('60');
    await driver.tid('booking-car-wash').check();
    await driver.tid('booking-payment-cash').check();
    await driver.tid('book-button').click();
    await p.waitForURL(/\/bookings\/\d+$/);
    bookingId = Number(new URL(p.url()).pathname.split('/').pop());
    await expectToast(driver, `Booked slot #${washSlot.number} at ${lot.name}`, 'success');

    await expectToast(owner, `New booking received for Lot #${lot.id}`, 'info');
    await owner.tid(`booking-row-${bookingId}`).waitFor();
  });

  test('event 6: the admin declines another request and the driver is told', async () => {
    await driver.tid('nav-lots').click();
    await driver.tid(`slot-${plainSlot.id}`).click();
    await driver.tid('booking-duration').fill('30');
    await driver.tid('book-button').click();
    await driver.page.waitForURL((u) => /\/bookings\/\d+$/.test(u.pathname) && !u.pathname.endsWith(`/${bookingId}`));
    declinedId = Number(new URL(driver.page.url()).pathname.split('/').pop());
    await until('the owner to hear of the second booking', async () => (await owner.toastCount(`New booking received for Lot #${lot.id}`)) === 2);

    // The admin hears of the request live and the pending list refreshes without a reload.
    await expectToast(admin, `New booking request #${declinedId} at ${lot.name} awaits approval`, 'info');
    await admin.tid(`decline-${declinedId}`).click();
    await admin.tid(`decline-reason-${declinedId}`).fill('Lot closed for cleaning');
    await admin.tid(`decline-confirm-${declinedId}`).click();
    await expectToast(admin, `Declined booking #${declinedId}`, 'success');

    await expectToast(driver, 'Admin declined your booking request', 'warning');
    await driver.tid('booking-status').and(driver.page.locator('[data-status="declined"]')).waitFor();
    await driver.tid('decline-reason').filter({ hasText: 'Lot closed for cleaning' }).waitFor();
    // The owner's dashboard follows the decline live (a lot_activity notification, no toast); a
    // declined cash booking offers no "Verify cash" (the server would answer 409
    // invalid_transition).
    await owner.page.locator(`[data-testid="booking-row-${declinedId}"][data-status="declined"]`).waitFor();
    assert.equal(await owner.tid(`verify-cash-${declinedId}`).count(), 0, 'no Verify cash on a declined booking');
    assert.equal(
      (await owner.toasts()).filter((t) => t.text.startsWith(`Booking #${declinedId} at `)).length,
      0,
      'changes at the lot refresh the dashboard without a toast',
    );
  });

  test('refund: the admin declines a paid request; driver, owner and admin see the money given back', async () => {
    const b = await server.call(
      'POST',
      '/api/bookings',
      { auth: driver.token, body: { slot_id: plainSlot.id, duration_minutes: 45, payment_method: 'online', card_number: '4242424242424242' } },
      201,
    );
    assert.equal(b.payment_status, 'paid');
    const refunded = `Refunded $${(b.amount_cents / 100).toFixed(2)}`;
    await expectToast(admin, `New booking request #${b.id} at ${lot.name} awaits approval`, 'info');
    await admin.tid(`decline-${b.id}`).click();
    await admin.tid(`decline-confirm-${b.id}`).click();
    await expectToast(admin, `Declined booking #${b.id}`, 'success');
    await admin.tid(`refund-${b.id}`).filter({ hasText: refunded }).waitFor();

    // The driver's toast keeps the original text; the refund is its second line.
    await until('the driver\'s decline toast with the refund', async () =>
      (await driver.toasts()).some((t) => t.text === 'Admin declined your booking request' && t.detail === refunded),
    );
    await driver.page.goto(`/bookings/${b.id}`);
    await driver.waitConnected();
    await driver.tid(`refund-${b.id}`).filter({ hasText: refunded }).waitFor();
    await driver.page.locator(`[data-testid="window-${b.id}-1"][data-payment="refunded"]`).waitFor();
    await driver.page.locator('[data-testid="payment-status"][data-payment="refunded"]').waitFor();

    await owner.tid(`refund-${b.id}`).filter({ hasText: refunded }).waitFor();
    const after = await server.call('GET', `/api/bookings/${b.id}`, { auth: driver.token });
    assert.equal(after.windows[0].refund.status, 'succeeded');
  });

    test('approve: the admin confirms the first request', async () => {
    await admin.tid(`approve-${bookingId}`).click();
    await expectToast(admin, `Approved booking #${bookingId}`, 'success');
    shots.admin = await admin.screenshot('admin.png', `Approved booking #${bookingId}`);
    const b = await server.call('GET', `/api/bookings/${bookingId}`, { auth: driver.token });
    assert.equal(b.status, 'confirmed');
  });

  test('event 7: the owner verifies the cash payment and the driver is told', async () => {
    await driver.tid('nav-bookings').click();
    await driver.tid(`booking-link-${bookingId}`).click();
    await driver.page.waitForURL(`**/bookings/${bookingId}`);

    await owner.tid(`verify-cash-${bookingId}`).click();
    await expectToast(owner, `Cash payment verified for booking #${bookingId}`, 'success');
    await expectToast(driver, 'Your cash payment has been verified', 'success');
  });

  test('event 9: the owner marks the car wash done and the driver is told', async () => {
    await owner.tid(`car-wash-done-${bookingId}`).click();
    await expectToast(driver, 'Your car wash service completed', 'success');
    await driver.tid('car-wash-status').filter({ hasText: /done/i }).waitFor();
  });

  test('event 10: the admin assigns an employee and the lot owner is told', async () => {
    await admin.tid('assign-lot').selectOption(String(lot.id));
    await admin.tid('assign-employee-select').selectOption(String(emil.id));
    await admin.tid('assign-button').click();
    await expectToast(owner, `New employee assigned to Lot #${lot.id}: ${EMPLOYEE_NAME}`, 'info');
    await owner.tid(`lot-employee-${lot.id}-${emil.id}`).waitFor();
    shots.owner = await owner.screenshot('owner.png', `New employee assigned to Lot #${lot.id}: ${EMPLOYEE_NAME}`);
  });

  test('event 1: five minutes before the end, one warning (server event and local timer share it)', async () => {
    const text = 'Your booking will expire in 5 minutes!';
    const b = await server.call('GET', `/api/bookings/${bookingId}`, { auth: driver.token });
    const { now } = await server.advanceServerClock(0);
    const toWarning = Math.round((Date.parse(b.end_at) - 5 * 60_000 - Date.parse(now)) / 1000);
    assert.ok(toWarning > 0, `the booking ends after ${now}: ${b.end_at}`);
    await clocks.advance(toWarning);

    await expectToast(driver, text, 'warning');
    // Both sources have had their say: the client got the server's event, and its countdown ticked
    // past 5:00.
    const inbox = await server.call('GET', '/api/inbox?limit=50', { auth: driver.token });
    const expiring = inbox.items.filter((n) => n.event === 'booking_expiring' && n.data.booking_id === bookingId);
    assert.equal(expiring.length, 1, 'the server sent event 1 once');
    assert.equal(expiring[0].message, text);
    await until('the driver client to receive the booking_expiring notification', async () => {
      const seen = await driver.page.evaluate((id) => Number(localStorage.getItem(`parkmate.notify.lastSeen.${id}`)), driver.user.id);
      return seen >= expiring[0].id;
    });
    await until('the countdown to pass 5:00', async () => Number(await driver.tid('countdown').getAttribute('data-left-ms')) <= 5 * 60_000);
    assert.equal(await driver.toastCount(text), 1, 'exactly one warning toast');
  });

  test('events 2 and 5: at the end, the local "expired" and the server\'s expiry', async () => {
    await clocks.advance(5 * 60 + 1);
    await expectToast(driver, 'Your booking has expired. Slot released.', 'info');
    await expectToast(driver, `Your booking for Slot #${washSlot.number} expired`, 'warning');
    await driver.tid('countdown').filter({ hasText: 'Expired' }).waitFor();
    await driver.page.locator('[data-testid="booking-status"][data-status="expired"]').waitFor();
    assert.equal(await driver.toastCount('Your booking has expired. Slot released.'), 1);
    assert.equal(await driver.toastCount(`Your booking for Slot #${washSlot.number} expired`), 1);
  });

  test('event 4: renewal with a declined card fails', async () => {
    await driver.tid('renew-form').waitFor();
    await driver.tid('renew-payment-card').check();
    await driver.tid('renew-test-card-4000000000000002').click();
    await driver.tid('renew-button').click();
    await expectToast(driver, 'Renewal failed: Card declined', 'error');
    await driver.page.locator('[data-testid="renew-result"][data-result="error"]').waitFor();
  });

  test('event 3: renewal with 4242… succeeds', async () => {
    await driver.tid('renew-test-card-4242424242424242').click();
    await driver.tid('renew-duration').fill('60');
    await driver.tid('renew-button').click();
    await expectToast(driver, 'Booking renewed successfully!', 'success');
    await driver.page.locator('[data-testid="booking-status"][data-status="confirmed"]').waitFor();
    shots.driver = await driver.screenshot('driver.png', 'Booking renewed successfully!');
  });

  test('after a reload the countdown agrees with the server clock and nothing toasts again', async () => {
    await driver.page.reload();
    await driver.waitConnected();
    const b = await server.call('GET', `/api/bookings/${bookingId}`, { auth: driver.token });
    const { now } = await server.advanceServerClock(0);
    const expected = Date.parse(b.end_at) - Date.parse(now);
    // hello.server_time sets the offset; the browser's clock keeps running in real time meanwhile.
    await until('the countdown to match the server', async () => {
      const left = Number(await driver.tid('countdown').getAttribute('data-left-ms'));
      return left <= expected && left > expected - 15_000;
    }, WAIT_MS).catch(async (e) => {
      const left = await driver.tid('countdown').getAttribute('data-left-ms');
      throw new Error(`${e.message}; countdown data-left-ms=${left}, server says ${expected} ms left (server now ${now})`);
    });
    assert.deepEqual(await driver.toasts(), [], 'no toast repeats after a reload');
  });

  test('unread badge and inbox: the driver marks all read', async () => {
    const { count } = await server.call('GET', '/api/inbox/unread-count', { auth: driver.token });
    // 6 (twice: the second one refunded), 7, 9, 1, 5, 4, 3
    assert.equal(count, 8);
    await driver.tid('unread-badge').filter({ hasText: String(count) }).waitFor();
    await driver.tid('bell').click();
    await driver.tid('inbox').waitFor();
    const items = driver.page.locator('[data-testid^="inbox-item-"]');
    await until('eight inbox items', async () => (await items.count()) === 8);
    const events = await items.evaluateAll((els) => els.map((e) => e.getAttribute('data-event')));
    assert.deepEqual(
      [...events].sort(),
      ['booking_declined', 'booking_declined', 'booking_expired', 'booking_expiring', 'booking_renewed', 'car_wash_completed', 'cash_payment_verified', 'renewal_failed'],
    );
    assert.equal(await driver.page.locator('[data-testid^="inbox-item-"][data-read="false"]').count(), 8);
    assert.equal(await driver.page.locator('[data-testid^="inbox-refund-"]').count(), 1, 'the refunded decline says so in the inbox');
    await driver.tid('inbox-mark-all').click();
    await driver.tid('unread-badge').waitFor({ state: 'detached' });
    await until('all items read', async () => (await driver.page.locator('[data-testid^="inbox-item-"][data-read="false"]').count()) === 0);
    assert.equal((await server.call('GET', '/api/inbox/unread-count', { auth: driver.token })).count, 0);
    await driver.tid('bell').click(); // close
  });

  test('restart: a notification sent while the client is away shows exactly once', async () => {
    const text = 'Sent while you were away';
    const ctx = driver.context;
    await server.stop();
    await driver.page.locator('[data-testid="connection-status"][data-status="reconnecting"]').waitFor();
    // Hold the driver's timers (its backoff) so it cannot come back before the publish.
    const t = await driver.page.evaluate(() => Date.now());
    await ctx.clock.pauseAt(t + 1000);
    await server.start();
    const { ids } = await server.publish({ user_id: driver.user.id, level: 'confirm', event: 'custom', message: text });
    assert.equal(ids.length, 1);
    assert.notEqual(await driver.connectionStatus(), 'open', 'the driver was still away when it was sent');
    assert.equal(await driver.toastCount(text), 0);

    // Let time flow again, past any backoff: the client reconnects on its own with `since`.
    await ctx.clock.resume();
    await ctx.clock.fastForward(60_000);
    await driver.waitConnected();
    await expectToast(driver, text, 'confirm');
    await driver.tid('unread-badge').filter({ hasText: '1' }).waitFor();

    await driver.tid('bell').click();
    await driver.tid(`inbox-item-${ids[0]}`).waitFor();
    assert.equal(await driver.page.locator('[data-testid^="inbox-item-"]').filter({ hasText: text }).count(), 1, 'once in the inbox');
    assert.equal(await driver.toastCount(text), 1, 'one toast');

    // And a reload does not bring it back.
    await driver.page.reload();
    await driver.waitConnected();
    await driver.tid('unread-badge').filter({ hasText: '1' }).waitFor();
    assert.equal(await driver.toastCount(text), 0, 'no toast after a reload');
  });
  test('event 9 again, from the employee\'s job list', async () => {
    await employee.loginAsDemo(EMPLOYEE);
    await employee.page.waitForURL('**/jobs');
    // Harbour Park's only wash slot is taken, so a wash at Central Garage, where Emil was seeded.
    const lots = await server.call('GET', '/api/lots', { auth: driver.token });
    const central = lots.items.find((l) => l.employees.some((e) => e.id === emil.id) && l.id !== lot.id);
    const slot = central.slots.find((s) => s.car_wash && !s.occupied);
    const b = await server.call(
      'POST',
      '/api/bookings',
      { auth: driver.token, body: { slot_id: slot.id, duration_minutes: 30, car_wash: true, payment_method: 'online', card_number: '4242424242424242' } },
      201,
    );
    // The lot's staff hear of the new job live; the job list refreshes without a reload.
    await expectToast(employee, `New car wash job: booking #${b.id} at ${central.name}, Slot #${slot.number}`, 'info');
    await employee.tid(`car-wash-done-${b.id}`).click();
    await expectToast(employee, `Car wash marked done for booking #${b.id}`, 'success');
    await employee.tid('jobs-done').locator(`[data-testid="booking-row-${b.id}"]`).waitFor();
    shots.employee = await employee.screenshot('employee.png', `Car wash marked done for booking #${b.id}`);
    // The driver's page was reloaded by the restart test, so this document has seen just this one.
    await until('the driver\'s car-wash toast', async () => (await driver.toastCount('Your car wash service completed')) === 1);
    assert.equal((await driver.toasts()).filter((t) => t.text === 'Your car wash service completed')[0].level, 'success');
  });

  test('phone-sized viewport: toasts stay clear of the top bar', async () => {
    const phone = await RolePage.open(browser, server, 'phone', { width: 390, height: 844 });
    try {
      const u = await phone.loginAsDemo(OTHER_DRIVER);
      await server.publish({ user_id: u.id, level: 'warning', message: 'Your booking will expire in 5 minutes!' });
      await expectToast(phone, 'Your booking will expire in 5 minutes!', 'warning');
      shots.phone = await phone.screenshot('driver-phone.png', 'Your booking will expire in 5 minutes!');
      const bar = await phone.page.locator('.topbar').boundingBox();
      const toast = await phone.page.locator('.pm-toast').first().boundingBox();
      assert.ok(toast.y >= bar.y + bar.height, `toast top ${toast.y} below the top bar's bottom ${bar.y + bar.height}`);
      assert.ok(toast.x >= 0 && toast.x + toast.width <= 390, 'toast within the screen');
    } finally {
      await phone.close();
    }
  });
});

