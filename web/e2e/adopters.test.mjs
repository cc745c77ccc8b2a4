// What a team moving off the original Django Channels stack does, in Chromium against the real server:
//
// 1. The npm package. `npm pack` of @parkmate/notify (built from src/notifications), installed into
//    a fresh Vite app made here in a temporary directory (React, Vite and TypeScript from the
//    registry, nothing of web/ but the tarball). The app is type-checked against the package's
//    .d.ts and built by Vite; the server serves the build. Its React page shows a server
//    notification as a toast through useWebSocketNotifications + <NotificationToaster/>; its plain
//    page, with no React code of its own, through NotificationClient + mountNotificationToaster().
// 2. The original front end's handler: its `onmessage`, unchanged, on a socket that asks for the
//    Channels-compatible sub-protocol `parkmate.channels` (docs/protocol.md), shows exactly the toasts
//    the original consumer's frames showed.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Server, WAIT_MS, WEB_DIR, buildAll, launchBrowser, removeTempDir, tempDir } from './harness.mjs';

const DRIVER = 'dana@parkmate.test';

function run(cmd, args, opts) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5 * 60_000, ...opts });
  if (r.error) throw r.error;
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}\n${r.stdout}\n${r.stderr}`);
  }
  return r.stdout;
}

/** The same versions as web/ uses (web's lock file installed them), so the npm cache serves them. */
function versionOf(pkg) {
  return JSON.parse(fs.readFileSync(path.join(WEB_DIR, 'node_modules', pkg, 'package.json'), 'utf8')).version;
}

/**
 * `npm run notify:pack`: the package as it would be published. Returns the tarball's path
 * (E2E_NOTIFY_TARBALL: one scripts/test-all packed just before).
 */
function packPackage() {
  if (process.env.E2E_NOTIFY_TARBALL) return process.env.E2E_NOTIFY_TARBALL;
  run('npm', ['run', '--silent', 'notify:pack'], { cwd: WEB_DIR });
  const { version } = JSON.parse(fs.readFileSync(path.join(WEB_DIR, 'packages', 'notify', 'package.json'), 'utf8'));
  const tarball = path.join(WEB_DIR, 'dist-lib', `parkmate-notify-${version}.tgz`);
  assert.ok(fs.existsSync(tarball), `npm pack wrote no ${tarball}`);
  return tarball;
}

const APP_FILES = {
  'package.json': JSON.stringify({ name: 'fresh-vite-app', private: true, type: 'module' }, null, 2),
  'tsconfig.json': JSON.stringify(
    {
      compilerOptions: {
        target: 'ES2022',
        module: 'ESNext',
        moduleResolution: 'Bundler',
        lib: ['ES2022', 'DOM', 'DOM.Iterable'],
        strict: true,
        noEmit: true,
        // The package's declarations are checked too, not trusted.
        skipLibCheck: false,
        types: [],
      },
      include: ['src'],
    },
    null,
    2,
  ),
  'vite.config.js': `export default { build: { rolldownOptions: { input: ['index.html', 'plain.html'] } } };\n`,
  'index.html': `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>React page</title></head>
<body><div id="root"></div><script type="module" src="/src/main.ts"></script></body></html>
`,
  'plain.html': `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Plain page</title></head>
<body><p id="status" data-status="none">none</p><script type="module" src="/src/plain.ts"></script></body></html>
`,
  // No JSX, so the app needs no React plugin: what any Vite + React app has is enough.
  'src/main.ts': `import { createElement as h } from 'react';
import { createRoot } from 'react-dom/client';
import { NotificationToaster, useWebSocketNotifications, type Notification } from '@parkmate/notify';

const params = new URLSearchParams(location.hash.slice(1));
const userId = Number(params.get('user'));
const token = params.get('token');

function App() {
  const { status, notifications } = useWebSocketNotifications(userId, { token });
  return h(
    'main',
    null,
    h('p', { id: 'status', 'data-status': status }, status),
    h('ul', null, notifications.map((n: Notification) => h('li', { key: n.id }, n.level + ': ' + n.message))),
    h(NotificationToaster, null),
  );
}

createRoot(document.getElementById('root')!).render(h(App));
`,
  'src/plain.ts': `import { mountNotificationToaster, NotificationClient, type NotificationState } from '@parkmate/notify';

