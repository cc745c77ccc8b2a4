/**
 * `NotificationClient`: one user's notification socket for the lifetime of a mount, free of React
 * so it can be driven by a fake WebSocket and fake timers in tests; `stop()` ends it for good.
 *
 * It owns the state the hook renders and wires together the pieces, each with one job:
 * - connection.ts: the socket lifecycle (connect, close decision, auth check, browser signals);
 * - backoff.ts: the retry timer and its countdown (policy and close-code table: reconnect.ts);
 * - heartbeat.ts: liveness pings on an open socket;
 * - frames.ts: what each server frame does (dedupe, resume, replay, toasts);
 * - http.ts: read state over the inbox API.
 *
 * Options are a plain object (a page without React: `new NotificationClient(userId, { token })`),
 * or a function read at each use, so the hook can keep them in a ref and a re-render never
 * reconnects. `wsBase` and `apiBase` default as in config.ts.
 *
 * @packageDocumentation
 */

import { Connection } from './connection';
import { FrameDispatcher } from './frames';
import { Heartbeat } from './heartbeat';
import { apiBaseUrl, wsBaseUrl } from './config';
import { InboxHttp, UnauthorizedError } from './http';
import type { NotificationClientInit, NotificationState, OptionsSource } from './types';

export const INITIAL_STATE: NotificationState = {
  status: 'connecting',
  retryInSeconds: null,
  unreadCount: 0,
  notifications: [],
  serverOffsetMs: 0,
  lastError: null,
};

export class NotificationClient {
  private state: NotificationState = INITIAL_STATE;
  private stopped = false;
  private readonly connection: Connection;
  private readonly heartbeat: Heartbeat;
  private readonly frames: FrameDispatcher;
  private readonly inbox: InboxHttp;
  private readonly opts: OptionsSource;

  /**
   * Nothing happens until `start()`. `listener` hears every state change (status, unread count,
   * notifications) until `stop()`.
   */
  constructor(
    userId: number | string,
    options: NotificationClientInit | (() => NotificationClientInit),
    private readonly listener: (s: NotificationState) => void = () => {},
  ) {
    const read = typeof options === 'function' ? options : () => options;
    const opts: OptionsSource = () => {
      const o = read();
      return { ...o, wsBase: wsBaseUrl(o.wsBase), apiBase: apiBaseUrl(o.apiBase) };
    };
    this.opts = opts;
    const update = (patch: Partial<NotificationState>) => this.update(patch);
    this.frames = new FrameDispatcher(userId, opts, {
      state: () => this.state,
      update,
      hello: (heartbeatMs) => this.heartbeat.start(heartbeatMs),
      ack: (id) => this.connection.send({ type: 'ack', id }),
    });
    this.heartbeat = new Heartbeat({
      isOpen: () => this.connection.isOpen,
      ping: () => this.connection.send({ type: 'ping' }),
      dead: () => this.connection.dropDead(),
    });
    this.connection = new Connection(userId, opts, {
      since: () => this.frames.lastSeenId,
      currentStatus: () => this.state.status,
      status: update,
      opened: () => this.heartbeat.opened(),
      frame: (raw, since) => {
        this.heartbeat.heard();
        this.frames.dispatch(raw, since);
      },
      closed: () => {
        this.heartbeat.stop();
        if (!this.stopped) this.frames.flushReplay();
      },
      visible: () => this.heartbeat.probe(),
      unauthorized: (reason) => {
        try {
          this.opts().onUnauthorized?.(reason);
        } catch (e) {
          console.error('onUnauthorized threw', e);
        }
      },
    });
    this.inbox = new InboxHttp(opts);
  }

  get snapshot(): NotificationState {
    return this.state;
  }

  /** The id that will be sent as `since`. */
  get lastSeenId(): number | null {
    return this.frames.lastSeenId;
  }

  start(): void {
    this.connection.start();
  }

  stop(): void {
    this.stopped = true;
    this.frames.discardReplay();
    this.heartbeat.stop();
    this.connection.stop();
  }

  /** Connect now, skipping any pending backoff (not after a terminal close). */
  reconnectNow(resetBackoff = false): void {
    this.connection.reconnectNow(resetBackoff);
  }

  // ---- read state (HTTP: an answer with the new count, and works while the socket is down) -------

  async markRead(id: number): Promise<void> {
    const count = await this.http(() => this.inbox.markRead(id));
    this.update({
      unreadCount: count ?? this.state.unreadCount,
      notifications: this.state.notifications.map((n) => (n.id === id ? { ...n, read: true } : n)),
    });
  }

  async markAllRead(): Promise<void> {
    const count = await this.http(() => this.inbox.markAllRead());
    this.update({
      unreadCount: count ?? 0,
      notifications: this.state.notifications.map((n) => ({ ...n, read: true })),
    });
  }

  /** A 401 from the API means the token is gone for the socket too. */
  private async http<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (e) {
      if (e instanceof UnauthorizedError) this.connection.becomeUnauthorized('token_expired');
      throw e;
    }
  }

  private update(patch: Partial<NotificationState>): void {
    this.state = { ...this.state, ...patch };
    if (!this.stopped) this.listener(this.state);
  }
}
