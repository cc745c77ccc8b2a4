//! The connection state machine behind `useWebSocketNotifications`, free of React so it can be driven
//! by a fake WebSocket and fake timers in tests. One instance = one user's socket for the lifetime of a
//! mount; `stop()` ends it for good.
//!
//! Lifecycle: connect → (hello, replay…, replayed, live…) → close → decide by close code
//! (reconnect.ts) → back off (or ask `checkAuth` first when the socket never opened) → connect with
//! `since` = the last id seen. `online` and `visibilitychange` short-cut the backoff.

import { notificationSocketUrl, socketProtocols } from './config';
import { parseServerFrame, type ClientFrame, type Notification } from './protocol';
import {
  backoffDelay,
  CLOSE,
  decideClose,
  DEFAULT_BACKOFF,
  nextAttempt,
  type BackoffOptions,
} from './reconnect';
import { defaultStore, loadLastSeen, saveLastSeen, SeenIds, type KeyValueStore } from './resume';
import { expiringToastId, show, type NotifyOptions } from './notify';

export type ConnectionStatus = 'connecting' | 'open' | 'reconnecting' | 'offline' | 'unauthorized';

/** The part of the browser WebSocket interface this client uses (so tests can pass a fake). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: Event) => unknown) | null;
  onmessage: ((ev: MessageEvent) => unknown) | null;
  onclose: ((ev: CloseEvent) => unknown) | null;
  onerror: ((ev: Event) => unknown) | null;
}
export type WebSocketCtor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface DeliveryInfo {
  /** True for notifications the server replayed after a reconnect/reload (`since`). */
  replayed: boolean;
}

export interface NotificationClientOptions {
  /** The signed-in user's JWT; offered as the `bearer.<jwt>` sub-protocol, never put in the URL. */
  token: string;
  /** e.g. `ws://127.0.0.1:8000`; see config.ts for the default. */
  wsBase: string;
  /** e.g. `/api`; used by markRead/markAllRead. */
  apiBase: string;
  /**
   * Called after a socket closed before opening (how browsers show a 401/403 handshake refusal).
   * Resolve true when the token is still good (then retry), false when it is not (→ 'unauthorized').
   * A rejection (network down) means "don't know" and retries.
   */
  checkAuth?: () => Promise<boolean>;
  /** The token is no longer accepted (close 4001, or checkAuth said so): send the user to log in. */
  onUnauthorized?: (reason: 'token_expired' | 'handshake_refused') => void;
  /** Every new notification, once (deduplicated by id). */
  onNotification?: (n: Notification, info: DeliveryInfo) => void;
  /** `true` (default) toasts with notify; `false` never; a function replaces the default toaster. */
  toast?: boolean | ((n: Notification, info: DeliveryInfo) => void);
  /** After a replay, toast at most this many (the newest) plus one summary toast. Default 3. */
  maxReplayToasts?: number;
  /** In-memory list length (newest first). Default 50. */
  maxNotifications?: number;
  backoff?: Partial<BackoffOptions>;
  random?: () => number;
  storage?: KeyValueStore;
  WebSocketImpl?: WebSocketCtor;
  fetchImpl?: typeof fetch;
}

export interface NotificationState {
  status: ConnectionStatus;
  /** Whole seconds until the next attempt while 'reconnecting', else null. */
  retryInSeconds: number | null;
  unreadCount: number;
  /** Newest first; this session's live and replayed notifications. */
  notifications: Notification[];
  /** server_time − local time at the last hello, for countdowns that must agree with the server. */
  serverOffsetMs: number;
  /** Why the socket is not connected, for display (e.g. "client error 4009"). */
  lastError: string | null;
}

export const INITIAL_STATE: NotificationState = {
  status: 'connecting',
  retryInSeconds: null,
  unreadCount: 0,
  notifications: [],
  serverOffsetMs: 0,
  lastError: null,
};

const OPEN = 1;

/** The toast options for a notification: its id, except the expiry warning shared with the timer. */
export function toastOptionsFor(n: Notification): NotifyOptions {
  const bookingId = n.data.booking_id;
  const endAt = n.data.end_at;
  if (n.event === 'booking_expiring' && bookingId != null && typeof endAt === 'string') {
    return { toastId: expiringToastId(bookingId as number | string, endAt), once: true };
  }
  return { toastId: `notification-${n.id}` };
}

