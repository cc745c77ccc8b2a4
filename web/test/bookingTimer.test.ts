import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { fireTimerAlert, timerAlert } from '../src/app/bookingTimer';
import { resetNotifyMemory, setNotifyStore, notify } from '../src/notifications/notify';
import { MemoryStore } from './fakeWebSocket';

const MIN = 60_000;

describe('booking countdown alerts (events 1 and 2)', () => {
  it('warns from 5:00 down, says expired at 0:00, nothing for declined or long-gone', () => {
    expect(timerAlert(5 * MIN + 1000, 'confirmed')).toBeNull();
    expect(timerAlert(5 * MIN, 'confirmed')).toBe('expiring');
    expect(timerAlert(1000, 'requested')).toBe('expiring');
    expect(timerAlert(0, 'confirmed')).toBe('expired');
    expect(timerAlert(-5 * MIN, 'expired')).toBe('expired');
    expect(timerAlert(-60 * MIN, 'expired')).toBeNull();
    expect(timerAlert(3 * MIN, 'declined')).toBeNull();
  });

  describe('once per booking window, also after a reload', () => {
    let store: MemoryStore;
    beforeEach(() => {
      store = new MemoryStore();
      setNotifyStore(store);
      resetNotifyMemory();
    });
    afterEach(() => setNotifyStore(null));

    it('toasts each alert once per end_at, again for a renewed window', () => {
      const show = vi.spyOn(notify, 'warning');
      const info = vi.spyOn(notify, 'info');
      const end = '2026-11-25T18:05:00Z';
      fireTimerAlert(5, end, 4 * MIN, 'confirmed');
      fireTimerAlert(5, end, 3 * MIN, 'confirmed');
      resetNotifyMemory(); // reload
      fireTimerAlert(5, end, 2 * MIN, 'confirmed');
      const keys = [...store.map.keys()];
      expect(keys).toEqual(['parkmate.notify.shown.expiring-5-2026-11-25T18:05:00.000Z']);
      fireTimerAlert(5, end, 0, 'confirmed');
      fireTimerAlert(5, end, -1000, 'expired');
      expect(store.map.size).toBe(2);
      // Renewed: a new end_at is a new window.
      fireTimerAlert(5, '2026-11-25T19:05:00Z', 4 * MIN, 'confirmed');
      expect(store.map.size).toBe(3);
      expect(show).toHaveBeenCalled();
      expect(info).toHaveBeenCalled();
    });
  });
});
