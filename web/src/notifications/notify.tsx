/**
 * Toasts for the five levels of the original front end, built on react-toastify and callable from
 * anywhere (event handlers, the socket hook, plain modules) as long as one <NotificationToaster/> is
 * mounted. Same look as the original: colour, lucide icon and vibration per level, 4 s auto-close,
 * stacked with a limit, never blocking.
 *
 * Dedupe: a toast with a `toastId` (the hook uses the notification id) is shown at most once per page
 * session; with `once: true` at most once ever on this device (remembered in localStorage), which is
 * how the booking countdown and the server's `booking_expiring` event share one warning.
 *
 * @packageDocumentation
 */

import type { ComponentType } from 'react';
import { toast, ToastContainer, type Id, type ToastContainerProps, type TypeOptions } from 'react-toastify';
import { AlertTriangle, CheckCircle, Info, XCircle } from 'lucide-react';
import type { Level } from './protocol';
import { defaultStore, type KeyValueStore } from './resume';
import './notifications.css';

export const AUTO_CLOSE_MS = 4000;
export const TOAST_LIMIT = 5;

interface LevelStyle {
  icon: ComponentType<{ size?: number; 'aria-hidden'?: boolean; className?: string }>;
  iconName: 'CheckCircle' | 'XCircle' | 'AlertTriangle' | 'Info';
  /** navigator.vibrate pattern (ms), or null for none. */
  vibration: number | number[] | null;
  /** react-toastify's type (drives its progress bar colour and aria role). */
  type: TypeOptions;
}

export const LEVEL_STYLES: Record<Level, LevelStyle> = {
  success: { icon: CheckCircle, iconName: 'CheckCircle', vibration: 150, type: 'success' },
  error: { icon: XCircle, iconName: 'XCircle', vibration: [100, 50, 100], type: 'error' },
  warning: { icon: AlertTriangle, iconName: 'AlertTriangle', vibration: 100, type: 'warning' },
  info: { icon: Info, iconName: 'Info', vibration: null, type: 'info' },
  confirm: { icon: CheckCircle, iconName: 'CheckCircle', vibration: [150, 100, 150], type: 'success' },
};

export interface NotifyOptions {
  /** Same id → shown once. The hook passes the notification id. */
  toastId?: string | number;
  /** Remember the toastId across reloads (localStorage) and never show it again on this device. */
  once?: boolean;
  /** Milliseconds, or false to stay until dismissed. Default 4000. */
  autoClose?: number | false;
  /** Skip the vibration even where supported. */
  silent?: boolean;
  /** A second, smaller line under the message (e.g. "Refunded $3.60"); the message stays as sent. */
  detail?: string;
  onClick?: () => void;
}

/** Toast ids shown during this page session; bounded, oldest forgotten first. */
const shownThisSession = new Set<string>();
const SESSION_MEMORY = 500;
let onceStore: KeyValueStore | null = null;

/** For tests and hosts without localStorage. */
export function setNotifyStore(store: KeyValueStore | null): void {
  onceStore = store;
}

/** Forget the in-memory dedupe (tests). */
export function resetNotifyMemory(): void {
  shownThisSession.clear();
}

function onceKey(id: string): string {
  return `parkmate.notify.shown.${id}`;
}

/** Whether a `once` toast with this id was already shown on this device. */
export function wasShownOnce(toastId: string | number): boolean {
  try {
    return (onceStore ?? defaultStore()).getItem(onceKey(String(toastId))) != null;
  } catch {
    return false;
  }
}

function rememberOnce(toastId: string): void {
  try {
    (onceStore ?? defaultStore()).setItem(onceKey(toastId), String(Date.now()));
  } catch {
    // Storage full or disabled: the in-memory dedupe still holds for this session.
  }
}

function vibrate(pattern: number | number[] | null): void {
  if (pattern == null || typeof navigator === 'undefined') return;
  const nav = navigator as Navigator & { vibrate?: (p: number | number[]) => boolean };
  if (typeof nav.vibrate !== 'function') return;
  try {
    nav.vibrate(pattern);
  } catch {
    // Some browsers throw without a user gesture; vibration is decoration.
  }
}

export function ToastBody({ level, message, detail }: { level: Level; message: string; detail?: string }) {
  const style = LEVEL_STYLES[level] ?? LEVEL_STYLES.info;
  const Icon = style.icon;
  return (
    <div className="pm-toast__body" data-level={level} data-testid="toast">
      <span className="pm-toast__icon" data-icon={style.iconName}>
        <Icon size={20} aria-hidden />
      </span>
      <span className="pm-toast__text">
        {/* Rendered as a text node: a message is never interpreted as HTML. */}
        <span className="pm-toast__message">{message}</span>
        {detail && (
          <span className="pm-toast__detail" data-testid="toast-detail">
            {detail}
          </span>
        )}
      </span>
    </div>
  );
}

/** Shows a toast; returns its id, or null when it was a duplicate and nothing was shown. */
export function show(level: Level, message: string, opts: NotifyOptions = {}): Id | null {
  const lvl: Level = LEVEL_STYLES[level] ? level : 'info';
  const text = typeof message === 'string' ? message : String(message);
  const id = opts.toastId != null ? String(opts.toastId) : undefined;
  if (id != null) {
    if (shownThisSession.has(id) || toast.isActive(id)) return null;
    if (opts.once && wasShownOnce(id)) return null;
    shownThisSession.add(id);
    if (shownThisSession.size > SESSION_MEMORY) {
      const oldest = shownThisSession.values().next().value;
      if (oldest !== undefined) shownThisSession.delete(oldest);
    }
    if (opts.once) rememberOnce(id);
  }
  const style = LEVEL_STYLES[lvl];
  if (!opts.silent) vibrate(style.vibration);
  return toast(<ToastBody level={lvl} message={text} detail={opts.detail} />, {
    toastId: id,
    type: style.type,
    icon: false,
    className: `pm-toast pm-toast--${lvl}`,
    autoClose: opts.autoClose ?? AUTO_CLOSE_MS,
    onClick: opts.onClick,
    data: { level: lvl },
  });
}

export const notify = {
  success: (message: string, opts?: NotifyOptions) => show('success', message, opts),
  error: (message: string, opts?: NotifyOptions) => show('error', message, opts),
  warning: (message: string, opts?: NotifyOptions) => show('warning', message, opts),
  info: (message: string, opts?: NotifyOptions) => show('info', message, opts),
  confirm: (message: string, opts?: NotifyOptions) => show('confirm', message, opts),
  show,
  dismiss: (id?: Id) => toast.dismiss(id),
};

/** Mount once near the root of the app. */
export function NotificationToaster(props: Partial<ToastContainerProps>) {
  return (
    <ToastContainer
      position="top-right"
      autoClose={AUTO_CLOSE_MS}
      limit={TOAST_LIMIT}
      newestOnTop
      closeOnClick
      pauseOnFocusLoss={false}
      hideProgressBar={false}
      icon={false}
      {...props}
    />
  );
}

/**
 * One id for "this booking is about to expire", shared by the server's `booking_expiring` event and
 * the local countdown so they never both toast. `end_at` is normalised so two spellings of the same
 * instant (e.g. with or without milliseconds) agree.
 */
export function expiringToastId(bookingId: number | string, endAt: string): string {
  return `expiring-${bookingId}-${normaliseInstant(endAt)}`;
}

export function expiredToastId(bookingId: number | string, endAt: string): string {
  return `expired-${bookingId}-${normaliseInstant(endAt)}`;
}

function normaliseInstant(s: string): string {
  const t = Date.parse(s);
  return Number.isNaN(t) ? s : new Date(t).toISOString();
}
