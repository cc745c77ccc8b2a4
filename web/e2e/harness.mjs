// End-to-end harness: builds and runs the real Rust server (target/debug/parkmate) on a free port with
// a fresh data dir and a manual clock, drives Debian's Chromium through playwright-core, and keeps the
// server's clock and every browser's clock in step. Every wait is bounded; the server and the browser
// are killed on any exit.

import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = path.resolve(WEB_DIR, '..');
export const ARTIFACTS = path.join(ROOT, 'test-artifacts', 'e2e');
export const API_KEY = 'e2e-api-key-0123456789abcdef0123456789abcdef';
export const JWT_SECRET = 'e2e-jwt-secret-0123456789abcdef0123456789abcdef';
export const CHROMIUM = process.env.E2E_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
];

/** Default bound for one UI condition (a toast, a status, a row). */
export const WAIT_MS = 10_000;

const live = new Set(); // child processes to kill on exit
const tempDirs = new Set(); // data dirs to remove on exit

/** A temporary directory removed on any exit (and by `removeTempDir`). */
export function tempDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir) {
  fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

function killAll() {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
  live.clear();
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    killAll();
    process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
  });
}

function run(cmd, args, opts) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}`);
}

/**
 * `cargo build -p parkmate-server` (debug) and, when web/dist is missing or stale, `npm run build`.
 * E2E_SKIP_BUILD=1 skips both (CI builds first); E2E_SERVER_BIN runs another binary. Returns its path.
 */
export function buildAll() {
  const bin = process.env.E2E_SERVER_BIN ?? path.join(ROOT, 'target', 'debug', 'parkmate');
  if (!process.env.E2E_SKIP_BUILD) {
    if (!process.env.E2E_SERVER_BIN) run('cargo', ['build', '-p', 'parkmate-server'], { cwd: ROOT, timeout: 15 * 60_000 });
    if (webDistStale()) run('npm', ['run', 'build'], { cwd: WEB_DIR, timeout: 5 * 60_000 });
  }
  if (!fs.existsSync(bin)) throw new Error(`no server binary at ${bin}`);
  if (!fs.existsSync(path.join(WEB_DIR, 'dist', 'index.html'))) throw new Error('web/dist is missing: npm run build');
  return bin;
}

function newestMtime(p) {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = 0;
  for (const e of fs.readdirSync(p)) newest = Math.max(newest, newestMtime(path.join(p, e)));
  return newest;
}

/** web/dist is missing, or older than a source it is built from. */
function webDistStale() {
  const built = path.join(WEB_DIR, 'dist', 'index.html');
  if (!fs.existsSync(built)) return true;
  const inputs = ['src', 'index.html', 'package-lock.json', 'vite.config.ts'].map((f) => path.join(WEB_DIR, f));
  return Math.max(...inputs.filter((f) => fs.existsSync(f)).map(newestMtime)) > fs.statSync(built).mtimeMs;
}

export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes (then throws `what`). */
export async function until(what, fn, timeoutMs = WAIT_MS, everyMs = 50) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ''}`);
    await sleep(everyMs);
  }
}

/** The real server as a child process: start, stop (SIGTERM), restart on the same port and data dir. */
export class Server {
  constructor({ bin, port, dir, webDir = path.join(WEB_DIR, 'dist') }) {
    this.bin = bin;
    this.webDir = webDir;
    this.port = port;
    this.dir = dir;
    this.url = `http://127.0.0.1:${port}`;
    this.logPath = path.join(dir, 'server.log');
    this.child = null;
    this.starts = 0;
  }

