/**
 * The app's one notification socket, shared through context: the header reads the badge and the
 * connection state; pages refetch when a notification arrives (`useLiveVersion`).
 *
 * @packageDocumentation
 */

import { createContext, useCallback, useContext, useEffect, useLayoutEffect, useRef, useState, type ReactNode } from 'react';
import {
  apiBaseUrl,
  clearToastHistory,
  notify,
  toastOptionsFor,
  useWebSocketNotifications,
  type Notification,
  type UseWebSocketNotificationsResult,
} from '@parkmate/notify';
import { api, type Preferences } from './api';
import { useAuth } from './auth';
import { refundText } from './components';

interface LiveValue extends UseWebSocketNotificationsResult {
  /** Increments on every new notification; pages put it in their effect dependencies. */
  version: number;
  lastNotification: Notification | null;
  /** The server's clock (corrected by the last hello), for countdowns. */
  serverNow: () => number;
  /** Event kinds the person turned in-app notifications off for (`/settings`): no toast, no ack. */
  inAppOff: ReadonlySet<string>;
  /** The settings page saved preferences: apply their in-app choices now, without a reload. */
  preferencesSaved: (p: Pick<Preferences, 'events'>) => void;
}

const LiveContext = createContext<LiveValue | null>(null);

/** What a notification's data says was refunded (events 5 and 6, `booking_lapsed`), if anything. */
export function refundOf(n: Pick<Notification, 'data'>): number | null {
  const cents = n.data?.refund_cents;
  return typeof cents === 'number' && cents > 0 ? cents : null;
}

/**
 * Notifications that only keep a screen current: the owner's `lot_activity` (a change at one of
 * their lots) refreshes the dashboard, like every notification does, but shows no toast: the
 * owner did not ask to be interrupted for each change. They stay in the inbox.
 */
export const SILENT_EVENTS: ReadonlySet<string> = new Set(['lot_activity']);

/**
 * The app's toast for a notification: the message exactly as sent, plus a "Refunded $X.XX" line
 * when the booking's money was given back; none for {@link SILENT_EVENTS}, nor for the kinds in
 * `inAppOff` (the person's in-app preference, docs/push.md). Answers whether a toast was shown:
 * `false` tells the notification client not to `ack` it, so the server may still push it.
 */
export function toastNotification(n: Notification, inAppOff: ReadonlySet<string> = NONE): boolean {
  if (SILENT_EVENTS.has(n.event) || inAppOff.has(n.event)) return false;
  const refund = refundOf(n);
  notify.show(n.level, n.message, { ...toastOptionsFor(n), detail: refund == null ? undefined : refundText(refund) });
  return true;
}

const NONE: ReadonlySet<string> = new Set();

/** The kinds a person's preferences turn in-app notifications off for. */
export function inAppOffKinds(p: Pick<Preferences, 'events'>): ReadonlySet<string> {
  return new Set(p.events.filter((e) => !e.in_app).map((e) => e.event));
}

/**
 * The signed-in person's in-app choices, loaded at sign-in and again whenever the tab comes back
 * to the front (another tab's settings page may have changed them). Until the first answer, and
 * when it fails, every kind is shown: a missed toast is worse than an unwanted one.
 */
function useInAppOff(token: string | null) {
  const [loaded, setLoaded] = useState<{ token: string | null; off: ReadonlySet<string> }>({ token: null, off: NONE });
  useEffect(() => {
    if (!token) return;
    let cancelled = false;
    const load = () => {
      api.preferences().then(
        (p) => {
          if (!cancelled) setLoaded({ token, off: inAppOffKinds(p) });
        },
        () => {},
      );
    };
    load();
    const onVisible = () => {
      if (document.visibilityState === 'visible') load();
    };
    document.addEventListener('visibilitychange', onVisible);
    return () => {
      cancelled = true;
      document.removeEventListener('visibilitychange', onVisible);
    };
  }, [token]);
  const saved = useCallback((p: Pick<Preferences, 'events'>) => setLoaded({ token, off: inAppOffKinds(p) }), [token]);
  // Another person's choices never apply: a sign-out or a new token starts from "show all".
  return { off: loaded.token === token ? loaded.off : NONE, saved };
}

