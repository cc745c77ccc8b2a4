/**
 * The booking countdown's two local events (the original front end's events 1 and 2), as a pure
 * function of "time left" so it is testable and behaves the same after a reload.
 *
 * - Event 1 (warning) when `0 < left ≤ 5:00`, once per booking window (booking id + end_at). The server
 *   sends the same event as `booking_expiring`; both use expiringToastId(), so only one toast shows.
 * - Event 2 (info) when left ≤ 0, once per window, but only within EXPIRED_GRACE_MS of the end, so
 *   opening an old booking does not announce an expiry that happened long ago.
 *
 * @packageDocumentation
 */

import { expiredToastId, expiringToastId, notify } from '@parkmate/notify';
import type { BookingStatus } from './api';

export const WARN_BEFORE_MS = 5 * 60 * 1000;
export const EXPIRED_GRACE_MS = 15 * 60 * 1000;
export const EXPIRING_MESSAGE = 'Your booking will expire in 5 minutes!';
export const EXPIRED_MESSAGE = 'Your booking has expired. Slot released.';

export type TimerAlert = 'expiring' | 'expired' | null;

export function timerAlert(leftMs: number, status: BookingStatus): TimerAlert {
  // Ended by an admin or by the request hold: no countdown events for a slot never granted.
  if (status === 'declined' || status === 'lapsed') return null;
  if (leftMs > 0) {
    if (status === 'expired') return null;
    return leftMs <= WARN_BEFORE_MS ? 'expiring' : null;
  }
  return -leftMs <= EXPIRED_GRACE_MS ? 'expired' : null;
}

/** Fires the alert for this moment, at most once per booking window on this device. */
export function fireTimerAlert(bookingId: number, endAt: string, leftMs: number, status: BookingStatus): TimerAlert {
  const alert = timerAlert(leftMs, status);
  // The server sends the same warning (booking_expiring) and keeps it in the inbox.
  if (alert === 'expiring') notify.warning(EXPIRING_MESSAGE, { toastId: expiringToastId(bookingId, endAt), once: true, inInbox: true });
  if (alert === 'expired') notify.info(EXPIRED_MESSAGE, { toastId: expiredToastId(bookingId, endAt), once: true });
  return alert;
}