  /** `webDir`: what the server serves at `/` (default: web/dist, the app). */
  static async create(bin = buildAll(), { webDir } = {}) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parkmate-e2e-'));
    tempDirs.add(dir);
    return new Server({ bin, port: await freePort(), dir, webDir });
  }

  env() {
    // The server refuses unknown PARKMATE_* variables, and the developer's own must not leak in.
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PARKMATE_')));
    return {
      ...inherited,
      PARKMATE_BIND: `127.0.0.1:${this.port}`,
      PARKMATE_DATABASE_URL: `sqlite://${this.dir}/p.db`,
      PARKMATE_DATA_DIR: this.dir,
      PARKMATE_WEB_DIR: this.webDir,
      PARKMATE_JWT_SECRET: JWT_SECRET,
      PARKMATE_API_KEY: API_KEY,
      PARKMATE_BOOKING_DEMO_DATA: 'true',
      PARKMATE_CLOCK: 'manual',
      PARKMATE_ENV: 'test',
      PARKMATE_SHUTDOWN_GRACE: '2s',
      // One node: its clients have nowhere else to go during a drain (the Rust suite tests it).
      PARKMATE_SHUTDOWN_DRAIN: '0s',
      PARKMATE_LOG: process.env.E2E_SERVER_LOG ?? 'info,sqlx=warn',
    };
  }

  async start(timeoutMs = 30_000) {
    if (this.child) throw new Error('server already running');
    const log = fs.openSync(this.logPath, 'a');
    fs.writeSync(log, `\n===== start #${++this.starts} at ${new Date().toISOString()} =====\n`);
    const child = spawn(this.bin, ['serve'], { cwd: this.dir, env: this.env(), stdio: ['ignore', log, log] });
    fs.closeSync(log);
    live.add(child);
    this.child = child;
    let exited = null;
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      live.delete(child);
      if (this.child === child) this.child = null;
    });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (exited) throw new Error(`server exited early (${JSON.stringify(exited)}); log:\n${this.logTail()}`);
      const ok = await fetch(`${this.url}/healthz`, { signal: AbortSignal.timeout(1000) }).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`server not healthy after ${timeoutMs} ms; log:\n${this.logTail()}`);
      await sleep(100);
    }
  }

  /** SIGTERM (graceful: sockets get 1012), bounded; SIGKILL if it does not go. */
  async stop(timeoutMs = 10_000) {
    const child = this.child;
    if (!child) return;
    const gone = once(child, 'exit');
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await gone;
    clearTimeout(t);
    this.child = null;
  }

  async restart() {
    await this.stop();
    await this.start();
  }

  logTail(lines = 40) {
    try {
      return fs.readFileSync(this.logPath, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** Copies the server log next to the screenshots and removes the temp dir. */
  async dispose() {
    await this.stop();
    try {
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      fs.copyFileSync(this.logPath, path.join(ARTIFACTS, 'server.log'));
    } catch {
      /* no log */
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
    tempDirs.delete(this.dir);
  }

  /** JSON request; returns { status, body }. `auth` is a JWT or the API key. */
  async request(method, p, { body, auth, headers = {} } = {}) {
    const res = await fetch(`${this.url}${p}`, {
      method,
      headers: {
        Accept: 'application/json',
        ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
        ...(auth ? { Authorization: `Bearer ${auth}` } : {}),
        ...headers,
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(WAIT_MS),
    });
    const text = await res.text();
    let json;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = text;
    }
    return { status: res.status, body: json };
  }

  /** Like request() but throws with the whole exchange unless the status is `expect`. */
  async call(method, p, opts = {}, expect = 200) {
    const r = await this.request(method, p, opts);
    if (r.status !== expect) {
      throw new Error(`${method} ${p} ${JSON.stringify(opts.body ?? null)} → ${r.status} ${JSON.stringify(r.body)} (expected ${expect})`);
    }
    return r.body;
  }

  async login(email, password) {
    return this.call('POST', '/api/auth/login', { body: { email, password } });
  }

  /** POST /api/notifications with the API key. */
  async publish(notification) {
    return this.call('POST', '/api/notifications', { body: notification, auth: API_KEY }, 201);
  }

  /** Moves only the server's manual clock; prefer Clocks.advance() which moves browsers too. */
  async advanceServerClock(seconds) {
    return this.call('POST', '/api/test/clock', { body: { advance_seconds: seconds }, auth: API_KEY });
  }
}

/**
 * A loopback TCP relay in front of the server, so a test can pull the network from under a page:
 * `cut()` resets every relayed connection and refuses new ones until `restore()`. The page is served
 * through it (its origin is the relay's), so the socket's same-origin check still holds.
 */
export class Relay {
  constructor(target) {
    this.target = target;
    this.down = false;
    this.pairs = new Set();
    this.srv = net.createServer((client) => {
      if (this.down) {
        client.resetAndDestroy();
        return;
      }
      const upstream = net.connect(target.port, '127.0.0.1');
      const pair = [client, upstream];
      this.pairs.add(pair);
      const end = () => {
        client.destroy();
        upstream.destroy();
        this.pairs.delete(pair);
      };
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  static async create(target) {
    const relay = new Relay(target);
    relay.srv.listen(0, '127.0.0.1');
    await once(relay.srv, 'listening');
    relay.port = relay.srv.address().port;
    relay.url = `http://127.0.0.1:${relay.port}`;
    return relay;
  }

  /** Every relayed connection is reset (the peer sees the network go), new ones are refused. */
  cut() {
    this.down = true;
    for (const [client, upstream] of this.pairs) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  restore() {
    this.down = false;
  }

  async close() {
    this.cut();
    await new Promise((r) => this.srv.close(r));
  }
}

export async function launchBrowser() {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
  return browser;
}

/**
 * Records every toast ever rendered (text, level, classes, icon), so assertions about "shown exactly
 * once" do not depend on catching a toast in its 4 s on screen.
 */
const TOAST_RECORDER = `(() => {
  if (window.__toasts) return;
  window.__toasts = [];
  const seen = new WeakSet();
  const record = (el) => {
    if (seen.has(el)) return;
    seen.add(el);
    const box = el.closest('.pm-toast') || el.closest('.Toastify__toast');
    const icon = el.querySelector('[data-icon]');
    window.__toasts.push({
      text: (el.querySelector('.pm-toast__message') || el).textContent,
      detail: el.querySelector('.pm-toast__detail')?.textContent ?? null,
      level: el.getAttribute('data-level'),
      className: box ? box.className : '',
      icon: icon ? icon.getAttribute('data-icon') : null,
      path: location.pathname,
    });
  };
  const scan = (node) => {
    if (node.nodeType !== 1) return;
    if (node.matches('[data-testid="toast"]')) record(node);
    node.querySelectorAll('[data-testid="toast"]').forEach(record);
  };
  new MutationObserver((muts) => {
    for (const m of muts) m.addedNodes.forEach(scan);
  }).observe(document, { childList: true, subtree: true });
})();`;

/** One signed-in role: its own browser context (own localStorage), page and fake clock. */
export class RolePage {
  constructor(name, context, page) {
    this.name = name;
    this.context = context;
    this.page = page;
  }

  static async open(browser, server, name, viewport = { width: 1280, height: 860 }) {
    const context = await browser.newContext({ viewport, baseURL: server.url });
    // Before any navigation: Date, timers and performance are the test's from now on; time still
    // flows by itself, and Clocks.advance() jumps it together with the server's manual clock.
    await context.clock.install();
    await context.addInitScript(TOAST_RECORDER);
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    const rp = new RolePage(name, context, page);
    page.on('pageerror', (e) => console.error(`[${name}] page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') console.error(`[${name}] console: ${m.text()}`);
    });
    return rp;
  }

  tid(id) {
    return this.page.locator(`[data-testid="${id}"]`);
  }

  /** Signs in through the login page's one-click demo list; waits for the socket to be open. */
  async loginAsDemo(email) {
    await this.page.goto('/login');
    await this.tid(`demo-account-${email}`).click();
    await this.waitConnected();
    this.token = await this.page.evaluate(() => localStorage.getItem('parkmate.token'));
    this.user = JSON.parse(await this.page.evaluate(() => localStorage.getItem('parkmate.user')));
    return this.user;
  }

  async waitConnected(timeout = WAIT_MS) {
    await this.page.locator('[data-testid="connection-status"][data-status="open"]').waitFor({ timeout });
  }

  async connectionStatus() {
    return this.tid('connection-status').getAttribute('data-status');
  }

  /** Every toast rendered on the current document so far. */
  async toasts() {
    return this.page.evaluate(() => window.__toasts ?? []);
  }

  async toastCount(text) {
    return (await this.toasts()).filter((t) => t.text === text).length;
  }

  /**
   * Waits until a toast with exactly `text` has been rendered and is visible, and returns its record
   * (level, classes, icon) for the caller to assert.
   */
  async waitToast(text, timeout = WAIT_MS) {
    await this.page.waitForFunction((t) => (window.__toasts ?? []).some((x) => x.text === t), text, { timeout });
    const rec = (await this.toasts()).find((t) => t.text === text);
    await this.page
      .locator('[data-testid="toast"]')
      .filter({ has: this.page.locator('.pm-toast__message', { hasText: text }) })
      .first()
      .waitFor({ state: 'visible', timeout });
    return rec;
  }

  /**
   * Saves test-artifacts/e2e/<file>; with `toastText`, once that toast has finished sliding in: no
   * animation of the toast's own box is still running. (Not "react-toastify has dropped its
   * `bounce-enter` class": it keeps that class for good when the entrance ends in
   * `animationcancel`, although the toast then sits still.) Polled on a timer, not per frame, so a
   * page the browser renders slowly is still looked at.
   */
  async screenshot(file, toastText) {
    if (toastText) {
      await this.page
        .waitForFunction(
          (t) =>
            [...document.querySelectorAll('.Toastify__toast')].some(
              (el) =>
                el.querySelector('.pm-toast__message')?.textContent === t &&
                el.getAnimations().every((a) => a.playState !== 'running' && !a.pending),
            ),
          toastText,
          { timeout: WAIT_MS, polling: 100 },
        )
        .catch(async (e) => {
          const seen = await this.page.evaluate(() =>
            [...document.querySelectorAll('.Toastify__toast')].map((el) => ({
              text: el.querySelector('.pm-toast__message')?.textContent,
              className: el.className,
              animations: el.getAnimations().map((a) => `${a.animationName ?? a.id}:${a.playState}`),
            })),
          );
          throw new Error(`${e.message}\nwaiting for "${toastText}" to finish sliding in; toasts: ${JSON.stringify(seen)}`);
        });
    }
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const p = path.join(ARTIFACTS, file);
    await this.page.screenshot({ path: p });
    return p;
  }

  async close() {
    await this.context.close().catch(() => {});
  }
}

/**
 * The one way tests move time: the server's manual clock and every browser's clock by the same
 * amount, so the client's countdown (corrected by hello.server_time) and the server's scheduler agree.
 */
export class Clocks {
  constructor(server, roles) {
    this.server = server;
    this.roles = roles;
  }

  async advance(seconds) {
    const r = await this.server.advanceServerClock(seconds);
    for (const role of this.roles) await role.context.clock.fastForward(seconds * 1000);
    return r;
  }
}
