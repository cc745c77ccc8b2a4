/**
 * Backoff scheduling: the one retry timer of a connection, the attempt counter that grows its delay,
 * and the once-a-second countdown shown as "Reconnecting in N s". The policy itself (how long, reset
 * after a stable socket) is the pure functions of reconnect.ts; this module only owns the timers.
 *
 * @packageDocumentation
 */

import { backoffDelay, DEFAULT_BACKOFF, nextAttempt, type BackoffOptions } from './reconnect';

type Timeout = ReturnType<typeof setTimeout>;
type Interval = ReturnType<typeof setInterval>;

/** Where the policy's knobs come from; read at every scheduling, so a re-render may change them. */
export type BackoffSource = () => { backoff?: Partial<BackoffOptions>; random?: () => number };

/** At most one pending retry: scheduling again replaces the previous one. */
export class RetryTimer {
  /** 0-based number of the next retry; -1 until the first failure (and after a reset). */
  private attempt = -1;
  private timer: Timeout | null = null;
  /** Drives the countdown; runs only while a retry is pending. */
  private ticker: Interval | null = null;
  private dueAt = 0;
  private lastShown: number | null = null;

  constructor(
    private readonly source: BackoffSource,
    /** Whole seconds left, called once a second while pending and only when the number changed. */
    private readonly onCountdown: (secondsLeft: number) => void,
  ) {}

  /**
   * Arms the retry. `openForMs` is how long the socket that just closed stayed open (null when it
   * never opened): a long-lived socket resets the backoff. Returns the delay in milliseconds.
   */
  schedule(openForMs: number | null, fire: () => void): number {
    this.cancel();
    const { backoff: overrides, random } = this.source();
    const backoff = { ...DEFAULT_BACKOFF, ...overrides };
    this.attempt = nextAttempt(this.attempt, openForMs, backoff);
    const delay = backoffDelay(this.attempt, random, backoff);
    this.dueAt = Date.now() + delay;
    this.lastShown = Math.ceil(delay / 1000);
    this.timer = setTimeout(() => {
      this.cancel();
      fire();
    }, delay);
    this.ticker = setInterval(() => this.tick(), 1000);
    return delay;
  }

  /** Whole seconds until the pending retry (0 when none is pending). */
  get secondsLeft(): number {
    if (!this.timer) return 0;
    return Math.max(0, Math.ceil((this.dueAt - Date.now()) / 1000));
  }

  /** The next failure starts over from the first retry's window (e.g. the network just came back). */
  reset(): void {
    this.attempt = -1;
  }

  /** Drops the pending retry, if any; the attempt count is kept. */
  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.ticker) clearInterval(this.ticker);
    this.timer = null;
    this.ticker = null;
    this.lastShown = null;
  }

  private tick(): void {
    const left = this.secondsLeft;
    if (left === this.lastShown) return;
    this.lastShown = left;
    this.onCountdown(left);
  }
}