export class NotificationClient {
  private state: NotificationState = INITIAL_STATE;
  private ws: WebSocketLike | null = null;
  private stopped = false;
  /** Set by 4009 / unauthorized: no automatic reconnect until the app does something. */
  private terminal = false;
  private attempt = -1;
  private readonly seen: SeenIds;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private tickTimer: ReturnType<typeof setInterval> | null = null;
  private heartbeatTimer: ReturnType<typeof setInterval> | null = null;
  private replayFlushTimer: ReturnType<typeof setTimeout> | null = null;
  private retryAt = 0;
  /** Notifications replayed since `hello`, toasted together when `replayed` arrives. */
  private replayBuffer: Notification[] | null = null;
  private lastHeardAt = 0;
  private pingSentAt = 0;

  constructor(
    private readonly userId: number | string,
    private readonly opts: () => NotificationClientOptions,
    private readonly listener: (s: NotificationState) => void,
  ) {
    this.seen = new SeenIds(loadLastSeen(userId, this.store()));
  }

  get snapshot(): NotificationState {
    return this.state;
  }

  /** The id that will be sent as `since`. */
  get lastSeenId(): number | null {
    return this.seen.lastId;
  }

  start(): void {
    if (typeof window !== 'undefined') {
      window.addEventListener('online', this.onOnline);
      window.addEventListener('offline', this.onOffline);
      document.addEventListener('visibilitychange', this.onVisibility);
    }
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.clearTimers();
    if (typeof window !== 'undefined') {
      window.removeEventListener('online', this.onOnline);
      window.removeEventListener('offline', this.onOffline);
      document.removeEventListener('visibilitychange', this.onVisibility);
    }
    this.dropSocket(CLOSE.NORMAL, 'client stopped');
  }

  /** Connect now, skipping any pending backoff (not after a terminal close). */
  reconnectNow(resetBackoff = false): void {
    if (this.stopped || this.terminal) return;
    if (this.ws && this.ws.readyState <= OPEN) return;
    if (resetBackoff) this.attempt = -1;
    this.connect();
  }

  // ---- socket lifecycle -------------------------------------------------------------------------

  private connect(): void {
    if (this.stopped) return;
    this.clearRetry();
    if (typeof navigator !== 'undefined' && navigator.onLine === false) {
      this.update({ status: 'offline', retryInSeconds: null });
      return; // the `online` event brings us back
    }
    const o = this.opts();
    const since = this.seen.lastId;
    const url = notificationSocketUrl(o.wsBase, this.userId, since);
    const Ctor = o.WebSocketImpl ?? (globalThis.WebSocket as unknown as WebSocketCtor);
    let ws: WebSocketLike;
    try {
      ws = new Ctor(url, socketProtocols(o.token));
    } catch (e) {
      this.update({ lastError: String(e) });
      this.scheduleRetry(null);
      return;
    }
    this.ws = ws;
    let openedAt: number | null = null;
    const s = this.state.status;
    this.update({ status: s === 'reconnecting' || s === 'offline' ? 'reconnecting' : 'connecting', retryInSeconds: null });

    ws.onopen = () => {
      openedAt = Date.now();
      this.lastHeardAt = openedAt;
      this.pingSentAt = 0;
      this.update({ status: 'open', retryInSeconds: null, lastError: null });
    };
    ws.onmessage = (ev) => {
      this.lastHeardAt = Date.now();
      this.onFrame(ev.data, since);
    };
    ws.onerror = () => {
      // A close event always follows; the decision is made there.
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.detach(ws);
      this.ws = null;
      this.afterClose(ev.code, openedAt);
    };
  }

  private afterClose(code: number, openedAt: number | null): void {
    this.stopHeartbeat();
    this.flushReplay();
    if (this.stopped) return;
    const opened = openedAt != null;
    const openFor = opened ? Date.now() - openedAt : null;
    const decision = decideClose(code, opened);
    switch (decision) {
      case 'unauthorized':
        this.becomeUnauthorized('token_expired');
        return;
      case 'stop':
        this.terminal = true;
        this.update({ status: 'offline', retryInSeconds: null, lastError: `closed by server (${code})` });
        return;
      case 'check-auth': {
        const check = this.opts().checkAuth;
        if (!check) {
          this.scheduleRetry(openFor);
          return;
        }
        // Show the backoff we are about to take while the check runs.
        this.update({ status: 'reconnecting' });
        check().then(
          (ok) => {
            if (this.stopped) return;
            if (ok) this.scheduleRetry(openFor);
            else this.becomeUnauthorized('handshake_refused');
          },
          () => {
            if (!this.stopped) this.scheduleRetry(openFor);
          },
        );
        return;
      }
      case 'retry':
        this.update({ lastError: code === CLOSE.NORMAL ? null : `connection closed (${code})` });
        this.scheduleRetry(openFor);
        return;
    }
  }

