/**
 * The HTTP side of the notification client: read state goes over the inbox API (docs/protocol.md),
 * which answers with the new unread count and works while the socket is down; and the host's auth
 * check, whose three answers (valid, refused, don't know) decide what follows a refused handshake.
 *
 * @packageDocumentation
 */

import type { OptionsSource } from './types';

/** The API answered 401: the token is no longer accepted. */
export class UnauthorizedError extends Error {
  constructor() {
    super('unauthorized');
    this.name = 'UnauthorizedError';
  }
}

/** `POST /api/inbox/{id}/read` and `POST /api/inbox/read-all`, with the bearer token. */
export class InboxHttp {
  constructor(private readonly opts: OptionsSource) {}

  /** Marks one notification read; resolves to the server's new unread count, when it sent one. */
  markRead(id: number): Promise<number | null> {
    return this.post(`/inbox/${encodeURIComponent(String(id))}/read`);
  }

  /** Marks every notification read; resolves to the server's new unread count, when it sent one. */
  markAllRead(): Promise<number | null> {
    return this.post('/inbox/read-all');
  }

  private async post(path: string): Promise<number | null> {
    const o = this.opts();
    const f = o.fetchImpl ?? globalThis.fetch.bind(globalThis);
    const res = await f(`${o.apiBase}${path}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${o.token}`, Accept: 'application/json' },
    });
    if (res.status === 401) throw new UnauthorizedError();
    if (!res.ok) throw new Error(`POST ${path} failed: ${res.status}`);
    const body = (await res.json().catch(() => ({}))) as { unread_count?: unknown };
    return typeof body.unread_count === 'number' ? body.unread_count : null;
  }
}

/** What the host's `checkAuth` said about the token. */
export type AuthAnswer = 'valid' | 'refused' | 'unknown';

/**
 * A check that never settles (a fetch on a dead network may hang for minutes) must not freeze the
 * reconnect loop: after this long the answer is "don't know", which retries with backoff.
 */
export const AUTH_CHECK_TIMEOUT_MS = 10_000;

/** A running auth check; `cancel()` drops its timer, and its answer is then never delivered. */
export interface PendingAuthCheck {
  cancel(): void;
}

/**
 * Runs `check` and calls `done` exactly once with its answer: `valid` or `refused` when it resolved
 * true or false, `unknown` when it threw, rejected, or took longer than `timeoutMs`.
 */
export function runAuthCheck(
  check: () => Promise<boolean>,
  done: (answer: AuthAnswer) => void,
  timeoutMs = AUTH_CHECK_TIMEOUT_MS,
): PendingAuthCheck {
  let settled = false;
  const finish = (answer: AuthAnswer) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    done(answer);
  };
  const timer = setTimeout(() => finish('unknown'), timeoutMs);
  let pending: Promise<boolean>;
  try {
    pending = Promise.resolve(check());
  } catch {
    pending = Promise.reject(new Error('checkAuth threw'));
  }
  pending.then(
    (ok) => finish(ok ? 'valid' : 'refused'),
    () => finish('unknown'),
  );
  return {
    cancel: () => {
      settled = true;
      clearTimeout(timer);
    },
  };
}
