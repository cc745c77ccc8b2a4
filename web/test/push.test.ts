// push.ts, the browser's half of a subscription, against a stubbed browser (Notification,
// serviceWorker, PushManager) and a stubbed server: the order of the steps and what each failure
// leaves behind. The real browser and server are web/e2e/push.test.mjs.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { base64UrlToBytes, currentPushState, turnPushOff, turnPushOn } from '../src/app/push';

const KEY = 'BEl62iUYgUivxIkv69yViEuiBIa-Ib9-SkvMeAtA3LFgDzkrxZJjSgSnfckjBJuBkr3qBUYIHBQFLXYp5Nksh8U';
const OTHER_KEY = 'BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM';

let log: string[];
let serverAnswers: Record<string, number>;
let subscription: FakeSubscription | null;
let permission: NotificationPermission;

class FakeSubscription {
  constructor(
    readonly endpoint: string,
    readonly key: string,
  ) {}
  get options() {
    return { userVisibleOnly: true, applicationServerKey: base64UrlToBytes(this.key).buffer };
  }
  toJSON() {
    return { endpoint: this.endpoint, expirationTime: null, keys: { p256dh: 'p256', auth: 'auth' } };
  }
  unsubscribe() {
    log.push(`browser unsubscribe ${this.endpoint}`);
    subscription = null;
    return Promise.resolve(true);
  }
}

const pushManager = {
  getSubscription: () => Promise.resolve(subscription),
  subscribe: (opts: { applicationServerKey: Uint8Array }) => {
    const key = btoa(String.fromCharCode(...opts.applicationServerKey)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    log.push('browser subscribe');
    subscription = new FakeSubscription(`https://push.example/${log.length}`, key);
    return Promise.resolve(subscription);
  },
};
const registration = { pushManager };

beforeEach(() => {
  log = [];
  serverAnswers = {};
  subscription = null;
  permission = 'default';
  vi.stubGlobal('isSecureContext', true);
  vi.stubGlobal('PushManager', function PushManager() {});
  vi.stubGlobal('Notification', {
    get permission() {
      return permission;
    },
    requestPermission: () => {
      log.push('permission asked');
      permission = 'granted';
      return Promise.resolve(permission);
    },
  });
  Object.defineProperty(navigator, 'serviceWorker', {
    configurable: true,
    value: {
      register: (url: string, opts: { scope: string }) => {
        log.push(`register ${url} ${opts.scope}`);
        return Promise.resolve(registration);
      },
      ready: Promise.resolve(registration),
      getRegistration: () => Promise.resolve(registration),
    },
  });
  vi.stubGlobal(
    'fetch',
    vi.fn((url: string, init: RequestInit = {}) => {
      const method = init.method ?? 'GET';
      log.push(`${method} ${url}`);
      const status = serverAnswers[`${method} ${url}`] ?? 200;
      const body =
        status >= 400
          ? { code: status === 404 && url.endsWith('vapid-public-key') ? 'push_disabled' : 'nope', message: 'refused' }
          : url.endsWith('vapid-public-key')
            ? { public_key: KEY }
            : { id: 1 };
      return Promise.resolve(new Response(status === 204 ? null : JSON.stringify(body), { status }));
    }),
  );
});

afterEach(() => {
  vi.unstubAllGlobals();
  Reflect.deleteProperty(navigator, 'serviceWorker');
});

describe('push on this device', () => {
  it('on: permission first (the click is still a gesture), then the key, the worker at /, subscribe, post', async () => {
    expect(await turnPushOn()).toEqual({ kind: 'on', endpoint: subscription?.endpoint });
    expect(log).toEqual([
      'permission asked',
      'GET /api/push/vapid-public-key',
      'register /push-sw.js /',
      'browser subscribe',
      'POST /api/push/subscriptions',
    ]);
  });

  it('on: a subscription made with another key is replaced (it could never be pushed to)', async () => {
    subscription = new FakeSubscription('https://push.example/old', OTHER_KEY);
    await turnPushOn();
    expect(log).toContain('browser unsubscribe https://push.example/old');
    expect(log.indexOf('browser subscribe')).toBeGreaterThan(log.indexOf('browser unsubscribe https://push.example/old'));
    expect(subscription?.key).toBe(KEY);
  });

  it('on: when the server refuses it, the browser does not keep it', async () => {
    serverAnswers['POST /api/push/subscriptions'] = 409;
    await expect(turnPushOn()).rejects.toThrow('refused');
    expect(subscription).toBeNull();
    expect(log.at(-1)).toMatch(/^browser unsubscribe/);
  });

  it('on: push disabled on the server is its own state, and nothing is subscribed', async () => {
    serverAnswers['GET /api/push/vapid-public-key'] = 404;
    permission = 'granted';
    expect(await currentPushState()).toEqual({ kind: 'disabled' });
    await expect(turnPushOn()).rejects.toMatchObject({ code: 'push_disabled' });
    expect(log).not.toContain('browser subscribe');
  });

  it('off: the server forgets it first, then the browser; a server failure keeps both', async () => {
    permission = 'granted';
    subscription = new FakeSubscription('https://push.example/1', KEY);
    serverAnswers['DELETE /api/push/subscriptions'] = 500;
    await expect(turnPushOff()).rejects.toThrow();
    expect(subscription).not.toBeNull();

    serverAnswers['DELETE /api/push/subscriptions'] = 204;
    log = [];
    expect(await turnPushOff()).toEqual({ kind: 'off' });
    expect(log).toEqual(['DELETE /api/push/subscriptions', 'browser unsubscribe https://push.example/1']);
  });

  it('a subscription the browser still has is posted again on load (the server may have lost it)', async () => {
    permission = 'granted';
    subscription = new FakeSubscription('https://push.example/1', KEY);
    expect(await currentPushState()).toEqual({ kind: 'on', endpoint: 'https://push.example/1' });
    expect(log).toEqual(['POST /api/push/subscriptions']);
  });

  it('blocked notifications and a browser without push are their own states', async () => {
    permission = 'denied';
    expect(await currentPushState()).toEqual({ kind: 'denied' });
    Reflect.deleteProperty(navigator, 'serviceWorker');
    expect(await currentPushState()).toEqual({ kind: 'unsupported' });
  });
});
