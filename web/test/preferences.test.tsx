// The person's in-app preference applied by the web client (docs/push.md): a kind turned off in
// /settings shows no toast and sends no `ack` (so the server may push it), while the inbox keeps
// it; and the settings page saves only what differs from the defaults. The whole app in jsdom
// with a stubbed fetch and the fake WebSocket, as app.test.tsx.
import { act, cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { App } from '../src/App';
import type { PreferencesAnswer } from '../src/app/api';
import { eventsToSave } from '../src/pages/Settings';
import { FakeWebSocket } from './fakeWebSocket';

const driver = { id: 42, name: 'Dana Driver', email: 'driver@parkmate.test', role: 'user' };
const DEFAULTS = { push_off_by_default: ['lot_activity'], urgent: ['booking_expiring', 'booking_expired'] };

function json(body: unknown, status = 200): Promise<Response> {
  return Promise.resolve(new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } }));
}

let prefs: PreferencesAnswer;
let calls: Array<{ method: string; url: string; body?: unknown }>;

beforeEach(() => {
  localStorage.clear();
  localStorage.setItem('parkmate.token', 'jwt.for.dana');
  localStorage.setItem('parkmate.user', JSON.stringify(driver));
  FakeWebSocket.reset();
  vi.stubGlobal('WebSocket', FakeWebSocket);
  prefs = { events: [], quiet_hours: null, ...DEFAULTS };
  calls = [];
  vi.stubGlobal(
    'fetch',
    vi.fn((url: string, init: RequestInit = {}) => {
      const method = init.method ?? 'GET';
      const body = typeof init.body === 'string' ? (JSON.parse(init.body) as unknown) : undefined;
      calls.push({ method, url, body });
      if (url === '/api/me') return json(driver);
      if (url === '/api/lots') return json({ items: [] });
      if (url === '/api/push/preferences' && method === 'GET') return json(prefs);
      if (url === '/api/push/preferences' && method === 'PUT') {
        prefs = { ...(body as Pick<PreferencesAnswer, 'events' | 'quiet_hours'>), ...DEFAULTS };
        return json(prefs);
      }
      if (url.startsWith('/api/inbox?')) {
        const at = new Date().toISOString();
        return json({
          items: [
            { id: 32, level: 'success', event: 'car_wash_completed', message: 'Your car wash service completed', data: {}, created_at: at, read: false },
            { id: 31, level: 'success', event: 'booking_renewed', message: 'Booking renewed successfully!', data: {}, created_at: at, read: false },
          ],
          next_before: null,
          unread_count: 2,
        });
      }
      return json({ code: 'not_found', message: 'nope' }, 404);
    }),
  );
});

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

/** Lets the preferences request answer (a few macrotasks: the body is a stream) and its state update render. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await act(() => new Promise((r) => setTimeout(r, 0)));
}

function openSocket(): FakeWebSocket {
  const ws = FakeWebSocket.last;
  act(() => {
    ws.open();
    ws.hello();
  });
  return ws;
}

const toastTexts = () => [...document.querySelectorAll('.pm-toast__message')].map((el) => el.textContent);
const acks = (ws: FakeWebSocket) => ws.sent.filter((f) => f.includes('"ack"'));

describe('in-app preference', () => {
  it('a kind with in_app off: no toast and no ack; the inbox still lists it; other kinds are toasted and acked', async () => {
    prefs.events = [{ event: 'booking_renewed', in_app: false, push: true }];
    window.history.replaceState(null, '', '/lots');
    render(<App />);
    await waitFor(() => expect(calls.some((c) => c.url === '/api/push/preferences')).toBe(true));
    await waitFor(() => expect(FakeWebSocket.instances.length).toBe(1));
    await settle();
    const ws = openSocket();

    act(() => ws.notification(31, { level: 'success', event: 'booking_renewed', message: 'Booking renewed successfully!' }));
    act(() => ws.notification(32, { level: 'success', event: 'car_wash_completed', message: 'Your car wash service completed' }));
    await screen.findByText('Your car wash service completed', { selector: '.pm-toast__message' });
    expect(toastTexts()).toEqual(['Your car wash service completed']);
    expect(acks(ws)).toEqual(['{"type":"ack","id":32}']);

    fireEvent.click(screen.getByTestId('bell'));
    expect((await screen.findByTestId('inbox-item-31')).textContent).toContain('Booking renewed successfully!');
  });

  it('the settings page saves only what differs from the defaults, and the app applies it without a reload', async () => {
    window.history.replaceState(null, '', '/settings');
    render(<App />);
    // jsdom has no service workers: the device part says so instead of offering a switch that fails.
    const status = await screen.findByTestId('push-status');
    await waitFor(() => expect(status.dataset.state).toBe('unsupported'));
    expect(screen.getByTestId<HTMLInputElement>('push-toggle').disabled).toBe(true);

    const inApp = await screen.findByTestId<HTMLInputElement>('pref-booking_renewed-in-app');
    expect(inApp.checked).toBe(true);
    // Urgent kinds say they are pushed through quiet hours.
    expect(screen.getByTestId('pref-booking_expiring').textContent).toContain('also during quiet hours');
    fireEvent.click(inApp);
    fireEvent.click(screen.getByTestId('quiet-on'));
    fireEvent.change(screen.getByTestId('quiet-start'), { target: { value: '21:30' } });
    fireEvent.click(screen.getByTestId('prefs-save'));
    await waitFor(() => expect(screen.getByTestId('prefs-status').textContent).toBe('Saved.'));
    // An edit after the save is not saved yet: the status says nothing until the next save.
    fireEvent.change(screen.getByTestId('quiet-end'), { target: { value: '06:30' } });
    expect(screen.getByTestId('prefs-status').textContent).toBe('');
    fireEvent.change(screen.getByTestId('quiet-end'), { target: { value: '07:00' } });

    const put = calls.find((c) => c.method === 'PUT' && c.url === '/api/push/preferences');
    expect(put?.body).toEqual({
      events: [{ event: 'booking_renewed', in_app: false, push: true }],
      quiet_hours: { time_zone: Intl.DateTimeFormat().resolvedOptions().timeZone, start: '21:30', end: '07:00' },
    });

    await waitFor(() => expect(FakeWebSocket.instances.length).toBe(1));
    const ws = openSocket();
    act(() => ws.notification(31, { level: 'success', event: 'booking_renewed', message: 'Booking renewed successfully!' }));
    expect(toastTexts()).toEqual([]);
    expect(acks(ws)).toEqual([]);
  });
});

describe('eventsToSave', () => {
  it('keeps only choices that differ from the defaults (lot_activity is push-off by default)', () => {
    const choices = {
      booking_renewed: { in_app: true, push: true },
      renewal_failed: { in_app: true, push: false },
      lot_activity: { in_app: true, push: false },
      custom: { in_app: false, push: true },
    };
    expect(eventsToSave(choices, DEFAULTS)).toEqual([
      { event: 'renewal_failed', in_app: true, push: false },
      { event: 'custom', in_app: false, push: true },
    ]);
    expect(eventsToSave({ lot_activity: { in_app: true, push: true } }, DEFAULTS)).toEqual([
      { event: 'lot_activity', in_app: true, push: true },
    ]);
  });
});