export function LiveProvider({ children }: { children: ReactNode }) {
  const { user, token, logout } = useAuth();
  const [version, setVersion] = useState(0);
  const [lastNotification, setLast] = useState<Notification | null>(null);

  const checkAuth = useCallback(async () => {
    // Not through api.ts: a 401 here is an answer, not an event that should sign out twice.
    const res = await fetch(`${apiBaseUrl()}/me`, { headers: { Authorization: `Bearer ${token}` } });
    if (res.status === 401) return false;
    if (!res.ok) throw new Error(`GET /me ${res.status}`);
    return true;
  }, [token]);

  // The inbox lists this session's toasts too: a new user starts with none.
  const userId = user?.id ?? null;
  useEffect(() => {
    if (userId == null) clearToastHistory();
  }, [userId]);

  const inApp = useInAppOff(token);
  // Read by the toaster at each notification, so a changed preference needs no reconnect.
  const inAppOffRef = useRef(inApp.off);
  useLayoutEffect(() => {
    inAppOffRef.current = inApp.off;
  }, [inApp.off]);

  const live = useWebSocketNotifications(user?.id ?? null, {
    token,
    checkAuth,
    onUnauthorized: () => logout('Your session has expired. Please sign in again.'),
    onNotification: (n) => {
      setLast(n);
      setVersion((v) => v + 1);
    },
    toast: (n) => toastNotification(n, inAppOffRef.current),
  });

  // A stable serverNow (countdown effects depend on it) that still reads the latest offset.
  const offsetRef = useRef(live.serverOffsetMs);
  useLayoutEffect(() => {
    offsetRef.current = live.serverOffsetMs;
  }, [live.serverOffsetMs]);
  const serverNow = useCallback(() => Date.now() + offsetRef.current, []);

  return (
    <LiveContext.Provider value={{ ...live, version, lastNotification, serverNow, inAppOff: inApp.off, preferencesSaved: inApp.saved }}>
      {children}
    </LiveContext.Provider>
  );
}

export function useLive(): LiveValue {
  const v = useContext(LiveContext);
  if (!v) throw new Error('useLive outside LiveProvider');
  return v;
}

/**
 * Loads data and reloads it whenever a notification arrives (and on `reload()`).
 * Keeps the previous data while reloading so lists do not flicker.
 */
export function useLiveData<T>(load: () => Promise<T>, deps: unknown[] = []) {
  const { version } = useLive();
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [nonce, setNonce] = useState(0);
  // The latest `load` without making it a dependency: callers pass a new arrow on every render.
  const loadRef = useRef(load);
  useLayoutEffect(() => {
    loadRef.current = load;
  });

  // Loading again whenever what triggers a load changes, set while rendering (React's pattern for
  // state that follows props) rather than in the effect, which would cost a second render.
  const trigger = [version, nonce, ...deps];
  const [lastTrigger, setLastTrigger] = useState(trigger);
  if (!sameValues(trigger, lastTrigger)) {
    setLastTrigger(trigger);
    setLoading(true);
  }

  useEffect(() => {
    let cancelled = false;
    loadRef
      .current()
      .then((d) => {
        if (!cancelled) {
          setData(d);
          setError(null);
        }
      })
      .catch((e: unknown) => {
        if (!cancelled) setError(e instanceof Error ? e.message : String(e));
      })
      .finally(() => {
        if (!cancelled) setLoading(false);
      });
    return () => {
      cancelled = true;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [version, nonce, ...deps]);

  const reload = useCallback(() => setNonce((n) => n + 1), []);
  return { data, error, loading, reload, setData };
}

function sameValues(a: readonly unknown[], b: readonly unknown[]): boolean {
  return a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
}
