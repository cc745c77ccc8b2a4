import { describe, expect, it } from 'vitest';
import {
  backoffCeiling,
  backoffDelay,
  CLOSE,
  decideClose,
  DEFAULT_BACKOFF,
  nextAttempt,
} from '../src/notifications/reconnect';

describe('backoff schedule', () => {
  it('retries the first time within 5 s, like the original client', () => {
    for (const r of [0, 0.25, 0.5, 0.999999]) {
      const d = backoffDelay(0, () => r);
      expect(d).toBeGreaterThanOrEqual(DEFAULT_BACKOFF.minMs);
      expect(d).toBeLessThanOrEqual(5000);
    }
  });

  it('doubles the ceiling per attempt up to a 60 s cap', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 20, 1000].map((a) => backoffCeiling(a))).toEqual([
      5000, 10000, 20000, 40000, 60000, 60000, 60000, 60000, 60000,
    ]);
  });

  it('never exceeds the cap nor goes below the floor, whatever the random draw', () => {
    for (let attempt = 0; attempt < 50; attempt++) {
      expect(backoffDelay(attempt, () => 0)).toBe(DEFAULT_BACKOFF.minMs);
      expect(backoffDelay(attempt, () => 0.9999999)).toBeLessThanOrEqual(DEFAULT_BACKOFF.capMs);
      expect(backoffDelay(attempt, () => 0.9999999)).toBeLessThanOrEqual(backoffCeiling(attempt));
    }
    // Out-of-range random values are clamped.
    expect(backoffDelay(3, () => 5)).toBe(40000);
    expect(backoffDelay(3, () => -1)).toBe(DEFAULT_BACKOFF.minMs);
  });

  it('uses full jitter: draws spread over the whole window', () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
    const draws = Array.from({ length: 2000 }, () => backoffDelay(4, rand));
    const min = Math.min(...draws);
    const max = Math.max(...draws);
    expect(min).toBeGreaterThanOrEqual(250);
    expect(max).toBeLessThanOrEqual(60000);
    expect(min).toBeLessThan(3000); // reaches the bottom of the window …
    expect(max).toBeGreaterThan(57000); // … and the top
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
    expect(mean).toBeGreaterThan(27000);
    expect(mean).toBeLessThan(33000);
  });

  it('honours custom options', () => {
    const opts = { firstRetryMs: 1000, capMs: 3000, minMs: 0, stableAfterMs: 5000 };
    expect(backoffCeiling(0, opts)).toBe(1000);
    expect(backoffCeiling(5, opts)).toBe(3000);
    expect(backoffDelay(1, () => 0.5, opts)).toBe(1000);
  });

  it('starts over after a connection that stayed up, keeps climbing after quick failures', () => {
    expect(nextAttempt(-1, null)).toBe(0);
    expect(nextAttempt(0, null)).toBe(1);
    expect(nextAttempt(3, 2000)).toBe(4);
    expect(nextAttempt(3, 10_000)).toBe(0);
    expect(nextAttempt(7, 3_600_000)).toBe(0);
  });
});

describe('close-code decisions (docs/protocol.md table)', () => {
  it.each([
    [1000, 'retry'],
    [1001, 'retry'],
    [1006, 'retry'],
    [1009, 'retry'],
    [1011, 'retry'],
    [1012, 'retry'],
    [4002, 'retry'],
    [4008, 'retry'],
    [4500, 'retry'],
  ])('after open, %i → %s', (code, decision) => {
    expect(decideClose(code, true)).toBe(decision);
  });

  it('stops on 4001 (token expired) and asks for a login', () => {
    expect(decideClose(CLOSE.TOKEN_EXPIRED, true)).toBe('unauthorized');
    expect(decideClose(CLOSE.TOKEN_EXPIRED, false)).toBe('unauthorized');
  });

  it('stops on 4003 (token revoked) and asks for a login', () => {
    expect(decideClose(CLOSE.TOKEN_REVOKED, true)).toBe('unauthorized');
    expect(decideClose(4003, false)).toBe('unauthorized');
  });

  it('stops on 1002 and 1007 (the client broke the protocol)', () => {
    expect(decideClose(1002, true)).toBe('stop');
    expect(decideClose(1007, true)).toBe('stop');
  });

  it('stops on 4009 (broken client)', () => {
    expect(decideClose(CLOSE.PROTOCOL_VIOLATION, true)).toBe('stop');
  });

  it('checks the token when the socket closed before opening (a 401/403 looks like 1006)', () => {
    expect(decideClose(1006, false)).toBe('check-auth');
    expect(decideClose(1011, false)).toBe('check-auth');
  });
});
