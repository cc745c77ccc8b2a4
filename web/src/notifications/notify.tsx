/**
 * Toasts for the five levels of the original front end, built on react-toastify and callable from
 * anywhere (event handlers, the socket hook, plain modules) as long as one <NotificationToaster/> is
 * mounted. Same look as the original: colour, lucide icon and vibration per level, 4 s auto-close for
 * success and info, stacked with a limit, never blocking. Readable by everyone (WCAG 2.1 AA): every
 * gradient keeps its text at 4.5:1 or more; warnings stay 10 s and errors until dismissed; a toast
 * pauses while hovered or focused and Escape dismisses it (toastFocus.ts); each one is recorded
 * (toastHistory.ts) so nothing it said is lost when it closes, and the host can say where to find it
 * (`hint`). Toasts are announced: `role="alert"` inside react-toastify's `aria-live` region.
 *
 * Dedupe: a toast with a `toastId` (the hook uses the notification id) is shown at most once per page
 * session; with `once: true` at most once ever on this device (remembered in localStorage), which is
 * how the booking countdown and the server's `booking_expiring` event share one warning.
 *
 * @packageDocumentation
 */

import { createContext, useContext, useEffect, useRef, type ComponentType, type RefObject } from 'react';
import { toast, ToastContainer, type Id, type ToastContainerProps, type TypeOptions } from 'react-toastify';
import { AlertTriangle, CheckCircle, Info, XCircle } from 'lucide-react';
import type { Level } from './protocol';
import { defaultStore, type KeyValueStore } from './resume';
import { useToastKeyboard } from './toastFocus';
import { recordToast } from './toastHistory';
import './notifications.css';

/** Success, confirm and info close after this long (the original's 4 s). */
export const AUTO_CLOSE_MS = 4000;
/** Warnings ask for attention: they stay longer. */
export const WARNING_AUTO_CLOSE_MS = 10_000;
export const TOAST_LIMIT = 5;

interface LevelStyle {
  icon: ComponentType<{ size?: number; 'aria-hidden'?: boolean; className?: string }>;
  iconName: 'CheckCircle' | 'XCircle' | 'AlertTriangle' | 'Info';
  /** navigator.vibrate pattern (ms), or null for none. */
  vibration: number | number[] | null;
  /** react-toastify's type (drives its progress bar colour and aria role). */
  type: TypeOptions;
  /** Milliseconds on screen, or false: until dismissed (an error needs the user; WCAG 2.2.1). */
  autoClose: number | false;
}

export const LEVEL_STYLES: Record<Level, LevelStyle> = {
  success: { icon: CheckCircle, iconName: 'CheckCircle', vibration: 150, type: 'success', autoClose: AUTO_CLOSE_MS },
  error: { icon: XCircle, iconName: 'XCircle', vibration: [100, 50, 100], type: 'error', autoClose: false },
  warning: { icon: AlertTriangle, iconName: 'AlertTriangle', vibration: 100, type: 'warning', autoClose: WARNING_AUTO_CLOSE_MS },
  info: { icon: Info, iconName: 'Info', vibration: null, type: 'info', autoClose: AUTO_CLOSE_MS },
  confirm: { icon: CheckCircle, iconName: 'CheckCircle', vibration: [150, 100, 150], type: 'success', autoClose: AUTO_CLOSE_MS },
};

export interface NotifyOptions {
  /** Same id → shown once. The hook passes the notification id. */
  toastId?: string | number;
  /** Remember the toastId across reloads (localStorage) and never show it again on this device. */
  once?: boolean;
  /** Milliseconds, or false to stay until dismissed. Default: the level's (LEVEL_STYLES). */
  autoClose?: number | false;
  /** Skip the vibration even where supported. */
  silent?: boolean;
  /**
   * The toast repeats a notification the server keeps in the inbox (the hook sets it), so a host
   * listing the toast history next to the inbox can leave it out.
   */
  inInbox?: boolean;
  /** A second, smaller line under the message (e.g. "Refunded $3.60"); the message stays as sent. */
  detail?: string;
  onClick?: () => void;
}

/** Toast ids shown during this page session; bounded, oldest forgotten first. */
const shownThisSession = new Set<string>();
const SESSION_MEMORY = 500;
/** Ids for toasts shown without one: toastFocus.ts pauses and dismisses toasts by their element id. */
let anonymous = 0;
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

/** The toaster's `hint`, read by every toast it renders. */
const HintContext = createContext<string | null>(null);

