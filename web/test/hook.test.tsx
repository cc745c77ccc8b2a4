import { act, renderHook } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { toastOptionsFor } from '../src/notifications/frames';
import { useWebSocketNotifications, type UseWebSocketNotificationsOptions } from '../src/notifications/useWebSocketNotifications';
import { FakeWebSocket, MemoryStore } from './fakeWebSocket';

beforeEach(() => {
  FakeWebSocket.reset();
});
afterEach(() => {
  vi.useRealTimers();
});

function baseOptions(extra: Partial<UseWebSocketNotificationsOptions> = {}): UseWebSocketNotificationsOptions {
  return {
    token: 'tok',
    wsBase: 'ws://h',
    apiBase: '/api',
    WebSocketImpl: FakeWebSocket,
    storage: new MemoryStore(),
    toast: false,
    ...extra,
  };
}

describe('useWebSocketNotifications', () => {
  it('re-rendering with new inline callbacks never reconnects; the latest callback is used', () => {
    const seen: string[] = [];
    const storage = new MemoryStore();
    const { result, rerender, unmount } = renderHook(
      ({ tag }) => useWebSocketNotifications(42, baseOptions({ storage, onNotification: (n) => seen.push(`${tag}:${n.id}`) })),
      { initialProps: { tag: 'a' } },
    );
    expect(FakeWebSocket.instances).toHaveLength(1);
    act(() => {
      FakeWebSocket.last.open();
      FakeWebSocket.last.hello({ unread_count: 2 });
    });
    expect(result.current.isConnected).toBe(true);
    expect(result.current.status).toBe('open');
    expect(result.current.unreadCount).toBe(2);
    rerender({ tag: 'b' });
    rerender({ tag: 'c' });
    expect(FakeWebSocket.instances).toHaveLength(1);
    act(() => FakeWebSocket.last.notification(9));
    expect(seen).toEqual(['c:9']);
    expect(result.current.notifications.map((n) => n.id)).toEqual([9]);
    unmount();
    expect(FakeWebSocket.last.closedByClient?.code).toBe(1000);
  });

  it('stays offline without a user or token, and connects once one arrives', () => {
    const { result, rerender } = renderHook(({ token }) => useWebSocketNotifications(42, baseOptions({ token })), {
      initialProps: { token: null as string | null },
    });
    expect(result.current.status).toBe('offline');
    expect(FakeWebSocket.instances).toHaveLength(0);
    rerender({ token: 'fresh' });
    expect(FakeWebSocket.instances).toHaveLength(1);
    expect(FakeWebSocket.last.protocols).toEqual(['parkmate.v1', 'bearer.fresh']);
  });

  it('exposes the countdown while reconnecting', () => {
    vi.useFakeTimers();
    const { result, unmount } = renderHook(() => useWebSocketNotifications(42, baseOptions({ random: () => 0.999 })));
    act(() => {
      FakeWebSocket.last.open();
      FakeWebSocket.last.serverClose(1012);
    });
    expect(result.current.status).toBe('reconnecting');
    expect(result.current.retryInSeconds).toBe(5);
    act(() => {
      vi.advanceTimersByTime(3000);
    });
    expect(result.current.retryInSeconds).toBe(2);
    unmount();
  });

  it('uses the shared expiry toast id for booking_expiring', () => {
    const opts = toastOptionsFor({
      id: 31,
      level: 'warning',
      event: 'booking_expiring',
      message: 'Your booking will expire in 5 minutes!',
      data: { booking_id: 5, end_at: '2026-11-25T18:05:00Z' },
      created_at: '2026-11-25T18:00:00Z',
    });
    expect(opts).toEqual({ toastId: 'expiring-5-2026-11-25T18:05:00.000Z', once: true, inInbox: true });
    expect(toastOptionsFor({ id: 32, level: 'info', event: 'custom', message: 'x', data: {}, created_at: '' })).toEqual({
      toastId: 'notification-32',
      inInbox: true,
    });
  });
});
