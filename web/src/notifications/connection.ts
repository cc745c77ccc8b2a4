/**
 * The socket lifecycle, as an explicit state machine with one current {@link Phase}:
 *
 * ```
 * idle ─start→ socket ─close→ (decide by close code, reconnect.ts)
 *                 ↑             ├─ retry ─────────────→ waiting ─timer→ socket
 *                 │             ├─ never opened ──────→ checking-auth ─valid/unknown→ waiting
 *                 │             │                          │          (socket at once if a signal
 *                 │             │                          │           came during the check)
 *                 │             │                          └─refused→ terminal
 *                 │             └─ 4001 4003 4009 1002 1007 → terminal
 *                 └── `online` / tab visible: waiting or offline → socket at once
 * (browser offline: waiting → offline; a connect while offline → offline; stop() → stopped from anywhere)
 * ```
 *
 * Only the `socket` phase holds a socket, and leaving it always detaches and closes that socket, so
 * at most one exists at any time. A browser signal that arrives while the auth check is pending
 * never connects by itself: it is remembered in the phase, and the check's answer connects at once
 * (or signs out). Every asynchronous continuation (timer, check, socket event) first checks that its
 * phase is still the current one, so a late answer can never act on a newer state.
 *
 * @packageDocumentation
 */

import { RetryTimer } from './backoff';
import { notificationSocketUrl, socketProtocols } from './config';
import { runAuthCheck, type PendingAuthCheck } from './http';
import type { ClientFrame } from './protocol';
import { CLOSE, decideClose } from './reconnect';
import type {
  ConnectionStatus,
  NotificationState,
  OptionsSource,
  UnauthorizedReason,
  WebSocketCtor,
  WebSocketLike,
} from './types';

/** `WebSocket.readyState` values (not read from the global, which a test or SSR host may lack). */
const CONNECTING = 0;
const OPEN = 1;

type SocketPhase = {
  kind: 'socket';
  ws: WebSocketLike;
  /** The `since` the socket was opened with (whether a replay is coming). */
  since: number | null;
  /** When `open` fired; null while connecting. */
  openedAt: number | null;
  /** Detached and closed by us, or reported closed: nothing more happens to this socket. */
  released: boolean;
};

/** A browser signal that asked for a connection now; `reset` also starts the backoff over. */
type Wake = { reset: boolean };

type Phase =
  | { kind: 'idle' }
  | SocketPhase
  /** The socket closed before opening; the host's `checkAuth` decides between retry and sign-in. */
  | { kind: 'checking-auth'; check: PendingAuthCheck | null; wake: Wake | null }
  /** A retry timer is armed (see backoff.ts). */
  | { kind: 'waiting' }
  /** The browser is offline: nothing happens until `online`. */
  | { kind: 'offline' }
  /** 4001, 4003, 4009, 1002, 1007 or a refused token: no automatic reconnect. */
  | { kind: 'terminal'; unauthorized: boolean }
  | { kind: 'stopped' };

/** What the connection reports to the client that owns it. */
export interface ConnectionHost {
  /** The id to resume after, read at every connect. */
  since(): number | null;
  currentStatus(): ConnectionStatus;
  status(patch: Partial<Pick<NotificationState, 'status' | 'retryInSeconds' | 'lastError'>>): void;
  /** A socket reached `open`. */
  opened(): void;
  /** A text frame from the current socket, which was opened with `since`. */
  frame(raw: unknown, since: number | null): void;
  /** The current socket is gone (closed by the server, by the network or by us). */
  closed(): void;
  /** The tab became visible while a socket is open: worth checking it is still alive. */
  visible(): void;
  /** The token is no longer accepted; no reconnect follows. */
  unauthorized(reason: UnauthorizedReason): void;
}

function browserOffline(): boolean {
  return typeof navigator !== 'undefined' && navigator.onLine === false;
}

export class Connection {
  private phase: Phase = { kind: 'idle' };
  private readonly retry: RetryTimer;

  constructor(
    private readonly userId: number | string,
    private readonly opts: OptionsSource,
    private readonly host: ConnectionHost,
  ) {
    this.retry = new RetryTimer(opts, (left) => this.host.status({ retryInSeconds: left }));
  }