  private becomeUnauthorized(reason: 'token_expired' | 'handshake_refused'): void {
    this.terminal = true;
    this.clearTimers();
    this.update({ status: 'unauthorized', retryInSeconds: null, lastError: reason });
    try {
      this.opts().onUnauthorized?.(reason);
    } catch (e) {
      console.error('onUnauthorized threw', e);
    }
  }

  private scheduleRetry(openFor: number | null): void {
    if (this.stopped || this.terminal) return;
    if (typeof navigator !== 'undefined' && navigator.onLine === false) {
      this.update({ status: 'offline', retryInSeconds: null });
      return;
    }
    const backoff = { ...DEFAULT_BACKOFF, ...this.opts().backoff };
    this.attempt = nextAttempt(this.attempt, openFor, backoff);
    const delay = backoffDelay(this.attempt, this.opts().random, backoff);
    this.clearRetry();
    this.retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
    this.tickTimer = setInterval(() => this.tick(), 1000);
    this.update({ status: 'reconnecting', retryInSeconds: Math.ceil(delay / 1000) });
  }

  private tick(): void {
    const left = Math.max(0, Math.ceil((this.retryAt - Date.now()) / 1000));
    if (left !== this.state.retryInSeconds) this.update({ retryInSeconds: left });
  }

  // ---- frames -----------------------------------------------------------------------------------

  private onFrame(raw: unknown, since: number | null): void {
    const frame = parseServerFrame(raw);
    if (!frame) {
      console.warn('parkmate-notify: ignoring an unknown frame');
      return;
    }
    switch (frame.type) {
      case 'hello': {
        const serverNow = Date.parse(frame.server_time);
        this.update({
          unreadCount: frame.unread_count,
          serverOffsetMs: Number.isNaN(serverNow) ? 0 : serverNow - Date.now(),
        });
        this.startHeartbeat(frame.heartbeat_ms);
        if (since != null) {
          this.replayBuffer = [];
          // If a server ever forgets `replayed`, do not hold the toasts back forever.
          this.replayFlushTimer = setTimeout(() => this.flushReplay(), 5000);
        }
        return;
      }
      case 'notification': {
        const { type: _type, ...n } = frame;
        this.deliver({ ...n, read: false });
        return;
      }
      case 'replayed':
        this.flushReplay();
        return;
      case 'unread_count':
        this.update({ unreadCount: frame.count });
        return;
      case 'pong':
        return;
      case 'error':
        console.warn(`parkmate-notify: server error frame ${frame.code}: ${frame.message}`);
        return;
    }
  }

  private deliver(n: Notification): void {
    if (!this.seen.add(n.id)) return; // a replay overlap or a duplicate: never twice
    saveLastSeen(this.userId, n.id, this.store());
    const max = this.opts().maxNotifications ?? 50;
    this.update({ notifications: [n, ...this.state.notifications].slice(0, max) });
    const replayed = this.replayBuffer != null;
    try {
      this.opts().onNotification?.(n, { replayed });
    } catch (e) {
      console.error('onNotification threw', e);
    }
    if (this.replayBuffer) this.replayBuffer.push(n);
    else this.toast(n, { replayed: false });
  }

  private flushReplay(): void {
    if (this.replayFlushTimer) clearTimeout(this.replayFlushTimer);
    this.replayFlushTimer = null;
    const buffered = this.replayBuffer;
    this.replayBuffer = null;
    if (!buffered || buffered.length === 0) return;
    const limit = Math.max(0, this.opts().maxReplayToasts ?? 3);
    const shown = buffered.slice(-limit);
    const hidden = buffered.length - shown.length;
    if (hidden > 0) {
      const last = buffered[buffered.length - 1];
      show('info', `${hidden} more notification${hidden === 1 ? '' : 's'} while you were away: see the inbox.`, {
        toastId: `replay-summary-${last.id}`,
      });
    }
    for (const n of shown) this.toast(n, { replayed: true });
  }

  private toast(n: Notification, info: DeliveryInfo): void {
    const t = this.opts().toast ?? true;
    if (t === false) return;
    if (typeof t === 'function') t(n, info);
    else show(n.level, n.message, toastOptionsFor(n));
  }

