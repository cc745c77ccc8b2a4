/**
 * NotificationClient: socket lifecycle, backoff, frame dispatch, resume and acks, one case each.
 * Over 500 lines on purpose: a flat list of independent cases over one fake socket and clock.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { NotificationClient } from '../src/notifications/client';
import type { NotificationClientOptions, NotificationState } from '../src/notifications/types';
import type { Notification } from '../src/notifications/protocol';
import { lastSeenKey, loadLastSeen, SeenIds } from '../src/notifications/resume';
import { FakeWebSocket, MemoryStore } from './fakeWebSocket';

const TOKEN = 'aaa.bbb.ccc';
/** Every client a test made, stopped after it even when an assertion failed half-way, so a
 *  leftover client's window listeners never reconnect during a later test. */
const clients: NotificationClient[] = [];

function setup(extra: Partial<NotificationClientOptions> = {}, store = new MemoryStore()) {
  const toasts: Array<{ n: Notification; replayed: boolean }> = [];
  const states: NotificationState[] = [];
  const opts: NotificationClientOptions = {
    token: TOKEN,
    wsBase: 'ws://parkmate.test',
    apiBase: '/api',
    storage: store,
    WebSocketImpl: FakeWebSocket,
    random: () => 0.5,
    toast: (n, info) => toasts.push({ n, replayed: info.replayed }),
    ...extra,
  };
  const client = new NotificationClient(42, () => opts, (s) => states.push(s));
  clients.push(client);
  return { client, toasts, states, store, opts, state: () => client.snapshot };
}

beforeEach(() => {
  FakeWebSocket.reset();
  vi.useFakeTimers();
});
afterEach(() => {
  for (const c of clients.splice(0)) c.stop();
  vi.useRealTimers();
});