export function ToastBody({ level, message, detail }: { level: Level; message: string; detail?: string }) {
  const style = LEVEL_STYLES[level] ?? LEVEL_STYLES.info;
  const Icon = style.icon;
  const hint = useContext(HintContext);
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
        <span className="pm-toast__hint">
          {hint}
          {/* Shown while focus is in the toast (notifications.css), read with it then. */}
          <span className="pm-toast__keys">{hint ? ' · ' : ''}Esc to close</span>
        </span>
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
  const toastId = id ?? `toast-${++anonymous}`;
  recordToast({ id: toastId, level: lvl, message: text, at: Date.now(), inInbox: opts.inInbox ?? false });
  return toast(<ToastBody level={lvl} message={text} detail={opts.detail} />, {
    toastId,
    type: style.type,
    icon: false,
    className: `pm-toast pm-toast--${lvl}`,
    autoClose: opts.autoClose ?? style.autoClose,
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

export interface NotificationToasterProps extends Partial<ToastContainerProps> {
  /**
   * A line under every message, e.g. where the toast can be read again once it has closed
   * ("Also in your inbox"). WCAG 2.2.1: a toast that closes by itself must not take its text along.
   */
  hint?: string;
  /** Where focus goes when the toast holding it closes and it has nowhere better to go. */
  focusFallback?: () => HTMLElement | null;
  /**
   * Called with the stack's box whenever it moves or changes size, and null when no toast is
   * showing, so the host can keep its own panels clear of it.
   */
  onStackBox?: (box: DOMRectReadOnly | null) => void;
}

/**
 * Mount once near the root of the app. Where it sits in the DOM is where the toasts are in the Tab
 * order: right after the header keeps them a Tab or two from the bell (Alt+T also gets there).
 */
export function NotificationToaster({ hint, focusFallback, onStackBox, ...props }: NotificationToasterProps) {
  const root = useRef<HTMLDivElement>(null);
  useToastKeyboard(root, focusFallback);
  useStackBox(root, onStackBox);
  return (
    <HintContext.Provider value={hint ?? null}>
      <div ref={root} className="pm-toaster">
        <ToastContainer
          position="top-right"
          autoClose={AUTO_CLOSE_MS}
          limit={TOAST_LIMIT}
          newestOnTop
          closeOnClick
          // toastFocus.ts pauses on hover *and* focus; react-toastify's own hover pause would fight it.
          pauseOnHover={false}
          pauseOnFocusLoss={false}
          hideProgressBar={false}
          icon={false}
          aria-label="Notifications (Alt+T)"
          {...props}
        />
      </div>
    </HintContext.Provider>
  );
}

/** Reports the toast stack's box (the union of react-toastify's containers) to `onBox`. */
function useStackBox(root: RefObject<HTMLElement | null>, onBox?: (box: DOMRectReadOnly | null) => void) {
  const onBoxRef = useRef(onBox);
  useEffect(() => {
    onBoxRef.current = onBox;
  });
  const wanted = onBox != null;
  useEffect(() => {
    const el = root.current;
    if (!el || !wanted || typeof ResizeObserver === 'undefined') return;
    let last = '';
    const report = () => {
      const boxes = [...el.querySelectorAll('.Toastify__toast-container')].map((c) => c.getBoundingClientRect()).filter((r) => r.height > 0);
      const box =
        boxes.length === 0
          ? null
          : boxes.reduce((a, b) => {
              const left = Math.min(a.left, b.left);
              const top = Math.min(a.top, b.top);
              return new DOMRect(left, top, Math.max(a.right, b.right) - left, Math.max(a.bottom, b.bottom) - top);
            });
      const key = box ? `${box.left},${box.top},${box.width},${box.height}` : 'none';
      if (key === last) return;
      last = key;
      onBoxRef.current?.(box);
    };
    const sizes = new ResizeObserver(report);
    const watch = () => {
      sizes.disconnect();
      el.querySelectorAll('.Toastify__toast-container').forEach((c) => sizes.observe(c));
      report();
    };
    // Containers come and go with their toasts.
    const tree = new MutationObserver(watch);
    tree.observe(el, { childList: true, subtree: true });
    window.addEventListener('resize', report);
    watch();
    return () => {
      tree.disconnect();
      sizes.disconnect();
      window.removeEventListener('resize', report);
      onBoxRef.current?.(null);
    };
  }, [root, wanted]);
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
