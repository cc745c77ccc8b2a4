import { act, cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  AUTO_CLOSE_MS,
  expiringToastId,
  notify,
  NotificationToaster,
  resetNotifyMemory,
  setNotifyStore,
  WARNING_AUTO_CLOSE_MS,
  wasShownOnce,
} from '../src/notifications/notify';
import { clearToastHistory, toastHistory } from '../src/notifications/toastHistory';
import type { Level } from '../src/notifications/protocol';
import { MemoryStore } from './fakeWebSocket';

let vibrate: ReturnType<typeof vi.fn>;

beforeEach(() => {
  resetNotifyMemory();
  clearToastHistory();
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

/** The toast element (react-toastify's box) around a message. */
async function boxFor(text: string): Promise<HTMLElement> {
  return (await toastFor(text)).closest('.Toastify__toast') as HTMLElement;
}

function progressOf(box: HTMLElement): HTMLElement | null {
  return box.querySelector<HTMLElement>('.Toastify__progress-bar');
}

describe('toasts everyone can catch', () => {
  it('success and info close after 4 s, warnings after 10 s, errors stay until dismissed', async () => {
    act(() => {
      notify.success('timed success');
      notify.info('timed info');
      notify.warning('timed warning');
      notify.error('timed error');
    });
    expect(progressOf(await boxFor('timed success'))?.style.animationDuration).toBe(`${AUTO_CLOSE_MS}ms`);
    expect(progressOf(await boxFor('timed info'))?.style.animationDuration).toBe(`${AUTO_CLOSE_MS}ms`);
    expect(progressOf(await boxFor('timed warning'))?.style.animationDuration).toBe(`${WARNING_AUTO_CLOSE_MS}ms`);
    // No timer at all: for autoClose: false react-toastify renders only a hidden, controlled bar.
    const bar = progressOf(await boxFor('timed error'));
    expect(bar?.classList.contains('Toastify__progress-bar--animated')).toBe(false);
    expect(bar?.style.animationDuration ?? '').toBe('');
  });

  it('records every toast, marking the ones the inbox already has', async () => {
    act(() => {
      notify.success('a confirmation', { toastId: 'booked-1' });
      notify.info('from the server', { toastId: 'notification-9', inInbox: true });
      notify.warning('no id');
    });
    await toastFor('no id');
    const h = toastHistory();
    expect(h.map((t) => [t.message, t.level, t.inInbox])).toEqual([
      ['no id', 'warning', false],
      ['from the server', 'info', true],
      ['a confirmation', 'success', false],
    ]);
    expect(h[2].id).toBe('booked-1');
    // A toast without an id gets one, and it is the element's id (pause/dismiss go by it).
    expect(document.getElementById(h[0].id)?.classList.contains('Toastify__toast')).toBe(true);
  });

  it('pauses the toast that holds focus and runs it again when focus leaves', async () => {
    const outside = document.createElement('button');
    document.body.appendChild(outside);
    act(() => {
      notify.success('focus me');
    });
    const box = await boxFor('focus me');
    act(() => box.focus());
    await waitFor(() => expect(progressOf(box)?.style.animationPlayState).toBe('paused'));
    act(() => outside.focus());
    await waitFor(() => expect(progressOf(box)?.style.animationPlayState).toBe('running'));
    outside.remove();
  });

  it('pauses while hovered, like the original', async () => {
    act(() => {
      notify.info('hover me');
    });
    const box = await boxFor('hover me');
    fireEvent.mouseOver(box);
    expect(progressOf(box)?.style.animationPlayState).toBe('paused');
    fireEvent.mouseOut(box, { relatedTarget: document.body });
    expect(progressOf(box)?.style.animationPlayState).toBe('running');
  });

  it('Escape dismisses the focused toast; focus moves to the next one, then back where it was', async () => {
    const before = document.createElement('button');
    document.body.appendChild(before);
    before.focus();
    act(() => {
      notify.error('older', { toastId: 't-older' });
      notify.error('newer', { toastId: 't-newer' });
    });
    const newer = await boxFor('newer');
    const older = await boxFor('older');
    act(() => newer.focus());
    act(() => {
      fireEvent.keyDown(newer, { key: 'Escape' });
    });
    expect(document.activeElement).toBe(older);
    act(() => {
      fireEvent.keyDown(older, { key: 'Escape' });
    });
    expect(document.activeElement).toBe(before);
    before.remove();
  });

  it('Escape that nothing else claimed dismisses the newest toast; a claimed one does not', async () => {
    const input = document.createElement('input');
    document.body.appendChild(input);
    input.focus();
    act(() => {
      notify.error('first', { toastId: 'e-first' });
      notify.error('second', { toastId: 'e-second' });
    });
    await toastFor('second');
    const claim = (e: KeyboardEvent) => e.preventDefault();
    document.addEventListener('keydown', claim);
    act(() => {
      fireEvent.keyDown(input, { key: 'Escape' });
    });
    document.removeEventListener('keydown', claim);
    expect((await boxFor('second')).dataset.in).toBe('true');
    act(() => {
      fireEvent.keyDown(input, { key: 'Escape' });
    });
    await waitFor(() => expect(document.getElementById('e-second')?.dataset.in).toBe('false'));
    expect(document.getElementById('e-first')?.dataset.in).toBe('true');
    expect(document.activeElement).toBe(input);
    input.remove();
  });
});

describe('the toaster hint', () => {
  it('shows the host\'s hint under every message, and the Escape hint only with focus inside', async () => {
    cleanup();
    render(<NotificationToaster hint="Also in your inbox" />);
    act(() => {
      notify.success('with a hint');
    });
    const body = await toastFor('with a hint');
    expect(body.querySelector('.pm-toast__hint')?.textContent).toBe('Also in your inbox · Esc to close');
    expect(body.querySelector('.pm-toast__keys')?.textContent).toBe(' · Esc to close');
  });
});