  /** Listens to the browser's signals and connects. */
  start(): void {
    if (this.phase.kind !== 'idle') return;
    if (typeof window !== 'undefined') {
      window.addEventListener('online', this.onOnline);
      window.addEventListener('offline', this.onOffline);
      document.addEventListener('visibilitychange', this.onVisibility);
    }
    this.connect();
  }

  /** Ends the connection for good: closes the socket (1000), drops every timer and listener. */
  stop(): void {
    if (this.phase.kind === 'stopped') return;
    if (typeof window !== 'undefined') {
      window.removeEventListener('online', this.onOnline);
      window.removeEventListener('offline', this.onOffline);
      document.removeEventListener('visibilitychange', this.onVisibility);
    }
    this.enter({ kind: 'stopped' }, CLOSE.NORMAL, 'client stopped');
  }

  /** Connect now, skipping any pending backoff (never after a terminal close, never a second socket). */
  reconnectNow(resetBackoff = false): void {
    this.wake({ reset: resetBackoff });
  }

  get isOpen(): boolean {
    return this.phase.kind === 'socket' && this.phase.openedAt != null && this.phase.ws.readyState === OPEN;
  }

  /** Sends a frame on the open socket; false when there is none. */
  send(frame: ClientFrame): boolean {
    if (this.phase.kind !== 'socket' || !this.isOpen) return false;
    this.phase.ws.send(JSON.stringify(frame));
    return true;
  }

  /** The open socket stopped answering (heartbeat.ts): close it ourselves (4000) and retry. */
  dropDead(): void {
    const p = this.phase;
    if (p.kind !== 'socket' || p.openedAt == null) return;
    this.release(p, CLOSE.CLIENT_LIVENESS, 'no pong');
    this.afterClose(CLOSE.GOING_AWAY, p.openedAt); // it was open: a plain retry
  }

  /** The token was refused (close 4001, the auth check, or a 401 from the API): stop for good. */
  becomeUnauthorized(reason: UnauthorizedReason): void {
    const p = this.phase;
    if (p.kind === 'stopped' || (p.kind === 'terminal' && p.unauthorized)) return;
    this.enter({ kind: 'terminal', unauthorized: true }, CLOSE.NORMAL, 'unauthorized');
    this.host.status({ status: 'unauthorized', retryInSeconds: null, lastError: reason });
    this.host.unauthorized(reason);
  }

  // ---- transitions ------------------------------------------------------------------------------

  /**
   * The one way to change phase. Whatever the old phase held is let go here: its socket is
   * detached and closed with `code`, its retry timer or auth check cancelled.
   */
  private enter(next: Phase, code: number = CLOSE.NORMAL, reason = ''): void {
    const prev = this.phase;
    this.phase = next;
    switch (prev.kind) {
      case 'socket':
        this.release(prev, code, reason);
        break;
      case 'waiting':
        this.retry.cancel();
        break;
      case 'checking-auth':
        prev.check?.cancel();
        break;
      default:
        break;
    }
  }

  /** Detaches and closes a socket once, and tells the host it is gone. */
  private release(p: SocketPhase, code: number, reason: string): void {
    if (p.released) return;
    p.released = true;
    const ws = p.ws;
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
    if (ws.readyState === CONNECTING || ws.readyState === OPEN) {
      try {
        ws.close(code, reason);
      } catch {
        // Already closing: the browser finishes the job.
      }
    }
    this.host.closed();
  }

  private connect(): void {
    const from = this.phase.kind;
    if (from === 'socket' || from === 'stopped' || from === 'terminal') return;
    if (browserOffline()) {
      this.goOffline();
      return; // the `online` event brings us back
    }
    const o = this.opts();
    const since = this.host.since();
    const Ctor: WebSocketCtor = o.WebSocketImpl ?? globalThis.WebSocket;
    let ws: WebSocketLike;
    try {
      ws = new Ctor(notificationSocketUrl(o.wsBase, this.userId, since), socketProtocols(o.token));
    } catch (e) {
      this.host.status({ lastError: String(e) });
      this.scheduleRetry(null);
      return;
    }
    const phase: SocketPhase = { kind: 'socket', ws, since, openedAt: null, released: false };
    this.enter(phase);
    const s = this.host.currentStatus();
    this.host.status({
      status: s === 'reconnecting' || s === 'offline' ? 'reconnecting' : 'connecting',
      retryInSeconds: null,
    });

    ws.onopen = () => {
      if (this.phase !== phase) return;
      phase.openedAt = Date.now();
      this.host.opened();
      this.host.status({ status: 'open', retryInSeconds: null, lastError: null });
    };
    ws.onmessage = (ev) => {
      if (this.phase === phase) this.host.frame(ev.data, since);
    };
    ws.onerror = () => {
      // A close event always follows; the decision is made there.
    };
    ws.onclose = (ev) => {
      if (this.phase !== phase) return;
      this.release(phase, ev.code, '');
      this.afterClose(ev.code, phase.openedAt);
    };
  }

