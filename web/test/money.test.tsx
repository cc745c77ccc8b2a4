// Refunds and window payments in the web client (issue 13): the driver's booking page lists each
// window's payment and the refund, the owner's row verifies cash per window, a toast keeps the
// server's text and adds the refund on a line of its own.
import { act, cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { App } from '../src/App';
import type { Booking } from '../src/app/api';
import { BookingRow } from '../src/pages/BookingActions';
import { FakeWebSocket } from './fakeWebSocket';

const driver = { id: 42, name: 'Dana Driver', email: 'driver@parkmate.test', role: 'user' };

const booking: Booking = {
  id: 77,
  user_id: 42,
  user_name: 'Dana Driver',
  lot_id: 3,
  lot_name: 'Central',
  slot_id: 11,
  slot_number: 1,
  start_at: '2026-11-25T19:00:00.000Z',
  end_at: '2026-11-25T20:00:00.000Z',
  status: 'expired',
  payment_method: 'online',
  payment_status: 'pending',
  amount_cents: 360,
  refunded_cents: 240,
  car_wash: false,
  car_wash_status: null,
  decline_reason: null,
  approved_at: '2026-11-25T18:01:00.000Z',
  lapses_at: null,
  windows: [
    {
      seq: 1,
      start_at: '2026-11-25T18:00:00.000Z',
      end_at: '2026-11-25T18:30:00.000Z',
      duration_minutes: 30,
      amount_cents: 120,
      payment_method: 'cash',
      payment_status: 'pending',
      cash_verified_at: null,
      charge: null,
      refund: null,
    },
    {
      seq: 2,
      start_at: '2026-11-25T19:00:00.000Z',
      end_at: '2026-11-25T20:00:00.000Z',
      duration_minutes: 60,
      amount_cents: 240,
      payment_method: 'online',
      payment_status: 'refunded',
      cash_verified_at: null,
      charge: { id: 5, status: 'refunded', amount_cents: 240, reference: 'test_ch_1', created_at: '', settled_at: null },
      refund: { id: 6, status: 'succeeded', amount_cents: 240, reference: 'test_re_2', created_at: '', settled_at: null },
    },
  ],
};

function json(body: unknown, status = 200): Promise<Response> {
  return Promise.resolve(new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } }));
}

let posts: Array<{ url: string; body: unknown }>;

