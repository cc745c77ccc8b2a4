/**
 * Lossless delivery on the client side: the id of the last notification seen is remembered per user
 * (in localStorage, so it survives reloads) and sent as `since` on every (re)connect; notifications are
 * deduplicated by id so a replay never yields a duplicate or a second toast. Before the first
 * notification, the first `hello`'s `newest_id` is the cursor ({@link SeenIds.anchor}).
 *
 * @packageDocumentation
 */

export interface KeyValueStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** A store that remembers nothing, for hosts without localStorage (SSR, privacy modes). */
const nullStore: KeyValueStore = { getItem: () => null, setItem: () => {}, removeItem: () => {} };

export function defaultStore(): KeyValueStore {
  try {
    const ls = globalThis.localStorage;
    if (ls) return ls;
  } catch {
    // Accessing localStorage throws when storage is disabled.
  }
  return nullStore;
}

export function lastSeenKey(userId: number | string): string {
  return `parkmate.notify.lastSeen.${userId}`;
}

export function loadLastSeen(userId: number | string, store: KeyValueStore = defaultStore()): number | null {
  try {
    const raw = store.getItem(lastSeenKey(userId));
    if (raw == null) return null;
    const n = Number(raw);
    return Number.isSafeInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/** Stores `id` unless a larger id is already stored (another tab may be ahead). */
export function saveLastSeen(userId: number | string, id: number, store: KeyValueStore = defaultStore()): void {
  try {
    const current = loadLastSeen(userId, store);
    if (current == null || id > current) store.setItem(lastSeenKey(userId), String(id));
  } catch {
    // Quota or disabled storage: resume is best effort, dedupe still works in memory.
  }
}

/**
 * Remembers which notification ids were delivered. Anything at or below the id we resumed from was
 * delivered before (e.g. before a reload) and is a duplicate; above it, a bounded set of recent ids
 * catches every repeat (a replay overlapping live delivery, two sockets briefly overlapping). Ids
 * arrive in increasing order per the protocol, but an out-of-order id is still accepted once rather
 * than dropped, so dedupe can never lose a notification.
 */
export class SeenIds {
  private readonly ids = new Set<number>();
  private readonly floor: number;
  private highWater: number;
  /** Whether the cursor is known even while it is 0 (see {@link SeenIds.anchor}). */
  private anchored: boolean;

  constructor(
    resumedFrom: number | null = null,
    /** Recent ids kept; far more than one replay page, small enough to never matter in memory. */
    private readonly capacity = 1000,
  ) {
    this.floor = resumedFrom ?? 0;
    this.highWater = this.floor;
    this.anchored = resumedFrom != null;
  }

  /**
   * The largest id seen, or the anchor, or null: what to send as `since`. 0 is a real cursor once
   * anchored (a user who saw nothing yet resumes with `since=0` and gets everything since).
   */
  get lastId(): number | null {
    return this.anchored || this.highWater > 0 ? this.highWater : null;
  }

  /**
   * A first `hello` (sent without `since`) names the newest id the user could see at that moment:
   * adopt it as the cursor when there is none yet, so a reconnect before the first notification
   * replays what was published in between instead of starting "from now" again. Only raises the
   * cursor, never the floor: a live id below it (queued before the server's snapshot) is still
   * delivered once.
   */
  anchor(newestId: number): void {
    if (this.anchored || this.highWater > 0 || !Number.isSafeInteger(newestId) || newestId < 0) return;
    this.highWater = newestId;
    this.anchored = true;
  }

  /** True the first time an id is offered, false for every repeat. */
  add(id: number): boolean {
    if (id <= this.floor || this.ids.has(id)) return false;
    // Evicted ids are far below the high-water mark; treat them as seen.
    if (this.ids.size >= this.capacity && id < this.minKept()) return false;
    this.ids.add(id);
    if (id > this.highWater) this.highWater = id;
    if (this.ids.size > this.capacity) {
      const oldest = this.ids.values().next().value;
      if (oldest !== undefined) this.ids.delete(oldest);
    }
    return true;
  }

  private minKept(): number {
    let min = Infinity;
    for (const id of this.ids) if (id < min) min = id;
    return min;
  }
}