  /** The current socket closed with `code`; `openedAt` is null when it never opened. */
  private afterClose(code: number, openedAt: number | null): void {
    const openFor = openedAt == null ? null : Date.now() - openedAt;
    switch (decideClose(code, openedAt != null)) {
      case 'unauthorized':
        this.becomeUnauthorized('token_expired');
        return;
      case 'stop':
        this.enter({ kind: 'terminal', unauthorized: false });
        this.host.status({ status: 'offline', retryInSeconds: null, lastError: `closed by server (${code})` });
        return;
      case 'check-auth':
        this.checkAuthThenRetry(openFor);
        return;
      case 'retry':
        this.host.status({ lastError: code === CLOSE.NORMAL ? null : `connection closed (${code})` });
        this.scheduleRetry(openFor);
        return;
    }
  }

  /** How browsers show a refused handshake (401/403): ask the host whether the token is still good. */
  private checkAuthThenRetry(openFor: number | null): void {
    const check = this.opts().checkAuth;
    if (!check) {
      this.scheduleRetry(openFor);
      return;
    }
    const phase: Phase = { kind: 'checking-auth', check: null, wake: null };
    this.enter(phase);
    // Show the backoff we are about to take while the check runs.
    this.host.status({ status: 'reconnecting' });
    phase.check = runAuthCheck(check, (answer) => {
      if (this.phase !== phase) return; // stopped, or superseded while the check ran
      if (answer === 'refused') {
        this.becomeUnauthorized('handshake_refused');
      } else if (phase.wake) {
        // The network came back (or the tab woke up) during the check: connect now, once.
        if (phase.wake.reset) this.retry.reset();
        this.connect();
      } else {
        this.scheduleRetry(openFor);
      }
    });
  }

  private scheduleRetry(openFor: number | null): void {
    if (browserOffline()) {
      this.goOffline();
      return;
    }
    const phase: Phase = { kind: 'waiting' };
    this.enter(phase);
    const delay = this.retry.schedule(openFor, () => {
      if (this.phase === phase) this.connect();
    });
    this.host.status({ status: 'reconnecting', retryInSeconds: Math.ceil(delay / 1000) });
  }

  private goOffline(): void {
    this.enter({ kind: 'offline' });
    this.host.status({ status: 'offline', retryInSeconds: null });
  }

  /** A reason to connect now rather than at the end of the backoff. */
  private wake(wake: Wake): void {
    const p = this.phase;
    switch (p.kind) {
      case 'waiting':
      case 'offline':
        if (wake.reset) this.retry.reset();
        this.connect();
        return;
      case 'checking-auth':
        // Never a socket while the check runs: its answer decides, and then connects at once.
        p.wake = { reset: wake.reset || (p.wake?.reset ?? false) };
        return;
      case 'socket':
        // One is connecting or open already; should it fail, its retry starts over if asked to.
        if (wake.reset) this.retry.reset();
        return;
      default:
        return; // idle, terminal, stopped
    }
  }

  // ---- browser signals --------------------------------------------------------------------------

  private readonly onOnline = (): void => {
    this.wake({ reset: true });
  };

  private readonly onOffline = (): void => {
    const p = this.phase;
    if (p.kind === 'waiting') {
      this.goOffline();
    } else if ((p.kind === 'socket' && !this.isOpen) || p.kind === 'checking-auth') {
      // The attempt in flight decides; it will find the browser offline and wait for `online`.
      this.host.status({ status: 'offline', retryInSeconds: null });
    }
  };

  private readonly onVisibility = (): void => {
    if (document.visibilityState !== 'visible') return;
    if (this.isOpen) this.host.visible();
    else this.wake({ reset: false });
  };
}
