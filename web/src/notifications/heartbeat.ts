/**
 * Liveness of an open socket. Browsers answer the server's pings without telling JavaScript, so a
 * dead path (laptop lid, NAT timeout) is only noticed by asking: send an application `ping` every
 * heartbeat; if the previous one got no frame at all back within a heartbeat, the socket is dead.
 * Measured from the ping, not the wall clock, so throttled background-tab timers cause no false
 * alarms.
 *
 * @packageDocumentation
 */

/** What the heartbeat needs from the connection. */
export interface HeartbeatLink {
  /** Whether a socket is open right now (no pings while connecting or closed). */
  isOpen(): boolean;
  /** Sends `{"type":"ping"}`; false when it could not be sent. */
  ping(): boolean;
  /** The open socket stopped answering: close it and reconnect. */
  dead(): void;
}

/** Below this a server-sent `heartbeat_ms` is not taken literally: it would only waste the battery. */
const MIN_HEARTBEAT_MS = 1000;
/** Used when `hello` carries no usable `heartbeat_ms`. */
const DEFAULT_HEARTBEAT_MS = 20_000;

export class Heartbeat {
  private timer: ReturnType<typeof setInterval> | null = null;
  private lastHeardAt = 0;
  /** When the outstanding ping was sent; 0 when none is outstanding since the socket opened. */
  private pingSentAt = 0;

  constructor(private readonly link: HeartbeatLink) {}

  /** A socket just opened: it counts as heard from, with no ping outstanding. */
  opened(): void {
    this.lastHeardAt = Date.now();
    this.pingSentAt = 0;
  }

  /** Any frame at all proves the path works. */
  heard(): void {
    this.lastHeardAt = Date.now();
  }

  /** Starts pinging at the period `hello` announced. */
  start(heartbeatMs: number): void {
    this.stop();
    const every = Math.max(MIN_HEARTBEAT_MS, Number(heartbeatMs) || DEFAULT_HEARTBEAT_MS);
    this.timer = setInterval(() => this.beat(every), every);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Back from the background: check the socket is alive now rather than at the next heartbeat. */
  probe(): void {
    if (this.link.ping() && !this.outstanding()) this.pingSentAt = Date.now();
  }

  private outstanding(): boolean {
    return this.pingSentAt > 0 && this.lastHeardAt < this.pingSentAt;
  }

  private beat(every: number): void {
    if (!this.link.isOpen()) return;
    const now = Date.now();
    if (this.outstanding() && now - this.pingSentAt >= every) {
      this.stop();
      this.link.dead();
      return;
    }
    this.link.ping();
    this.pingSentAt = now;
  }
}