beforeEach(() => {
  localStorage.clear();
  FakeWebSocket.reset();
  vi.stubGlobal('WebSocket', FakeWebSocket);
  posts = [];
  vi.stubGlobal(
    'fetch',
    vi.fn((url: string, init: RequestInit = {}) => {
      if (init.method === 'POST') posts.push({ url, body: typeof init.body === 'string' ? JSON.parse(init.body) : undefined });
      if (url === '/api/me') return json(driver);
      if (url === '/api/bookings/77') return json(booking);
      if (url === '/api/bookings/77/verify-cash') {
        const verified = { ...booking.windows[0], payment_status: 'paid', cash_verified_at: '2026-11-25T20:05:00.000Z' };
        return json({ ...booking, payment_status: 'paid', windows: [verified, booking.windows[1]] });
      }
      if (url.startsWith('/api/inbox?')) return json({ items: [], next_before: null, unread_count: 0 });
      return json({ code: 'not_found', message: 'nope' }, 404);
    }),
  );
});

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe('money in the web client', () => {
  it('shows the driver each window with its payment and what was refunded', async () => {
    localStorage.setItem('parkmate.token', 'jwt.for.dana');
    localStorage.setItem('parkmate.user', JSON.stringify(driver));
    window.history.replaceState(null, '', '/bookings/77');
    render(<App />);
    const first = await screen.findByTestId('window-77-1');
    expect(first.textContent).toContain('Cash $1.20, not yet verified');
    expect(first.dataset.payment).toBe('pending');
    const second = screen.getByTestId('window-77-2');
    expect(second.textContent).toContain('Card $2.40, refunded');
    expect(second.textContent).toContain('test_re_2');
    expect(screen.getByTestId('refund-77').textContent).toBe('Refunded $2.40');
    // A driver cannot verify cash.
    expect(screen.queryByTestId('verify-cash-77-1')).toBeNull();
  });

  it('toasts a decline with the server text and the refund on its own line, also in the inbox', async () => {
    localStorage.setItem('parkmate.token', 'jwt.for.dana');
    localStorage.setItem('parkmate.user', JSON.stringify(driver));
    window.history.replaceState(null, '', '/bookings/77');
    vi.mocked(fetch).mockImplementation((url) => {
      if (url === '/api/me') return json(driver);
      if (url === '/api/bookings/77') return json(booking);
      if (typeof url === 'string' && url.startsWith('/api/inbox?')) {
        return json({
          items: [
            {
              id: 9,
              level: 'warning',
              event: 'booking_declined',
              message: 'Admin declined your booking request',
              data: { booking_id: 77, refund_cents: 360 },
              created_at: new Date().toISOString(),
              read: false,
            },
          ],
          next_before: null,
          unread_count: 1,
        });
      }
      return json({ code: 'not_found', message: 'nope' }, 404);
    });
    render(<App />);
    await waitFor(() => expect(FakeWebSocket.instances.length).toBe(1));
    const ws = FakeWebSocket.last;
    act(() => {
      ws.open();
      ws.hello({ unread_count: 0 });
      ws.notification(9, {
        level: 'warning',
        event: 'booking_declined',
        message: 'Admin declined your booking request',
        data: { booking_id: 77, refund_cents: 360 },
      });
    });
    const message = await screen.findByText('Admin declined your booking request', { selector: '.pm-toast__message' });
    const toast = message.closest('[data-testid="toast"]') as HTMLElement;
    expect(toast.querySelector('.pm-toast__detail')?.textContent).toBe('Refunded $3.60');

    fireEvent.click(screen.getByTestId('bell'));
    expect((await screen.findByTestId('inbox-refund-9')).textContent).toBe('Refunded $3.60');
  });

  it('refreshes on a silent lot_activity notification without a toast', async () => {
    localStorage.setItem('parkmate.token', 'jwt.for.dana');
    localStorage.setItem('parkmate.user', JSON.stringify(driver));
    window.history.replaceState(null, '', '/bookings/77');
    render(<App />);
    await screen.findByTestId('window-77-1');
    const loads = () => vi.mocked(fetch).mock.calls.filter(([u]) => u === '/api/bookings/77').length;
    const before = loads();
    await waitFor(() => expect(FakeWebSocket.instances.length).toBe(1));
    const ws = FakeWebSocket.last;
    act(() => {
      ws.open();
      ws.hello({ unread_count: 0 });
      ws.notification(12, { level: 'info', event: 'lot_activity', message: 'Booking #77 at Central: approved', data: { booking_id: 77 } });
    });
    await waitFor(() => expect(loads()).toBeGreaterThan(before));
    expect(screen.queryByText('Booking #77 at Central: approved', { selector: '.pm-toast__message' })).toBeNull();
  });

  it("lets the lot's owner verify the cash of one window", async () => {
    const changed = vi.fn<(b: Booking) => void>();
    render(
      <ul>
        <BookingRow b={booking} canVerifyCash onChanged={changed} />
      </ul>,
    );
    // The row's own button verifies the oldest unverified window; the list names each one.
    expect(screen.getByTestId('verify-cash-77')).toBeTruthy();
    expect(screen.queryByTestId('verify-cash-77-2')).toBeNull();
    fireEvent.click(screen.getByTestId('verify-cash-77-1'));
    await waitFor(() => expect(changed).toHaveBeenCalled());
    expect(posts).toEqual([{ url: '/api/bookings/77/verify-cash', body: { window: 1 } }]);
    expect(changed.mock.calls[0][0].windows[0].payment_status).toBe('paid');
  });
});