describe('connecting', () => {
  it('offers the token as a sub-protocol and never puts it in the URL', () => {
    const { client, state } = setup();
    client.start();
    const ws = FakeWebSocket.last;
    expect(ws.url).toBe('ws://parkmate.test/ws/notifications/42/');
    expect(ws.protocols).toEqual(['parkmate.v1', `bearer.${TOKEN}`]);
    expect(ws.url).not.toContain(TOKEN);
    expect(state().status).toBe('connecting');
    ws.open();
    ws.hello({ unread_count: 3 });
    expect(state().status).toBe('open');
    expect(state().unreadCount).toBe(3);
    client.stop();
    expect(ws.closedByClient?.code).toBe(1000);
  });

  it('takes a plain options object, the bases defaulting to the page origin and /api', () => {
    // How a page without React uses it: no function, no wsBase/apiBase, no listener.
    const client = new NotificationClient(42, { token: TOKEN, storage: new MemoryStore(), WebSocketImpl: FakeWebSocket });
    clients.push(client);
    client.start();
    const ws = FakeWebSocket.last;
    const origin = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}`;
    expect(ws.url).toBe(`${origin}/ws/notifications/42/`);
    expect(ws.protocols).toEqual(['parkmate.v1', `bearer.${TOKEN}`]);
    ws.open();
    ws.hello({ unread_count: 2 });
    expect(client.snapshot.status).toBe('open');
    expect(client.snapshot.unreadCount).toBe(2);
  });

  it('tracks unread_count frames and ignores garbage frames', () => {
    const { client, state } = setup();
    client.start();
    const ws = FakeWebSocket.last;
    ws.open();
    ws.hello();
    ws.receive({ type: 'unread_count', count: 9 });
    ws.receive('not json');
    ws.receive({ type: 'mystery' });
    ws.receive({ type: 'error', code: 'invalid_json', message: 'x' });
    expect(state().unreadCount).toBe(9);
    expect(state().status).toBe('open');
    client.stop();
  });
});

describe('resume and dedupe', () => {
  it('remembers the last id per user and resumes with since after a drop', () => {
    const { client, store, state } = setup();
    client.start();
    const ws = FakeWebSocket.last;
    ws.open();
    ws.hello();
    ws.notification(17);
    ws.notification(18);
    expect(store.getItem(lastSeenKey(42))).toBe('18');
    expect(state().notifications.map((n) => n.id)).toEqual([18, 17]);

    ws.serverClose(1012, 'server restarting');
    expect(state().status).toBe('reconnecting');
    expect(state().retryInSeconds).toBeGreaterThan(0);
    vi.advanceTimersByTime(5000);
    expect(FakeWebSocket.instances).toHaveLength(2);
    expect(FakeWebSocket.last.url).toBe('ws://parkmate.test/ws/notifications/42/?since=18');
    client.stop();
  });

  it('resumes after a reload from localStorage', () => {
    const store = new MemoryStore();
    store.setItem(lastSeenKey(42), '123');
    const { client } = setup({}, store);
    client.start();
    expect(FakeWebSocket.last.url).toBe('ws://parkmate.test/ws/notifications/42/?since=123');
    client.stop();
  });

  it('keeps users apart and ignores junk in storage', () => {
    const store = new MemoryStore();
    store.setItem(lastSeenKey(7), '99');
    store.setItem(lastSeenKey(8), 'oops');
    expect(loadLastSeen(7, store)).toBe(99);
    expect(loadLastSeen(8, store)).toBeNull();
    expect(loadLastSeen(42, store)).toBeNull();
  });

  it('never delivers or toasts a notification twice across a replay overlap', () => {
    const { client, toasts, state } = setup();
    client.start();
    let ws = FakeWebSocket.last;
    ws.open();
    ws.hello();
    ws.notification(1);
    ws.notification(2);
    ws.notification(2); // duplicate on the same socket
    ws.serverClose(1006);
    vi.advanceTimersByTime(5000);
    ws = FakeWebSocket.last;
    ws.open();
    ws.hello({ resume_from: 2 });
    // A misbehaving overlap: the server replays 2 again, then the new 3.
    ws.notification(2);
    ws.notification(3);
    ws.receive({ type: 'replayed', count: 2, last_id: 3 });
    ws.notification(3);
    ws.notification(4);
    expect(state().notifications.map((n) => n.id)).toEqual([4, 3, 2, 1]);
    expect(toasts.map((t) => t.n.id)).toEqual([1, 2, 3, 4]);
    expect(toasts.find((t) => t.n.id === 3)?.replayed).toBe(true);
    expect(toasts.find((t) => t.n.id === 4)?.replayed).toBe(false);
    client.stop();
  });

  it("resumes from the first hello's newest_id before any notification arrived (0 included)", () => {
    for (const newest of [17, 0]) {
      const { client, toasts } = setup();
      client.start();
      let ws = FakeWebSocket.last;
      expect(ws.url).toBe('ws://parkmate.test/ws/notifications/42/');
      ws.open();
      ws.hello({ newest_id: newest });
      expect(client.lastSeenId).toBe(newest);
      ws.serverClose(1006); // the network dropped before anything arrived
      vi.advanceTimersByTime(5000);
      ws = FakeWebSocket.last;
      expect(ws.url).toBe(`ws://parkmate.test/ws/notifications/42/?since=${newest}`);
      ws.open();
      ws.hello({ resume_from: newest, newest_id: newest + 3 });
      for (const id of [newest + 1, newest + 2, newest + 3]) ws.notification(id);
      ws.receive({ type: 'replayed', count: 3, last_id: newest + 3 });
      expect(toasts.map((t) => [t.n.id, t.replayed])).toEqual([
        [newest + 1, true],
        [newest + 2, true],
        [newest + 3, true],
      ]);
      // A later hello (with `since`) never moves the cursor: the notifications did.
      expect(client.lastSeenId).toBe(newest + 3);
      client.stop();
    }
  });

  it('treats ids at or below the resumed id as already seen', () => {
    const seen = new SeenIds(10);
    expect(seen.add(9)).toBe(false);
    expect(seen.add(10)).toBe(false);
    expect(seen.add(11)).toBe(true);
    expect(seen.add(11)).toBe(false);
    expect(seen.lastId).toBe(11);
    // Out of order above the floor is still delivered once (never lost).
    expect(seen.add(13)).toBe(true);
    expect(seen.add(12)).toBe(true);
    expect(seen.add(12)).toBe(false);
    expect(seen.lastId).toBe(13);
  });

  it('holds replayed toasts until `replayed`, then shows only the newest few', () => {
    const store = new MemoryStore();
    store.setItem(lastSeenKey(42), '10');
    const { client, toasts } = setup({ maxReplayToasts: 2 }, store);
    client.start();
    const ws = FakeWebSocket.last;
    ws.open();
    ws.hello({ resume_from: 10 });
    for (const id of [11, 12, 13, 14, 15]) ws.notification(id);
    expect(toasts).toHaveLength(0);
    ws.receive({ type: 'replayed', count: 5, last_id: 15 });
    expect(toasts.map((t) => t.n.id)).toEqual([14, 15]);
    client.stop();
  });
});

