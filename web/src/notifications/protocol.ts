/**
 * The frames of docs/protocol.md (v1) as TypeScript types, and a parser that never throws.
 *
 * @packageDocumentation
 */

export type Level = 'success' | 'error' | 'warning' | 'info' | 'confirm';
export const LEVELS: readonly Level[] = ['success', 'error', 'warning', 'info', 'confirm'];

export interface Notification {
  id: number;
  level: Level;
  /** Machine-readable kind, e.g. `booking_renewed`; `custom` when the publisher gave none. */
  event: string;
  message: string;
  data: Record<string, unknown>;
  /** RFC 3339, UTC. */
  created_at: string;
  /** Only known from the inbox API or after a local mark-read; live frames are unread. */
  read?: boolean;
}

export type ServerFrame =
  | {
      type: 'hello';
      user_id: number;
      role: string;
      resume_from: number | null;
      /** The newest id the user could see when the socket opened (0 when none); older servers omit it. */
      newest_id?: number;
      unread_count: number;
      heartbeat_ms: number;
      server_time: string;
    }
  | ({ type: 'notification' } & Notification)
  | { type: 'replayed'; count: number; last_id: number | null }
  | { type: 'unread_count'; count: number }
  | { type: 'pong' }
  | { type: 'error'; code: string; message: string };

/** `ack`: this notification's toast was shown, so the server does not escalate it to Web Push. */
export type ClientFrame =
  | { type: 'ping' }
  | { type: 'mark_read'; id: number }
  | { type: 'mark_all_read' }
  | { type: 'ack'; id: number };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses one text frame; `null` for anything that is not a well-formed v1 server frame. */
export function parseServerFrame(text: unknown): ServerFrame | null {
  if (typeof text !== 'string') return null;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isObject(v) || typeof v.type !== 'string') return null;
  switch (v.type) {
    case 'hello':
      return typeof v.user_id === 'number' ? (v as ServerFrame) : null;
    case 'notification': {
      if (typeof v.id !== 'number' || typeof v.message !== 'string') return null;
      const level = LEVELS.includes(v.level as Level) ? (v.level as Level) : 'info';
      return {
        type: 'notification',
        id: v.id,
        level,
        event: typeof v.event === 'string' ? v.event : 'custom',
        message: v.message,
        data: isObject(v.data) ? v.data : {},
        created_at: typeof v.created_at === 'string' ? v.created_at : new Date().toISOString(),
      };
    }
    case 'replayed':
      return { type: 'replayed', count: Number(v.count) || 0, last_id: typeof v.last_id === 'number' ? v.last_id : null };
    case 'unread_count':
      return typeof v.count === 'number' ? { type: 'unread_count', count: v.count } : null;
    case 'pong':
      return { type: 'pong' };
    case 'error':
      return {
        type: 'error',
        code: typeof v.code === 'string' ? v.code : '',
        message: typeof v.message === 'string' ? v.message : '',
      };
    default:
      return null;
  }
}
