/**
 * Web Push on this device (docs/push.md): the browser's half of a subscription. Turning it on asks
 * for permission, registers the service worker (`/push-sw.js`, scope `/`), subscribes with the
 * server's VAPID key and hands the subscription to the server; turning it off removes it from the
 * server first, then from the browser, so a failure never leaves the server pushing to a browser
 * that thinks it is off.
 *
 * Kept apart from the settings page so the steps read in order and each failure has one name.
 *
 * @packageDocumentation
 */

import { useEffect } from 'react';
import { api, ApiError, type PushSubscriptionBody } from './api';
import { navigate } from './router';

/** The service worker's URL; at the site root so its scope can be `/` (every page). */
export const SERVICE_WORKER_URL = '/push-sw.js';

/** How long the worker may take to activate after registering (it has no install work to do). */
const READY_TIMEOUT_MS = 10_000;

/** What this device's push is, as the settings page shows it. */
export type PushState =
  | { kind: 'checking' }
  /** The browser has no service workers, Push API or notifications (or the page is not secure). */
  | { kind: 'unsupported' }
  /** The server has no VAPID key (404 `push_disabled`). */
  | { kind: 'disabled' }
  /** The person (or the browser's policy) blocked notifications for this site. */
  | { kind: 'denied' }
  | { kind: 'off' }
  | { kind: 'on'; endpoint: string };

export function pushSupported(): boolean {
  return (
    typeof window !== 'undefined' &&
    window.isSecureContext &&
    'serviceWorker' in navigator &&
    'PushManager' in window &&
    'Notification' in window
  );
}

/** Whether an error is the server saying it has push turned off. */
export function isPushDisabled(e: unknown): boolean {
  return e instanceof ApiError && e.status === 404 && e.code === 'push_disabled';
}

/** base64url (as the server sends the VAPID key) to bytes, for `applicationServerKey`. */
export function base64UrlToBytes(text: string): Uint8Array<ArrayBuffer> {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function sameBytes(a: ArrayBuffer | null, b: Uint8Array): boolean {
  if (!a || a.byteLength !== b.length) return false;
  const x = new Uint8Array(a);
  return x.every((v, i) => v === b[i]);
}

/** `PushSubscription.toJSON()` in the shape the server reads (docs/push.md). */
export function subscriptionBody(sub: PushSubscription): PushSubscriptionBody {
  const json = sub.toJSON();
  return {
    endpoint: json.endpoint ?? sub.endpoint,
    expirationTime: json.expirationTime ?? null,
    keys: { p256dh: json.keys?.p256dh ?? '', auth: json.keys?.auth ?? '' },
  };
}

async function existingSubscription(): Promise<PushSubscription | null> {
  const reg = await navigator.serviceWorker.getRegistration('/');
  return (await reg?.pushManager.getSubscription()) ?? null;
}

/** The registration once its worker is active (`pushManager.subscribe` needs an active worker). */
async function activeRegistration(): Promise<ServiceWorkerRegistration> {
  await navigator.serviceWorker.register(SERVICE_WORKER_URL, { scope: '/' });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('The service worker did not start. Reload the page and try again.')), READY_TIMEOUT_MS);
  });
  try {
    return await Promise.race([navigator.serviceWorker.ready, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * This device's state. When it has a subscription it is posted again: the server may have lost it
 * (a new database, a 410 from the push service) or it may belong to whoever signed in here before
 * (the server moves an endpoint to the person who posts it).
 */
export async function currentPushState(): Promise<PushState> {
  if (!pushSupported()) return { kind: 'unsupported' };
  if (Notification.permission === 'denied') return { kind: 'denied' };
  try {
    const sub = Notification.permission === 'granted' ? await existingSubscription() : null;
    if (sub) {
      await api.subscribePush(subscriptionBody(sub));
      return { kind: 'on', endpoint: sub.endpoint };
    }
    await api.vapidPublicKey();
    return { kind: 'off' };
  } catch (e) {
    if (isPushDisabled(e)) return { kind: 'disabled' };
    throw e;
  }
}

/**
 * Turns push on for the signed-in person on this device. Permission is asked first, while the
 * click that asked for it still counts as the person's gesture (some browsers require it).
 */
export async function turnPushOn(): Promise<PushState> {
  if (!pushSupported()) return { kind: 'unsupported' };
  const permission = await Notification.requestPermission();
  if (permission === 'denied') return { kind: 'denied' };
  if (permission !== 'granted') throw new Error('Notifications were not allowed: push stays off. Try again and choose Allow.');
  const { public_key } = await api.vapidPublicKey();
  const key = base64UrlToBytes(public_key);
  const reg = await activeRegistration();
  let sub = await reg.pushManager.getSubscription();
  // A subscription is bound to the key it was made with: after a key change it would never work.
  if (sub && !sameBytes(sub.options.applicationServerKey, key)) {
    await sub.unsubscribe();
    sub = null;
  }
  try {
    sub ??= await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  } catch (e) {
    throw new Error(`The browser could not subscribe to its push service: ${e instanceof Error ? e.message : String(e)}`, {
      cause: e,
    });
  }
  try {
    await api.subscribePush(subscriptionBody(sub));
  } catch (e) {
    // The server does not know it: don't keep a browser subscription nothing will ever push to.
    await sub.unsubscribe().catch(() => false);
    throw e;
  }
  return { kind: 'on', endpoint: sub.endpoint };
}

/** Turns push off on this device: the server forgets the subscription, then the browser does. */
export async function turnPushOff(): Promise<PushState> {
  if (!pushSupported()) return { kind: 'unsupported' };
  const sub = await existingSubscription();
  if (sub) {
    try {
      await api.unsubscribePush(sub.endpoint);
    } catch (e) {
      // 404: the server had already forgotten it (or it was someone else's): nothing to undo there.
      if (!(e instanceof ApiError && e.status === 404)) throw e;
    }
    await sub.unsubscribe();
  }
  return { kind: 'off' };
}

/** How long signing out may wait for the server to forget this device. */
const SIGN_OUT_WAIT_MS = 3000;

/**
 * Signing out: this browser stops receiving the person's pushes (on a shared computer the next
 * person must not see them). Best effort and bounded: the server is asked to forget the
 * subscription, and the browser drops it whatever the answer (a push service then answers the
 * server 404/410, and the server deletes it itself).
 */
export async function forgetPushOnSignOut(): Promise<void> {
  if (!pushSupported() || Notification.permission !== 'granted') return;
  try {
    const sub = await existingSubscription();
    if (!sub) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      api.unsubscribePush(sub.endpoint).catch(() => null),
      new Promise((r) => {
        timer = setTimeout(r, SIGN_OUT_WAIT_MS);
      }),
    ]);
    clearTimeout(timer);
    await sub.unsubscribe();
  } catch {
    // Nothing to undo: signing out goes on.
  }
}

/**
 * A click on a push notification while a Parkmate tab is open: the service worker focuses the tab
 * and asks it to show the notification's page, which the router does without a reload.
 */
export function useServiceWorkerNavigation(): void {
  useEffect(() => {
    if (typeof navigator === 'undefined' || !('serviceWorker' in navigator)) return;
    const container = navigator.serviceWorker;
    const onMessage = (e: MessageEvent) => {
      const msg = e.data as { type?: unknown; url?: unknown } | null;
      // Only our worker's message, and only a path of this site.
      if (msg?.type === 'parkmate.open' && typeof msg.url === 'string' && /^\/(?!\/)/.test(msg.url)) navigate(msg.url);
    };
    container.addEventListener('message', onMessage);
    return () => container.removeEventListener('message', onMessage);
  }, []);
}
