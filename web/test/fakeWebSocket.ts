/**
 * A small in-test stand-in for the browser WebSocket: records every instance, lets a test open it,
 * push server frames and close it with a code, exactly as a browser would report them.
 *
 * @packageDocumentation
 */
import type { WebSocketLike } from '../src/notifications/types';

export class FakeWebSocket implements WebSocketLike {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  static instances: FakeWebSocket[] = [];
  /** The most sockets ever alive (not CLOSED) at once since the last reset, counted at each creation. */
  static maxAlive = 0;
  static reset(): void {
    FakeWebSocket.instances = [];
    FakeWebSocket.maxAlive = 0;
  }
  /** Sockets neither closed by the client nor by the "server". */
  static get alive(): FakeWebSocket[] {
    return FakeWebSocket.instances.filter((ws) => ws.readyState !== FakeWebSocket.CLOSED);
  }
  static get last(): FakeWebSocket {
    const ws = FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
    if (!ws) throw new Error('no socket was created');
    return ws;
  }

  readyState = FakeWebSocket.CONNECTING;
  readonly protocols: string[];
  readonly sent: string[] = [];
  closedByClient: { code?: number; reason?: string } | null = null;
  onopen: ((ev: Event) => unknown) | null = null;
  onmessage: ((ev: MessageEvent) => unknown) | null = null;
  onclose: ((ev: CloseEvent) => unknown) | null = null;
  onerror: ((ev: Event) => unknown) | null = null;

  constructor(
    readonly url: string,
    protocols?: string | string[],
  ) {
    this.protocols = protocols == null ? [] : Array.isArray(protocols) ? protocols : [protocols];
    FakeWebSocket.instances.push(this);
    FakeWebSocket.maxAlive = Math.max(FakeWebSocket.maxAlive, FakeWebSocket.alive.length);
  }

  send(data: string): void {
    if (this.readyState !== FakeWebSocket.OPEN) throw new Error('InvalidStateError: not open');
    this.sent.push(data);
  }

  close(code?: number, reason?: string): void {
    this.closedByClient = { code, reason };
    this.readyState = FakeWebSocket.CLOSED;
  }

  // ---- test controls (the "server" side) ----
  open(): void {
    this.readyState = FakeWebSocket.OPEN;
    this.onopen?.(new Event('open'));
  }

  receive(frame: unknown): void {
    const data = typeof frame === 'string' ? frame : JSON.stringify(frame);
    this.onmessage?.(new MessageEvent('message', { data }));
  }

  hello(extra: Record<string, unknown> = {}): void {
    this.receive({
      type: 'hello',
      user_id: 42,
      role: 'user',
      resume_from: null,
      unread_count: 0,
      heartbeat_ms: 20000,
      server_time: new Date().toISOString(),
      ...extra,
    });
  }

  notification(id: number, extra: Record<string, unknown> = {}): void {
    this.receive({
      type: 'notification',
      id,
      level: 'info',
      event: 'custom',
      message: `message ${id}`,
      data: {},
      created_at: new Date().toISOString(),
      ...extra,
    });
  }

  serverClose(code: number, reason = ''): void {
    this.readyState = FakeWebSocket.CLOSED;
    this.onclose?.(new CloseEvent('close', { code, reason, wasClean: code !== 1006 }));
  }

  /** A refused handshake as a browser shows it: error, then close 1006, never open. */
  refuse(): void {
    this.readyState = FakeWebSocket.CLOSED;
    this.onerror?.(new Event('error'));
    this.onclose?.(new CloseEvent('close', { code: 1006, wasClean: false }));
  }
}

export class MemoryStore {
  readonly map = new Map<string, string>();
  getItem(k: string): string | null {
    return this.map.has(k) ? (this.map.get(k) as string) : null;
  }
  setItem(k: string, v: string): void {
    this.map.set(k, String(v));
  }
  removeItem(k: string): void {
    this.map.delete(k);
  }
}