  // ---- liveness ---------------------------------------------------------------------------------

  /**
   * Browsers answer the server's pings without telling JavaScript, so a dead path (laptop lid, NAT
   * timeout) is only noticed by asking: send an application `ping` every heartbeat; if the previous
   * one got no frame at all back within a heartbeat, the socket is dead. Measured from the ping, not
   * the wall clock, so throttled background-tab timers cause no false alarms.
   */
  private startHeartbeat(heartbeatMs: number): void {
    this.stopHeartbeat();
    const every = Math.max(1000, Number(heartbeatMs) || 20_000);
    this.heartbeatTimer = setInterval(() => this.heartbeat(every), every);
  }

  private heartbeat(every: number): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return;
    const now = Date.now();
    if (this.pingSentAt > 0 && this.lastHeardAt < this.pingSentAt && now - this.pingSentAt >= every) {
      this.detach(ws);
      this.ws = null;
      try {
        ws.close(CLOSE.CLIENT_LIVENESS, 'no pong');
      } catch {
        /* already closing */
      }
      this.afterClose(CLOSE.GOING_AWAY, now - every); // it was open: plain retry
      return;
    }
    this.send({ type: 'ping' });
    this.pingSentAt = now;
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  private send(frame: ClientFrame): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  // ---- read state (HTTP: an answer with the new count, and works while the socket is down) -------

  async markRead(id: number): Promise<void> {
    const body = await this.post(`/inbox/${encodeURIComponent(String(id))}/read`);
    this.update({
      unreadCount: typeof body.unread_count === 'number' ? body.unread_count : this.state.unreadCount,
      notifications: this.state.notifications.map((n) => (n.id === id ? { ...n, read: true } : n)),
    });
  }

  async markAllRead(): Promise<void> {
    const body = await this.post('/inbox/read-all');
    this.update({
      unreadCount: typeof body.unread_count === 'number' ? body.unread_count : 0,
      notifications: this.state.notifications.map((n) => ({ ...n, read: true })),
    });
  }

  private async post(path: string): Promise<{ unread_count?: number }> {
    const o = this.opts();
    const f = o.fetchImpl ?? globalThis.fetch.bind(globalThis);
    const res = await f(`${o.apiBase}${path}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${o.token}`, Accept: 'application/json' },
    });
    if (res.status === 401) {
      this.becomeUnauthorized('token_expired');
      throw new Error('unauthorized');
    }
    if (!res.ok) throw new Error(`POST ${path} failed: ${res.status}`);
    return (await res.json().catch(() => ({}))) as { unread_count?: number };
  }

  // ---- browser signals --------------------------------------------------------------------------

  private readonly onOnline = (): void => {
    this.reconnectNow(true);
  };

  private readonly onOffline = (): void => {
    if (this.stopped || this.terminal) return;
    if (!this.ws || this.ws.readyState !== OPEN) {
      this.clearRetry();
      this.update({ status: 'offline', retryInSeconds: null });
    }
  };

  private readonly onVisibility = (): void => {
    if (document.visibilityState !== 'visible' || this.stopped || this.terminal) return;
    if (this.ws && this.ws.readyState === OPEN) {
      // Back from the background: check the socket is alive now rather than at the next heartbeat.
      const outstanding = this.pingSentAt > 0 && this.lastHeardAt < this.pingSentAt;
      if (this.send({ type: 'ping' }) && !outstanding) this.pingSentAt = Date.now();
      return;
    }
    this.reconnectNow(false);
  };

  // ---- helpers ----------------------------------------------------------------------------------

  private store(): KeyValueStore {
    return this.opts().storage ?? defaultStore();
  }

  private update(patch: Partial<NotificationState>): void {
    this.state = { ...this.state, ...patch };
    if (!this.stopped) this.listener(this.state);
  }

  private detach(ws: WebSocketLike): void {
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
  }

  private dropSocket(code: number, reason: string): void {
    const ws = this.ws;
    this.ws = null;
    if (!ws) return;
    this.detach(ws);
    try {
      ws.close(code, reason);
    } catch {
      /* already closed */
    }
  }

  private clearRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.retryTimer = null;
    this.tickTimer = null;
  }

  private clearTimers(): void {
    this.clearRetry();
    this.stopHeartbeat();
    if (this.replayFlushTimer) clearTimeout(this.replayFlushTimer);
    this.replayFlushTimer = null;
  }
}
