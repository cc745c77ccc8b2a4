/**
 * The reconnect policy, as pure functions so it can be unit-tested without sockets or timers.
 *
 * - Which closes are worth a retry follows the close-code table of docs/protocol.md (the same table
 *   as `CloseCode::reconnect()` in crates/parkmate-protocol).
 * - How long to wait: the first retry comes within `firstRetryMs` (5 s, like the original client),
 *   then a capped exponential backoff with *full jitter* (delay uniformly drawn in
 *   `[minMs, min(capMs, firstRetryMs * 2^attempt)]`), so that thousands of browsers dropped by one
 *   server restart (1012) do not come back in the same second.
 *
 * @packageDocumentation
 */

export interface BackoffOptions {
  /** Upper bound of the first retry's delay; doubles per attempt. */
  firstRetryMs: number;
  /** No delay ever exceeds this. */
  capMs: number;
  /** Floor, so a retry loop can never spin. */
  minMs: number;
  /** A connection that stayed open this long counts as healthy: the next failure starts over. */
  stableAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = {
  firstRetryMs: 5_000,
  capMs: 60_000,
  minMs: 250,
  stableAfterMs: 10_000,
};

/** The ceiling of the jitter window for a 0-based attempt number. */
export function backoffCeiling(attempt: number, opts: BackoffOptions = DEFAULT_BACKOFF): number {
  const n = Math.max(0, Math.floor(attempt));
  // 2^n overflows nothing here: beyond ~30 the cap has long been reached.
  const exp = opts.firstRetryMs * Math.pow(2, Math.min(n, 30));
  return Math.max(opts.minMs, Math.min(opts.capMs, exp));
}

/**
 * Delay before retry number `attempt` (0 = first retry after a drop). `random` is injectable for
 * tests and returns a number in [0, 1).
 */
export function backoffDelay(
  attempt: number,
  random: () => number = Math.random,
  opts: BackoffOptions = DEFAULT_BACKOFF,
): number {
  const ceiling = backoffCeiling(attempt, opts);
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.round(opts.minMs + r * (ceiling - opts.minMs));
}

/** The attempt number to use for the next retry, given how long the last socket stayed open. */
export function nextAttempt(previousAttempt: number, openForMs: number | null, opts: BackoffOptions = DEFAULT_BACKOFF): number {
  if (openForMs != null && openForMs >= opts.stableAfterMs) return 0;
  return previousAttempt + 1;
}

export type CloseDecision =
  /** Reconnect after the backoff delay, with `since`. */
  | 'retry'
  /** The socket never opened (a 401/403 handshake refusal looks like 1006): ask the API whether the
   *  token is still good before retrying. */
  | 'check-auth'
  /** The token is no longer accepted: stop and send the user to log in. */
  | 'unauthorized'
  /** The client is broken (4009, or 1002/1007: it broke the WebSocket protocol) — retrying
   *  would repeat the same mistake. */
  | 'stop';

export const CLOSE = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  /** The server saw a frame that breaks RFC 6455 (unmasked, reserved bits, unknown opcode…). */
  PROTOCOL_ERROR: 1002,
  ABNORMAL: 1006,
  /** The server saw text (or a close reason) that is not UTF-8. */
  INVALID_PAYLOAD: 1007,
  TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  SERVICE_RESTART: 1012,
  TOKEN_EXPIRED: 4001,
  HEARTBEAT_TIMEOUT: 4002,
  /** The account changed role, was deleted or had its tokens revoked: log in again. */
  TOKEN_REVOKED: 4003,
  SLOW_CONSUMER: 4008,
  PROTOCOL_VIOLATION: 4009,
  /** Used by this client when it closes a socket it believes dead (no frame for 2 heartbeats). */
  CLIENT_LIVENESS: 4000,
} as const;

/**
 * What to do after a close. `opened` tells whether the socket ever reached `open`: browsers hide the
 * HTTP status of a refused handshake and report it as 1006 before `open`.
 */
export function decideClose(code: number, opened: boolean): CloseDecision {
  switch (code) {
    case CLOSE.TOKEN_EXPIRED:
    case CLOSE.TOKEN_REVOKED:
      return 'unauthorized';
    case CLOSE.PROTOCOL_VIOLATION:
    case CLOSE.PROTOCOL_ERROR:
    case CLOSE.INVALID_PAYLOAD:
      return 'stop';
    default:
      break;
  }
  if (!opened) return 'check-auth';
  // 1000 ("normal close") is not a reason to give up for a client whose whole job is to stay
  // connected; 1001/1006/1009/1011/1012/4002/4008 and unknown codes are retried with backoff.
  return 'retry';
}
