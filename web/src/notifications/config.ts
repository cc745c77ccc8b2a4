/**
 * Where the API and the notification socket live. Same names as the original front end
 * (`VITE_API_BASE_URL`, `VITE_WS_URL`); both default to the origin that serves the page, which is
 * how the Rust server (and the Vite dev proxy) serve the app.
 *
 * @packageDocumentation
 */

interface LocationLike {
  protocol: string;
  host: string;
}

function env(name: 'VITE_API_BASE_URL' | 'VITE_WS_URL'): string | undefined {
  // `import.meta.env` is replaced at build time by Vite; guard for hosts that lift this module
  // into a non-Vite build.
  const meta = import.meta as unknown as { env?: Record<string, string | undefined> };
  const value = meta.env?.[name];
  return value && value.trim() !== '' ? value.trim() : undefined;
}

function trimSlash(s: string): string {
  return s.replace(/\/+$/, '');
}

/** Base of every REST call, e.g. `/api` or `https://api.parkmate.com/api` (no trailing slash). */
export function apiBaseUrl(explicit?: string): string {
  return trimSlash(explicit ?? env('VITE_API_BASE_URL') ?? '/api');
}

/**
 * Base of the WebSocket URL, e.g. `ws://127.0.0.1:8000` (no trailing slash). Without
 * `VITE_WS_URL` it is the page's own origin, `wss://` when the page is served over https.
 */
export function wsBaseUrl(explicit?: string, loc: LocationLike | undefined = globalThis.location): string {
  const configured = explicit ?? env('VITE_WS_URL');
  if (configured) return trimSlash(configured);
  if (!loc) return 'ws://127.0.0.1:8000';
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}`;
}

/**
 * The notification socket URL for a user, resuming after `since` when known (0 included: a user
 * who could see nothing yet resumes from the beginning).
 */
export function notificationSocketUrl(base: string, userId: number | string, since: number | null): string {
  const path = `${trimSlash(base)}/ws/notifications/${encodeURIComponent(String(userId))}/`;
  return since != null && since >= 0 ? `${path}?since=${since}` : path;
}

/** Sub-protocols offered by a browser: the protocol version, then the token (never in the URL). */
export const SUBPROTOCOL = 'parkmate.v1';
export function socketProtocols(token: string): string[] {
  return [SUBPROTOCOL, `bearer.${token}`];
}
