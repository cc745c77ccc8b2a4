// Smoke test of the whole app in jsdom: stubbed fetch + the fake WebSocket. Checks the wiring the
// end-to-end suite will rely on (test ids, demo login, live badge, inbox, connection indicator).
import { act, cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { App } from '../src/App';
import { FakeWebSocket } from './fakeWebSocket';

const driver = { id: 42, name: 'Dana Driver', email: 'driver@parkmate.test', role: 'user' };
const lot = {
  id: 3,
  owner_id: 7,
  owner_name: 'Olga Owner',
  name: 'Central',
  price_per_hour_cents: 250,
  employees: [],
  slots: [
    { id: 11, number: 1, car_wash: true, occupied: false },
    { id: 12, number: 2, car_wash: false, occupied: true },
  ],
};

function json(body: unknown, status = 200): Promise<Response> {
  return Promise.resolve(new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } }));
}

let calls: Array<{ method: string; url: string; body?: unknown; auth?: string | null }>;

beforeEach(() => {
  localStorage.clear();
  window.history.replaceState(null, '', '/');
  FakeWebSocket.reset();
  vi.stubGlobal('WebSocket', FakeWebSocket);
  calls = [];
  vi.stubGlobal(
    'fetch',
    vi.fn((url: string, init: RequestInit = {}) => {
      const method = init.method ?? 'GET';
      const headers = (init.headers ?? {}) as Record<string, string>;
      calls.push({ method, url, body: typeof init.body === 'string' ? JSON.parse(init.body) : undefined, auth: headers.Authorization ?? null });
      if (url === '/api/auth/demo-accounts') return json({ accounts: [{ ...driver, password: 'pw' }] });
      if (url === '/api/auth/login') return json({ token: 'jwt.for.dana', user: driver });
      if (url === '/api/me') return json(driver);
      if (url === '/api/lots') return json({ items: [lot] });
      if (url.startsWith('/api/inbox?')) {
        return json({
          items: [
            { id: 5, level: 'success', event: 'booking_renewed', message: 'Booking renewed successfully!', data: {}, created_at: new Date().toISOString(), read: false },
          ],
          next_before: null,
          unread_count: 1,
        });
      }
      if (url === '/api/inbox/5/read') return json({ unread_count: 0 });
      return json({ code: 'not_found', message: 'nope' }, 404);
    }),
  );
});

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe('app smoke', () => {
  // First: api.ts keeps its token provider in module state, which a previous test would leave wired.
  it('keeps the session across a reload: the first requests already carry the token', async () => {
    localStorage.setItem('parkmate.token', 'jwt.for.dana');
    localStorage.setItem('parkmate.user', JSON.stringify(driver));
    window.history.replaceState(null, '', '/lots');
    render(<App />);
    await screen.findByTestId('lot-3');
    await waitFor(() => expect(calls.some((c) => c.url === '/api/me')).toBe(true));
    const authed = calls.filter((c) => c.url !== '/api/auth/demo-accounts');
    expect(authed.length).toBeGreaterThan(0);
    for (const c of authed) expect(c.auth, `${c.method} ${c.url}`).toBe('Bearer jwt.for.dana');
    expect(window.location.pathname).toBe('/lots');
    expect(localStorage.getItem('parkmate.token')).toBe('jwt.for.dana');
  });

  it('logs in with a demo account, connects, shows the badge, the toast and the inbox', async () => {
    render(<App />);
    const demo = await screen.findByTestId('demo-account-driver@parkmate.test');
    fireEvent.click(demo);
    await screen.findByTestId('lot-3');
    expect(window.location.pathname).toBe('/lots');
    expect(localStorage.getItem('parkmate.token')).toBe('jwt.for.dana');
    expect(calls.find((c) => c.url === '/api/lots')?.auth).toBe('Bearer jwt.for.dana');

    // One socket, token in the sub-protocol only.
    await waitFor(() => expect(FakeWebSocket.instances.length).toBe(1));
    const ws = FakeWebSocket.last;
    expect(ws.url).toBe('ws://localhost:3000/ws/notifications/42/');
    expect(ws.protocols).toEqual(['parkmate.v1', 'bearer.jwt.for.dana']);
    expect(screen.getByTestId('connection-status').textContent).toContain('Connecting');
    act(() => {
      ws.open();
      ws.hello({ unread_count: 0 });
    });
    expect(screen.getByTestId('connection-status').textContent).toContain('Connected');
    expect(screen.queryByTestId('unread-badge')).toBeNull();

    act(() => {
      ws.notification(5, { level: 'success', event: 'booking_renewed', message: 'Booking renewed successfully!' });
      ws.receive({ type: 'unread_count', count: 1 });
    });
    expect(screen.getByTestId('unread-badge').textContent).toBe('1');
    const toast = await screen.findByText('Booking renewed successfully!', { selector: '.pm-toast__message' });
    expect(toast.closest('.pm-toast--success')).not.toBeNull();

    fireEvent.click(screen.getByTestId('bell'));
    await screen.findByTestId('inbox-item-5');
    fireEvent.click(screen.getByTestId('inbox-mark-read-5'));
    await waitFor(() => expect(screen.queryByTestId('unread-badge')).toBeNull());
    expect(calls.some((c) => c.method === 'POST' && c.url === '/api/inbox/5/read')).toBe(true);
    expect(screen.getByTestId('inbox-item-5').dataset.read).toBe('true');

    // The slot with a car wash offers the checkbox and the test cards.
    fireEvent.click(screen.getByTestId('slot-11'));
    expect(screen.getByTestId('booking-car-wash')).toBeTruthy();
    fireEvent.click(screen.getByTestId('booking-payment-card'));
    fireEvent.click(screen.getByTestId('booking-test-card-4242424242424242'));
    expect(screen.getByTestId<HTMLInputElement>('booking-card-number').value).toBe('4242424242424242');
    expect(screen.getByTestId<HTMLButtonElement>('slot-12').disabled).toBe(true);

    // Server restart: the indicator shows the countdown.
    act(() => ws.serverClose(1012));
    expect(screen.getByTestId('connection-status').textContent).toMatch(/Reconnecting in \d+ s/);
  });

  it('hides the demo list on 404 and redirects to /login when signed out', async () => {
    vi.mocked(fetch).mockImplementation(() => json({ code: 'not_found', message: 'x' }, 404));
    window.history.replaceState(null, '', '/owner');
    render(<App />);
    await screen.findByTestId('login-email');
    expect(window.location.pathname).toBe('/login');
    await waitFor(() => expect(vi.mocked(fetch).mock.calls.some(([u]) => u === '/api/auth/demo-accounts')).toBe(true));
    expect(screen.queryByTestId('demo-accounts')).toBeNull();
    expect(FakeWebSocket.instances).toHaveLength(0);
  });
});