const params = new URLSearchParams(location.hash.slice(1));
const status = document.getElementById('status')!;
mountNotificationToaster();
const client = new NotificationClient(Number(params.get('user')), { token: params.get('token') ?? '' }, (s: NotificationState) => {
  status.dataset.status = s.status;
  status.textContent = s.status;
});
client.start();
`,
};

/** Writes the app, installs the tarball and its peers, type-checks and builds it. Returns dist/. */
function freshViteApp(dir, tarball) {
  for (const [name, text] of Object.entries(APP_FILES)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  const deps = ['react', 'react-dom', 'vite', 'typescript', '@types/react', '@types/react-dom'];
  run(
    'npm',
    ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', tarball, ...deps.map((d) => `${d}@${versionOf(d)}`)],
    { cwd: dir },
  );
  const installed = path.join(dir, 'node_modules', '@parkmate', 'notify', 'package.json');
  assert.equal(JSON.parse(fs.readFileSync(installed, 'utf8')).name, '@parkmate/notify');
  run(path.join(dir, 'node_modules', '.bin', 'tsc'), ['-p', '.'], { cwd: dir });
  run(path.join(dir, 'node_modules', '.bin', 'vite'), ['build', '--logLevel', 'warn'], { cwd: dir });
  return path.join(dir, 'dist');
}

describe('adopting Parkmate Notify: the npm package in a fresh Vite app, the original handler', { timeout: 600_000 }, () => {
  let server;
  let browser;
  let appDir;
  let user;
  let token;

  before(async () => {
    const bin = buildAll();
    const tarball = packPackage();
    appDir = tempDir('parkmate-fresh-app-');
    const dist = freshViteApp(appDir, tarball);
    server = await Server.create(bin, { webDir: dist });
    await server.start();
    const accounts = await server.call('GET', '/api/auth/demo-accounts');
    const dana = accounts.accounts.find((a) => a.email === DRIVER);
    const login = await server.login(dana.email, dana.password);
    token = login.token;
    user = login.user.id;
    browser = await launchBrowser();
  }, { timeout: 20 * 60_000 }); // a cold cargo build, or a slow registry

  after(async () => {
    await browser?.close().catch(() => {});
    if (server) {
      if (process.exitCode) console.error(`server log tail:\n${server.logTail(60)}`);
      await server.dispose();
    }
    if (appDir) removeTempDir(appDir);
  });

  async function openPage(file) {
    const context = await browser.newContext({ baseURL: server.url });
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    page.on('pageerror', (e) => console.error(`[${file}] page error: ${e.message}`));
    await page.goto(`/${file}#user=${user}&token=${encodeURIComponent(token)}`);
    await page.locator('#status[data-status="open"]').waitFor();
    return page;
  }

  /** Waits for the toast with `text`, and checks the package's look reached the page. */
  async function expectToast(page, level, text) {
    const box = page.locator(`.Toastify__toast.pm-toast--${level}`).filter({ hasText: text });
    await box.waitFor({ state: 'visible' });
    assert.equal(await box.locator('.pm-toast__message').textContent(), text);
    const look = await box.evaluate((el) => ({
      background: getComputedStyle(el).backgroundImage,
      container: getComputedStyle(el.closest('.Toastify__toast-container')).position,
    }));
    // The package's style.css (its entry imports it) and react-toastify's own styles.
    assert.match(look.background, /linear-gradient/, 'the package CSS styles the toast');
    assert.equal(look.container, 'fixed', "react-toastify's CSS places the stack");
  }

  test('the React page toasts a notification through useWebSocketNotifications', async () => {
    const page = await openPage('index.html');
    const text = 'Booking renewed successfully!';
    await server.publish({ user_id: user, level: 'success', message: text });
    await expectToast(page, 'success', text);
    await page.locator('li', { hasText: `success: ${text}` }).waitFor();
    await page.context().close();
  });

  test("the original front end's onmessage, unchanged, on a parkmate.channels socket", async () => {
    const context = await browser.newContext({ baseURL: server.url });
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    await page.goto('/plain.html'); // any page of the server's origin; no token, so no client of its own
    const url = `${server.url.replace(/^http/, 'ws')}/ws/notifications/${user}/`;
    const protocol = await page.evaluate(
      ({ url, token }) =>
        new Promise((resolve, reject) => {
          // react-toastify's four methods, recording instead of rendering.
          window.__shown = [];
          const toast = Object.fromEntries(['success', 'error', 'warning', 'info'].map((k) => [k, (m) => window.__shown.push([k, m])]));
          // The one changed line: the token, and the sub-protocol that asks for the original frames.
          const ws = new WebSocket(url, ['parkmate.channels', `bearer.${token}`]);
          ws.onopen = () => resolve(ws.protocol);
          ws.onerror = () => reject(new Error('the socket did not open'));
          // The original hook's onmessage, as it was.
          ws.onmessage = (event) => {
            try {
              const data = JSON.parse(event.data);
              if (data.connected === true) {
                console.log('✅', data.message);
                return;
              }
              if (data.type === 'carwash_completed') {
                toast.success(data.message);
                return;
              }
              const notificationType = data.type || 'info';
              const message = data.message || 'Notification received';
              const toastMethods = { success: toast.success, error: toast.error, warning: toast.warning, info: toast.info };
              const showToast = toastMethods[notificationType] || toast.info;
              showToast(message);
            } catch (error) {
              console.error('Error parsing WebSocket message:', error);
            }
          };
        }),
      { url, token },
    );
    assert.equal(protocol, 'parkmate.channels');
    const sent = [
      ['success', 'Booking renewed successfully!'],
      ['error', 'Renewal failed: card declined'],
      ['warning', 'Admin declined your booking request.'],
      ['info', 'New booking received for Lot #2'],
      ['confirm', 'Booking confirmed'],
    ];
    for (const [level, message] of sent) await server.publish({ user_id: user, level, message });
    await page.waitForFunction((n) => window.__shown.length >= n, sent.length);
    // What the original consumer's frames showed: the same kinds, `confirm` as info (the original
    // hook has no confirm toast). An extra frame (an unread count, say) would be an extra toast.
    const shown = await page.evaluate(() => window.__shown);
    assert.deepEqual(shown, [...sent.slice(0, 4), ['info', 'Booking confirmed']]);
    await context.close();
  });

  test('a page without React code of its own toasts through NotificationClient', async () => {
    const page = await openPage('plain.html');
    const text = 'Your booking will expire in 5 minutes!';
    await server.publish({ user_id: user, level: 'warning', message: text });
    await expectToast(page, 'warning', text);
    await page.context().close();
  });
});
