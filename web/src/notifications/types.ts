/**
 * The types shared by the pieces of the notification client: its options, the state it reports,
 * and the slice of the browser's WebSocket it needs. Types only, so every module can import them
 * without an import cycle.
 *
 * @packageDocumentation
 */

import type { Notification } from './protocol';
import type { BackoffOptions } from './reconnect';
import type { KeyValueStore } from './resume';

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

/** Why the user has to sign in again: close 4001, or a refused handshake that `checkAuth` confirmed. */
export type UnauthorizedReason = 'token_expired' | 'handshake_refused';

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
   * A rejection (network down), or no answer within 10 s, means "don't know" and retries.
   */
  checkAuth?: () => Promise<boolean>;
  /** The token is no longer accepted (close 4001, or checkAuth said so): send the user to log in. */
  onUnauthorized?: (reason: UnauthorizedReason) => void;
  /** Every new notification, once (deduplicated by id). */
  onNotification?: (n: Notification, info: DeliveryInfo) => void;
  /**
   * `true` (default) toasts with notify; `false` never; a function replaces the default toaster.
   * A function that returns `false` showed nothing (e.g. the person turned the kind's in-app
   * notifications off): the notification is then not acknowledged, so the server may push it
   * (docs/push.md). Any other return value (none, as before) means it was shown.
   */
  toast?: boolean | ((n: Notification, info: DeliveryInfo) => unknown);
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

/** What `new NotificationClient(userId, options)` takes: the options, with the two bases optional. */
export interface NotificationClientInit extends Omit<NotificationClientOptions, 'wsBase' | 'apiBase'> {
  /** Defaults to VITE_WS_URL, else the page's origin (ws:, or wss: under https). */
  wsBase?: string;
  /** Defaults to VITE_API_BASE_URL, else `/api`. */
  apiBase?: string;
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

/** Reads the options afresh on every use, so a re-render's new callbacks apply without a reconnect. */
export type OptionsSource = () => NotificationClientOptions;
