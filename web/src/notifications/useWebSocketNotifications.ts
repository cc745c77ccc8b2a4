/**
 * `useWebSocketNotifications(userId, options)`: the React face of NotificationClient.
 *
 * Options and callbacks live in a ref (as in react-use-websocket), so re-rendering the host component
 * with new inline callbacks never reconnects; only a different user, token or `enabled` does.
 *
 * @packageDocumentation
 */

import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'react';
import { INITIAL_STATE, NotificationClient } from './client';
import type { ConnectionStatus, NotificationClientInit, NotificationState } from './types';
import type { Notification } from './protocol';

export interface UseWebSocketNotificationsOptions
  extends Omit<NotificationClientInit, 'token'> {
  token: string | null | undefined;
  /** False keeps the socket closed (status 'offline'). Default true. */
  enabled?: boolean;
}

export interface UseWebSocketNotificationsResult {
  isConnected: boolean;
  status: ConnectionStatus;
  retryInSeconds: number | null;
  unreadCount: number;
  notifications: Notification[];
  /** server_time − local clock, from the last hello. */
  serverOffsetMs: number;
  lastError: string | null;
  markRead: (id: number) => Promise<void>;
  markAllRead: () => Promise<void>;
  /** Skip the backoff and try now (e.g. a "Retry" button). */
  reconnect: () => void;
}

const IDLE: NotificationState = { ...INITIAL_STATE, status: 'offline' };

export function useWebSocketNotifications(
  userId: number | string | null | undefined,
  options: UseWebSocketNotificationsOptions,
): UseWebSocketNotificationsResult {
  // Updated after every render, before any passive effect (so before the client below starts) and
  // before any event can reach the client: it always reads this render's options.
  const optionsRef = useRef(options);
  useLayoutEffect(() => {
    optionsRef.current = options;
  });
  const clientRef = useRef<NotificationClient | null>(null);
  const token = options.token ?? null;
  const enabled = options.enabled ?? true;
  const active = userId != null && userId !== '' && token != null && token !== '' && enabled;
  // Which connection a reported state belongs to, so a new user or token starts from INITIAL_STATE
  // (and an inactive hook shows IDLE) without a setState in the effect.
  const session = active ? `${String(userId)}\u0000${token}` : null;
  const [reported, setReported] = useState<{ session: string | null; state: NotificationState }>({
    session: null,
    state: IDLE,
  });
  const state = session == null ? IDLE : reported.session === session ? reported.state : INITIAL_STATE;

  useEffect(() => {
    if (!active) return;
    const session = `${String(userId)}\u0000${token}`;
    const client = new NotificationClient(
      userId,
      () => {
        return { ...optionsRef.current, token };
      },
      (s) => setReported({ session, state: s }),
    );
    clientRef.current = client;
    client.start();
    return () => {
      client.stop();
      if (clientRef.current === client) clientRef.current = null;
      // Whatever comes next (the same session re-enabled, or nothing) starts from scratch.
      setReported({ session: null, state: IDLE });
    };
  }, [active, userId, token]);

  const markRead = useCallback(async (id: number) => {
    await clientRef.current?.markRead(id);
  }, []);
  const markAllRead = useCallback(async () => {
    await clientRef.current?.markAllRead();
  }, []);
  const reconnect = useCallback(() => clientRef.current?.reconnectNow(true), []);

  return {
    isConnected: state.status === 'open',
    status: state.status,
    retryInSeconds: state.retryInSeconds,
    unreadCount: state.unreadCount,
    notifications: state.notifications,
    serverOffsetMs: state.serverOffsetMs,
    lastError: state.lastError,
    markRead,
    markAllRead,
    reconnect,
  };
}
