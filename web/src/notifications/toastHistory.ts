/**
 * What the toasts said, kept after they close. A toast is gone after 4 s; what it said must not be
 * (WCAG 2.2.1): notifications from the server are in the inbox anyway, and every other toast (a
 * confirmation of the user's own action, the booking countdown's "has expired") is remembered here
 * so the host can list it next to the inbox. In memory only, bounded, newest first.
 *
 * @packageDocumentation
 */

import { useSyncExternalStore } from 'react';
import type { Level } from './protocol';

export interface ShownToast {
  /** The toast's id (the caller's `toastId`, or one made up for it). */
  id: string;
  level: Level;
  message: string;
  /** `Date.now()` when it was shown. */
  at: number;
  /** It mirrors a notification the server keeps in the inbox (hosts usually list only the others). */
  inInbox: boolean;
}

/** Enough for a long session of confirmations; older ones are forgotten first. */
export const TOAST_HISTORY_LIMIT = 50;

let history: readonly ShownToast[] = [];
const listeners = new Set<() => void>();

function emit(): void {
  for (const l of listeners) l();
}

export function recordToast(t: ShownToast): void {
  history = [t, ...history].slice(0, TOAST_HISTORY_LIMIT);
  emit();
}

/** Forget every toast shown so far (on sign-out, so the next user does not see them). */
export function clearToastHistory(): void {
  if (history.length === 0) return;
  history = [];
  emit();
}

export function toastHistory(): readonly ShownToast[] {
  return history;
}

export function subscribeToastHistory(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** The toasts shown so far, newest first; re-renders when one is added. */
export function useToastHistory(): readonly ShownToast[] {
  return useSyncExternalStore(subscribeToastHistory, toastHistory, toastHistory);
}
