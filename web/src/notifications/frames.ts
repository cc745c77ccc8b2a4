/**
 * Frame dispatch: what each server frame of docs/protocol.md does to the client's state. Delivery
 * is lossless and never repeated: the last id seen is persisted per user (resume.ts) and every
 * notification is deduplicated by id; notifications replayed after a reconnect are toasted together
 * once the `replayed` frame says the backlog is over.
 *
 * @packageDocumentation
 */

import { expiringToastId, show, type NotifyOptions } from './notify';
import { parseServerFrame, type Notification } from './protocol';
import { defaultStore, loadLastSeen, saveLastSeen, SeenIds, type KeyValueStore } from './resume';
import type { DeliveryInfo, NotificationState, OptionsSource } from './types';

/**
 * The toast options for a notification: its id, except the expiry warning shared with the timer.
 * Always `inInbox`: the server keeps every notification in the inbox.
 */
export function toastOptionsFor(n: Notification): NotifyOptions {
  const bookingId = n.data.booking_id;
  const endAt = n.data.end_at;
  if (n.event === 'booking_expiring' && bookingId != null && typeof endAt === 'string') {
    return { toastId: expiringToastId(bookingId as number | string, endAt), once: true, inInbox: true };
  }
  return { toastId: `notification-${n.id}`, inInbox: true };
}

/** Where the dispatcher reads and writes the client's state. */
export interface FrameHost {
  state(): NotificationState;
  update(patch: Partial<NotificationState>): void;
  /** `hello` arrived: start the liveness pings at the period it announced. */
  hello(heartbeatMs: number): void;
  /** A notification was shown to the person: tell the server (`ack`, docs/push.md). */
  ack?(id: number): void;
}

/** Whether the page is in front of the person (no DOM, e.g. a test or a worker: assume it is). */
function pageVisible(): boolean {
  return typeof document === 'undefined' || document.visibilityState !== 'hidden';
}

/** If a server ever forgets `replayed`, buffered replay toasts are shown after this long anyway. */
const REPLAY_FLUSH_MS = 5000;

export class FrameDispatcher {
  private readonly seen: SeenIds;
  /** Notifications replayed since `hello`, toasted together when `replayed` arrives; null when live. */
  private replayBuffer: Notification[] | null = null;
  private replayFlushTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly userId: number | string,
    private readonly opts: OptionsSource,
    private readonly host: FrameHost,
  ) {
    this.seen = new SeenIds(loadLastSeen(userId, this.store()));
  }

  /** The id to send as `since` on the next connect. */
  get lastSeenId(): number | null {
    return this.seen.lastId;
  }

  /** One text frame from the socket that was opened with `since`. */
  dispatch(raw: unknown, since: number | null): void {
    const frame = parseServerFrame(raw);
    if (!frame) {
      console.warn('parkmate-notify: ignoring an unknown frame');
      return;
    }
    switch (frame.type) {
      case 'hello': {
        const serverNow = Date.parse(frame.server_time);
        this.host.update({
          unreadCount: frame.unread_count,
          serverOffsetMs: Number.isNaN(serverNow) ? 0 : serverNow - Date.now(),
        });
        this.host.hello(frame.heartbeat_ms);
        // No cursor yet: resume from the server's newest visible id on the next connect.
        if (since == null && typeof frame.newest_id === 'number') this.seen.anchor(frame.newest_id);
        if (since != null) {
          this.flushReplay(); // a second hello on one socket: show what the first one buffered
          this.replayBuffer = [];
          this.replayFlushTimer = setTimeout(() => this.flushReplay(), REPLAY_FLUSH_MS);
        }
        return;
      }
      case 'notification': {
        const { type: _type, ...n } = frame;
        this.deliver({ ...n, read: false });
        return;
      }
      case 'replayed':
        this.flushReplay();
        return;
      case 'unread_count':
        this.host.update({ unreadCount: frame.count });
        return;
      case 'pong':
        return;
      case 'error':
        console.warn(`parkmate-notify: server error frame ${frame.code}: ${frame.message}`);
        return;
    }
  }

  /** Toasts what a replay buffered (the socket closed, or the backlog is over). */
  flushReplay(): void {
    const buffered = this.replayBuffer;
    this.discardReplay();
    if (!buffered || buffered.length === 0) return;
    const limit = Math.max(0, this.opts().maxReplayToasts ?? 3);
    const shown = buffered.slice(-limit);
    const hidden = buffered.length - shown.length;
    if (hidden > 0) {
      const last = buffered[buffered.length - 1];
      show('info', `${hidden} more notification${hidden === 1 ? '' : 's'} while you were away: see the inbox.`, {
        toastId: `replay-summary-${last.id}`,
        inInbox: true, // it only points at the inbox
      });
    }
    for (const n of shown) this.toast(n, { replayed: true });
  }

  /** Forgets buffered replay toasts without showing them (the client stopped). */
  discardReplay(): void {
    if (this.replayFlushTimer) clearTimeout(this.replayFlushTimer);
    this.replayFlushTimer = null;
    this.replayBuffer = null;
  }

  private deliver(n: Notification): void {
    if (!this.seen.add(n.id)) return; // a replay overlap or a duplicate: never twice
    saveLastSeen(this.userId, n.id, this.store());
    const max = this.opts().maxNotifications ?? 50;
    this.host.update({ notifications: [n, ...this.host.state().notifications].slice(0, max) });
    const replayed = this.replayBuffer != null;
    try {
      this.opts().onNotification?.(n, { replayed });
    } catch (e) {
      console.error('onNotification threw', e);
    }
    if (this.replayBuffer) this.replayBuffer.push(n);
    else this.toast(n, { replayed: false });
  }

  private toast(n: Notification, info: DeliveryInfo): void {
    const t = this.opts().toast ?? true;
    if (t === false) return;
    let shown = true;
    if (typeof t === 'function') shown = t(n, info) !== false;
    else show(n.level, n.message, toastOptionsFor(n));
    // Seen: the server will not push it. Only when something was shown (a host's toaster that
    // showed nothing leaves it to push), the tab is in front (a toast in a background tab is not
    // seen), and only live ones: a replayed notification may have been pushed already.
    if (shown && !info.replayed && pageVisible()) this.host.ack?.(n.id);
  }

  private store(): KeyValueStore {
    return this.opts().storage ?? defaultStore();
  }
}
