// Parkmate's service worker: shows the Web Push messages the server sends when no open tab
// acknowledged a notification (docs/push.md), and opens the app where a click should land.
//
// Served from the site root (web/public → dist/ → `/push-sw.js`) so its scope is `/`: a worker's
// scope cannot be wider than its own path, and a click must be able to reach every page. Plain
// JavaScript, no build step and no imports: the browser loads this file as it is, and a worker
// that fails to evaluate would silently drop every push.
//
// It has no `fetch` handler on purpose: the app is not cached offline, so the network stays the
// only source of pages and a new deploy is never hidden behind a stale worker.

/* Toasts' levels (src/notifications/protocol.ts); an unknown one is shown as `info`. */
const LEVELS = ['success', 'error', 'warning', 'info', 'confirm'];

/** Vibration per level, the toasts' own (LEVEL_STYLES in src/notifications/notify.tsx). */
const VIBRATION = { success: [150], error: [100, 50, 100], warning: [100], info: [], confirm: [150, 100, 150] };

// A new version takes over at once rather than after every tab closed: it only shows
// notifications, so there is no page state an old and a new worker could disagree on.
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

/**
 * The push message is the notification as the socket sends it (`id`, `level`, `event`, `message`,
 * `data`, `created_at`; `"truncated": true` when the server had to shorten it to fit one record).
 */
function parse(event) {
  try {
    const n = event.data ? event.data.json() : null;
    if (n && typeof n === 'object' && typeof n.message === 'string') return n;
  } catch {
    // Not JSON: still show something, since the browser requires a visible notification per push.
  }
  return { id: null, level: 'info', event: 'unknown', message: 'You have a new notification.', data: {} };
}

/** Where a click should land: the booking the notification is about, else the home page. */
function targetUrl(n) {
  const booking = n.data && n.data.booking_id;
  // Only a number: anything else could make the URL point somewhere we did not mean.
  if (typeof booking === 'number' && Number.isInteger(booking) && booking > 0) return `/bookings/${booking}`;
  return '/';
}

self.addEventListener('push', (event) => {
  const n = parse(event);
  const level = LEVELS.includes(n.level) ? n.level : 'info';
  const created = Date.parse(n.created_at);
  const options = {
    body: n.truncated ? `${n.message}\nOpen Parkmate to read all of it.` : n.message,
    icon: `/push-icons/${level}.png`,
    // The notification id: a repeat of the same notification replaces the first, never stacks.
    tag: n.id != null ? String(n.id) : `parkmate-${Date.now()}`,
    timestamp: Number.isNaN(created) ? Date.now() : created,
    vibrate: VIBRATION[level],
    // Errors stay until dismissed, like their toasts (WCAG 2.2.1).
    requireInteraction: level === 'error',
    data: { id: n.id, event: n.event, url: targetUrl(n) },
  };
  event.waitUntil(self.registration.showNotification('Parkmate', options));
});

/**
 * Shows `url` (a path of this site): in an open Parkmate tab when there is one, else in a new
 * window. Answers which it did. A function of its own so the end-to-end test can call it: no
 * browser automation can click a system notification.
 */
async function openFromNotification(url) {
  const tabs = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const tab = tabs.find((c) => new URL(c.url).origin === self.location.origin);
  if (tab) {
    // Its router goes to the page: the socket, the toasts and the signed-in state stay, where a
    // reload would drop them. Asked before focusing, which only a real click may do.
    tab.postMessage({ type: 'parkmate.open', url });
    await tab.focus().catch(() => {});
    return 'tab';
  }
  await self.clients.openWindow(url);
  return 'window';
}

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const url = (event.notification.data && event.notification.data.url) || '/';
  event.waitUntil(openFromNotification(url));
});