describe('reconnect policy in action', () => {
  it('stops on 4001 and reports unauthorized', () => {
    const onUnauthorized = vi.fn();
    const { client, state } = setup({ onUnauthorized });
    client.start();
    FakeWebSocket.last.open();
    FakeWebSocket.last.serverClose(4001, 'token expired');
    expect(state().status).toBe('unauthorized');
    expect(onUnauthorized).toHaveBeenCalledWith('token_expired');
    vi.advanceTimersByTime(120_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    client.stop();
  });

  it('stops on 4009 without retrying', () => {
    const { client, state } = setup();
    client.start();
    FakeWebSocket.last.open();
    FakeWebSocket.last.serverClose(4009);
    expect(state().status).toBe('offline');
    vi.advanceTimersByTime(120_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    window.dispatchEvent(new Event('online'));
    expect(FakeWebSocket.instances).toHaveLength(1);
    client.stop();
  });

  it('asks checkAuth after a refused handshake; a bad token means unauthorized', async () => {
    const onUnauthorized = vi.fn();
    const checkAuth = vi.fn().mockResolvedValue(false);
    const { client, state } = setup({ checkAuth, onUnauthorized });
    client.start();
    FakeWebSocket.last.refuse();
    await vi.runAllTimersAsync();
    expect(checkAuth).toHaveBeenCalledTimes(1);
    expect(state().status).toBe('unauthorized');
    expect(onUnauthorized).toHaveBeenCalledWith('handshake_refused');
    expect(FakeWebSocket.instances).toHaveLength(1);
    client.stop();
  });

  it('retries with growing backoff when checkAuth says the token is fine (server down)', async () => {
    const checkAuth = vi.fn().mockResolvedValue(true);
    const { client, state } = setup({ checkAuth, random: () => 0.999 });
    client.start();
    FakeWebSocket.last.refuse();
    await vi.advanceTimersByTimeAsync(0);
    expect(state().status).toBe('reconnecting');
    expect(state().retryInSeconds).toBe(5);
    await vi.advanceTimersByTimeAsync(4000);
    expect(state().retryInSeconds).toBe(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(FakeWebSocket.instances).toHaveLength(2);
    FakeWebSocket.last.refuse();
    await vi.advanceTimersByTimeAsync(0);
    expect(state().retryInSeconds).toBe(10);
    client.stop();
  });

  it('retries when checkAuth cannot tell (network error)', async () => {
    const checkAuth = vi.fn().mockRejectedValue(new TypeError('Failed to fetch'));
    const { client } = setup({ checkAuth });
    client.start();
    FakeWebSocket.last.refuse();
    await vi.advanceTimersByTimeAsync(5000);
    expect(FakeWebSocket.instances).toHaveLength(2);
    client.stop();
  });

  it('reconnects at once when the browser comes back online', () => {
    const { client, state } = setup({ random: () => 0.999 });
    client.start();
    FakeWebSocket.last.open();
    FakeWebSocket.last.serverClose(1006);
    expect(state().status).toBe('reconnecting');
    window.dispatchEvent(new Event('online'));
    expect(FakeWebSocket.instances).toHaveLength(2);
    client.stop();
  });

  it('waits for `online` instead of retrying while the browser is offline', () => {
    const { client, state } = setup();
    client.start();
    FakeWebSocket.last.open();
    const onLine = vi.spyOn(navigator, 'onLine', 'get').mockReturnValue(false);
    window.dispatchEvent(new Event('offline'));
    FakeWebSocket.last.serverClose(1006);
    expect(state().status).toBe('offline');
    vi.advanceTimersByTime(120_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    onLine.mockReturnValue(true);
    window.dispatchEvent(new Event('online'));
    expect(FakeWebSocket.instances).toHaveLength(2);
    client.stop();
  });

  it('reconnects at once when the tab becomes visible again', () => {
    const { client } = setup({ random: () => 0.999 });
    client.start();
    FakeWebSocket.last.open();
    FakeWebSocket.last.serverClose(1001);
    document.dispatchEvent(new Event('visibilitychange'));
    expect(FakeWebSocket.instances).toHaveLength(2);
    client.stop();
  });

  it('pings every heartbeat and drops a socket that stopped answering', () => {
    const { client, state } = setup();
    client.start();
    const ws = FakeWebSocket.last;
    ws.open();
    ws.hello({ heartbeat_ms: 1000 });
    vi.advanceTimersByTime(1000);
    expect(ws.sent).toEqual(['{"type":"ping"}']);
    ws.receive({ type: 'pong' });
    vi.advanceTimersByTime(1000);
    expect(ws.sent).toHaveLength(2);
    expect(state().status).toBe('open');
    vi.advanceTimersByTime(1000); // no pong for the second ping
    expect(ws.closedByClient?.code).toBe(4000);
    expect(state().status).toBe('reconnecting');
    client.stop();
  });

  it('acks a live notification it toasted while the tab is visible, never a replayed one', () => {
    const { client, toasts } = setup();
    client.start();
    let ws = FakeWebSocket.last;
    ws.open();
    ws.hello();
    ws.notification(17);
    expect(ws.sent).toEqual(['{"type":"ack","id":17}']);
    const hidden = vi.spyOn(document, 'visibilityState', 'get').mockReturnValue('hidden');
    ws.notification(18);
    expect(ws.sent).toHaveLength(1);
    hidden.mockRestore();
    // Replayed after a reconnect: toasted, but it may have been pushed meanwhile; no ack.
    ws.serverClose(1006);
    vi.advanceTimersByTime(5000);
    ws = FakeWebSocket.last;
    ws.open();
    ws.hello({ resume_from: 18 });
    ws.notification(19);
    ws.receive({ type: 'replayed', count: 1, last_id: 19 });
    expect(toasts.find((t) => t.n.id === 19)?.replayed).toBe(true);
    expect(ws.sent.filter((f) => f.includes('ack'))).toEqual([]);
    client.stop();
  });

  it('does not ack what its toaster did not show (returned false), but keeps it in the list', () => {
    // The app's toaster returns false for a kind whose in-app notifications are off: no toast, so
    // not seen, so the server may still push it (docs/push.md).
    const { client, state } = setup({ toast: (n) => n.event !== 'booking_renewed' });
    client.start();
    const ws = FakeWebSocket.last;
    ws.open();
    ws.hello();
    ws.notification(21, { event: 'booking_renewed' });
    expect(ws.sent).toEqual([]);
    expect(state().notifications.map((n) => n.id)).toEqual([21]);
    ws.notification(22, { event: 'car_wash_completed' });
    expect(ws.sent).toEqual(['{"type":"ack","id":22}']);
    client.stop();
  });

  it('stop() leaves no timers and no further sockets', () => {
    const { client } = setup();
    client.start();
    FakeWebSocket.last.open();
    FakeWebSocket.last.serverClose(1006);
    client.stop();
    vi.advanceTimersByTime(120_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('one socket at a time', () => {
  /** A `checkAuth` whose answer the test gives, to hold the check pending across browser events. */
  function pendingCheck() {
    const answers: Array<(ok: boolean) => void> = [];
    const checkAuth = vi.fn(() => new Promise<boolean>((resolve) => answers.push(resolve)));
    return { checkAuth, answer: (ok: boolean) => answers.shift()?.(ok) };
  }

  it('online and visibilitychange during a pending auth check open no socket; the answer opens one', async () => {
    const { checkAuth, answer } = pendingCheck();
    const { client, state } = setup({ checkAuth, random: () => 0.999 });
    client.start();
    FakeWebSocket.last.refuse();
    await vi.advanceTimersByTimeAsync(0);
    expect(checkAuth).toHaveBeenCalledTimes(1);

    window.dispatchEvent(new Event('online'));
    document.dispatchEvent(new Event('visibilitychange'));
    window.dispatchEvent(new Event('online'));
    expect(FakeWebSocket.instances).toHaveLength(1);

    answer(true);
    await vi.advanceTimersByTimeAsync(0);
    // The network came back while the check ran: connect at once, without the backoff...
    expect(FakeWebSocket.instances).toHaveLength(2);
    expect(state().status).toBe('reconnecting');
    FakeWebSocket.last.open();
    expect(state().status).toBe('open');
    // ...and never a second socket behind the first one's back.
    await vi.advanceTimersByTimeAsync(120_000);
    expect(FakeWebSocket.instances).toHaveLength(2);
    expect(FakeWebSocket.alive).toEqual([FakeWebSocket.last]);
    expect(FakeWebSocket.maxAlive).toBe(1);
    client.stop();
  });

  it('an online event during a pending auth check that refuses the token leaves no socket behind', async () => {
    const { checkAuth, answer } = pendingCheck();
    const onUnauthorized = vi.fn();
    const { client, state } = setup({ checkAuth, onUnauthorized });
    client.start();
    FakeWebSocket.last.refuse();
    await vi.advanceTimersByTimeAsync(0);
    window.dispatchEvent(new Event('online'));
    answer(false);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(state().status).toBe('unauthorized');
    expect(onUnauthorized).toHaveBeenCalledTimes(1);
    expect(FakeWebSocket.instances).toHaveLength(1);
    expect(FakeWebSocket.alive).toHaveLength(0);
    client.stop();
  });

  it('a visibilitychange during a pending auth check waits for the answer, then connects once', async () => {
    const { checkAuth, answer } = pendingCheck();
    const { client } = setup({ checkAuth, random: () => 0.999 });
    client.start();
    FakeWebSocket.last.refuse();
    await vi.advanceTimersByTimeAsync(0);
    document.dispatchEvent(new Event('visibilitychange'));
    await vi.advanceTimersByTimeAsync(1000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    answer(true);
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeWebSocket.instances).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(FakeWebSocket.instances).toHaveLength(2);
    expect(FakeWebSocket.maxAlive).toBe(1);
    client.stop();
  });

  it('a check that never answers counts as "don\'t know" after 10 s and retries with backoff', async () => {
    const checkAuth = vi.fn(() => new Promise<boolean>(() => {}));
    const { client, state } = setup({ checkAuth, random: () => 0 });
    client.start();
    FakeWebSocket.last.refuse();
    await vi.advanceTimersByTimeAsync(9_999);
    expect(FakeWebSocket.instances).toHaveLength(1);
    expect(state().status).toBe('reconnecting');
    await vi.advanceTimersByTimeAsync(1);
    expect(state().retryInSeconds).toBe(1); // the floor of the jitter window (250 ms)
    await vi.advanceTimersByTimeAsync(250);
    expect(FakeWebSocket.instances).toHaveLength(2);
    client.stop();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('stop() during a pending auth check ignores its answer', async () => {
    const { checkAuth, answer } = pendingCheck();
    const { client } = setup({ checkAuth });
    client.start();
    FakeWebSocket.last.refuse();
    await vi.advanceTimersByTimeAsync(0);
    client.stop();
    expect(vi.getTimerCount()).toBe(0);
    answer(true);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
  });

  it('never has two sockets alive, whatever the order of events (seeded random walks)', async () => {
    for (let seed = 1; seed <= 20; seed++) {
      FakeWebSocket.reset();
      let x = seed;
      const rand = () => {
        x = (x * 1103515245 + 12345) % 2147483648;
        return x / 2147483648;
      };
      const { checkAuth, answer } = pendingCheck();
      const onLine = vi.spyOn(navigator, 'onLine', 'get').mockReturnValue(true);
      const { client } = setup({ checkAuth, random: rand });
      client.start();
      for (let step = 0; step < 150; step++) {
        const ws = FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
        const alive = ws && ws.readyState !== FakeWebSocket.CLOSED;
        const ev = Math.floor(rand() * 9);
        switch (ev) {
          case 0:
            window.dispatchEvent(new Event('online'));
            break;
          case 1:
            document.dispatchEvent(new Event('visibilitychange'));
            break;
          case 2:
            if (alive && ws.readyState === FakeWebSocket.CONNECTING) ws.open();
            break;
          case 3:
            if (alive && ws.readyState === FakeWebSocket.CONNECTING) ws.refuse();
            break;
          case 4:
            if (alive && ws.readyState === FakeWebSocket.OPEN) ws.serverClose([1001, 1006, 1012, 4008][Math.floor(rand() * 4)]);
            break;
          case 5:
            answer(rand() < 0.9);
            break;
          case 6:
            client.reconnectNow(rand() < 0.5);
            break;
          case 7: {
            const offline = rand() < 0.3;
            onLine.mockReturnValue(!offline);
            window.dispatchEvent(new Event(offline ? 'offline' : 'online'));
            break;
          }
          default:
            await vi.advanceTimersByTimeAsync(Math.floor(rand() * 6000));
        }
        await vi.advanceTimersByTimeAsync(0);
        expect(FakeWebSocket.alive.length, `seed ${seed}, step ${step}`).toBeLessThanOrEqual(1);
      }
      expect(FakeWebSocket.maxAlive, `seed ${seed}`).toBe(1);
      client.stop();
      expect(FakeWebSocket.alive).toHaveLength(0);
      onLine.mockRestore();
    }
  });
});

describe('read state', () => {
  it('marks read over HTTP with the bearer token and takes the new count', async () => {
    const fetchImpl = vi.fn(() => Promise.resolve(new Response(JSON.stringify({ unread_count: 1 }), { status: 200 })));
    const { client, state } = setup({ fetchImpl: fetchImpl as unknown as typeof fetch });
    client.start();
    FakeWebSocket.last.open();
    FakeWebSocket.last.hello({ unread_count: 2 });
    FakeWebSocket.last.notification(5);
    await client.markRead(5);
    expect(fetchImpl).toHaveBeenCalledWith('/api/inbox/5/read', expect.objectContaining({ method: 'POST' }));
    const init = (fetchImpl.mock.calls[0] as unknown[])[1] as RequestInit;
    expect((init.headers as Record<string, string>).Authorization).toBe(`Bearer ${TOKEN}`);
    expect(state().unreadCount).toBe(1);
    expect(state().notifications[0].read).toBe(true);
    client.stop();
  });
});
