import { act, cleanup, render, screen } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  expiringToastId,
  notify,
  NotificationToaster,
  resetNotifyMemory,
  setNotifyStore,
  wasShownOnce,
} from '../src/notifications/notify';
import type { Level } from '../src/notifications/protocol';
import { MemoryStore } from './fakeWebSocket';

let vibrate: ReturnType<typeof vi.fn>;

beforeEach(() => {
  resetNotifyMemory();
  setNotifyStore(new MemoryStore());
  vibrate = vi.fn(() => true);
  Object.defineProperty(navigator, 'vibrate', { value: vibrate, configurable: true, writable: true });
  render(<NotificationToaster />);
});

afterEach(() => {
  act(() => notify.dismiss());
  cleanup();
  // @ts-expect-error test cleanup of the stub
  delete navigator.vibrate;
});

async function toastFor(text: string): Promise<HTMLElement> {
  const msg = await screen.findByText(text);
  const body = msg.closest('[data-testid="toast"]') as HTMLElement;
  expect(body).not.toBeNull();
  return body;
}

const CASES: Array<[Level, string, number | number[] | null]> = [
  ['success', 'CheckCircle', 150],
  ['error', 'XCircle', [100, 50, 100]],
  ['warning', 'AlertTriangle', 100],
  ['info', 'Info', null],
  ['confirm', 'CheckCircle', [150, 100, 150]],
];

describe('notify', () => {
  it.each(CASES)('%s: icon %s, level class, vibration %j', async (level, icon, pattern) => {
    act(() => {
      notify[level](`hello ${level}`);
    });
    const body = await toastFor(`hello ${level}`);
    expect(body.dataset.level).toBe(level);
    expect(body.querySelector('[data-icon]')?.getAttribute('data-icon')).toBe(icon);
    expect(body.querySelector('svg')).not.toBeNull();
    const toastEl = body.closest('.Toastify__toast') as HTMLElement;
    expect(toastEl.classList.contains('pm-toast')).toBe(true);
    expect(toastEl.classList.contains(`pm-toast--${level}`)).toBe(true);
    if (pattern == null) expect(vibrate).not.toHaveBeenCalled();
    else expect(vibrate).toHaveBeenCalledWith(pattern);
  });

  it('does not vibrate (nor fail) where navigator.vibrate does not exist', async () => {
    // @ts-expect-error remove the stub
    delete navigator.vibrate;
    act(() => {
      notify.error('no vibration here');
    });
    await toastFor('no vibration here');
    expect(vibrate).not.toHaveBeenCalled();
  });

  it('renders the message as text, never as HTML', async () => {
    const evil = '<img src=x onerror=alert(1)>';
    act(() => {
      notify.info(evil);
    });
    const body = await toastFor(evil);
    expect(body.querySelector('img')).toBeNull();
    expect(body.textContent).toContain(evil);
  });

  it('shows the same toastId only once, and vibrates only when shown', async () => {
    act(() => {
      expect(notify.success('only once', { toastId: 'notification-7' })).not.toBeNull();
      expect(notify.success('only once', { toastId: 'notification-7' })).toBeNull();
    });
    await toastFor('only once');
    expect(screen.getAllByText('only once')).toHaveLength(1);
    expect(vibrate).toHaveBeenCalledTimes(1);
    act(() => notify.dismiss());
    act(() => {
      expect(notify.success('only once', { toastId: 'notification-7' })).toBeNull();
    });
  });

  it('`once` toasts are remembered across reloads', () => {
    const store = new MemoryStore();
    setNotifyStore(store);
    const id = expiringToastId(5, '2026-11-25T18:05:00Z');
    act(() => {
      notify.warning('Your booking will expire in 5 minutes!', { toastId: id, once: true });
    });
    expect(wasShownOnce(id)).toBe(true);
    resetNotifyMemory(); // "reload": in-memory dedupe gone, storage kept
    act(() => {
      expect(notify.warning('Your booking will expire in 5 minutes!', { toastId: id, once: true })).toBeNull();
    });
  });

  it('the expiry toast id ignores how end_at is spelled', () => {
    expect(expiringToastId(5, '2026-11-25T18:05:00Z')).toBe(expiringToastId(5, '2026-11-25T18:05:00.000Z'));
    expect(expiringToastId(5, '2026-11-25T18:05:00Z')).toBe('expiring-5-2026-11-25T18:05:00.000Z');
  });

  it('stacks at most 5 at a time', async () => {
    act(() => {
      for (let i = 0; i < 8; i++) notify.info(`stack ${i}`);
    });
    await screen.findByText('stack 4');
    expect(document.querySelectorAll('.Toastify__toast').length).toBe(5);
  });
});
