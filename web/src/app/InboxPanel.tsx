import { useEffect, useRef, useState } from 'react';
import { AlertTriangle, CheckCircle, Info, XCircle } from 'lucide-react';
import { useToastHistory, type Level, type Notification } from '@parkmate/notify';
import { api, errorMessage } from './api';
import { useAuth } from './auth';
import { refundText } from './components';
import { ago } from './format';
import { refundOf, useLive } from './live';
import { navigate } from './router';

const ICONS: Record<Level, typeof Info> = {
  success: CheckCircle,
  confirm: CheckCircle,
  error: XCircle,
  warning: AlertTriangle,
  info: Info,
};

/**
 * The inbox, a non-modal dialog under the bell. Focus moves into it when it opens (the bell's
 * Escape handler brings it back), and never drops to `<body>` when the control holding it goes away:
 * 'Mark read' hands it to its item, 'Mark all read' to the dialog. It also lists this session's
 * toasts that the server does not keep (confirmations, the countdown's "expired"), so every toast
 * can be read again after it closed.
 */
export function InboxPanel({ onClose }: { onClose: () => void }) {
  const { version, markRead, markAllRead, unreadCount } = useLive();
  const { user } = useAuth();
  const [items, setItems] = useState<Notification[]>([]);
  const [nextBefore, setNextBefore] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const local = useToastHistory().filter((t) => !t.inInbox);
  const panel = useRef<HTMLDivElement>(null);

  useEffect(() => {
    panel.current?.focus();
  }, []);

  /** Focuses `target` (or the dialog) if the control that held focus is gone or disabled now. */
  const keepFocus = (target: () => HTMLElement | null | undefined) => {
    const at = document.activeElement;
    const lost = !at || at === document.body || !at.isConnected || (at instanceof HTMLButtonElement && at.disabled);
    if (lost) (target() ?? panel.current)?.focus();
  };

  // First page, reloaded whenever a live notification arrives while the panel is open.
  useEffect(() => {
    let cancelled = false;
    api
      .inbox(null, 20)
      .then((page) => {
        if (cancelled) return;
        setItems(page.items);
        setNextBefore(page.next_before);
        setError(null);
      })
      .catch((e) => !cancelled && setError(errorMessage(e)))
      .finally(() => !cancelled && setLoading(false));
    return () => {
      cancelled = true;
    };
  }, [version]);

  const mainButton = (id: number) => panel.current?.querySelector<HTMLElement>(`#inbox-open-${id}`);

  const loadMore = async () => {
    if (nextBefore == null) return;
    try {
      const page = await api.inbox(nextBefore, 20);
      setItems((old) => [...old, ...page.items.filter((n) => !old.some((o) => o.id === n.id))]);
      setNextBefore(page.next_before);
      // 'Load older' is gone when there is nothing older: continue at the first item it loaded.
      const firstNew = page.items[0];
      if (page.next_before == null && firstNew) requestAnimationFrame(() => keepFocus(() => mainButton(firstNew.id)));
    } catch (e) {
      setError(errorMessage(e));
    }
  };

  const readOne = async (id: number, fromButton = false) => {
    try {
      await markRead(id);
      setItems((old) => old.map((n) => (n.id === id ? { ...n, read: true } : n)));
      // Its 'Mark read' button is gone: the item itself takes focus.
      if (fromButton) requestAnimationFrame(() => keepFocus(() => mainButton(id)));
    } catch (e) {
      setError(errorMessage(e));
    }
  };

  const readAll = async () => {
    try {
      await markAllRead();
      setItems((old) => old.map((n) => ({ ...n, read: true })));
      // The button is disabled now: the dialog itself takes focus.
      requestAnimationFrame(() => keepFocus(() => panel.current));
    } catch (e) {
      setError(errorMessage(e));
    }
  };

  const open = (n: Notification) => {
    if (!n.read) void readOne(n.id);
    const bookingId = n.data?.booking_id;
    if (user?.role === 'user' && typeof bookingId === 'number') {
      navigate(`/bookings/${bookingId}`);
      onClose();
    }
  };

  return (
    <div className="inbox" data-testid="inbox" role="dialog" aria-labelledby="inbox-title" tabIndex={-1} ref={panel}>
      <div className="inbox__head">
        <h2 className="inbox__title" id="inbox-title">
          Notifications
        </h2>
        <button type="button" className="link-btn" onClick={() => void readAll()} disabled={unreadCount === 0} data-testid="inbox-mark-all">
          Mark all read
        </button>
      </div>
      {error && <p className="inbox__error">{error}</p>}
      {loading && items.length === 0 && <p className="muted inbox__empty">Loading…</p>}
      {!loading && items.length === 0 && !error && (
        <p className="muted inbox__empty" data-testid="inbox-empty">
          You're all caught up.
        </p>
      )}
      <ul className="inbox__list">
        {items.map((n) => {
          const Icon = ICONS[n.level] ?? Info;
          const refund = refundOf(n);
          return (
            <li
              key={n.id}
              className={`inbox__item inbox__item--${n.level}${n.read ? '' : ' is-unread'}`}
              data-testid={`inbox-item-${n.id}`}
              data-read={n.read ? 'true' : 'false'}
              data-event={n.event}
            >
              <button type="button" className="inbox__main" id={`inbox-open-${n.id}`} onClick={() => open(n)}>
                <Icon size={18} aria-hidden className="inbox__icon" />
                <span className="inbox__text">
                  <span className="inbox__msg">{n.message}</span>
                  {refund != null && (
                    <span className="inbox__detail" data-testid={`inbox-refund-${n.id}`}>
                      {refundText(refund)}
                    </span>
                  )}
                  <span className="inbox__time">{ago(n.created_at)}</span>
                </span>
              </button>
              {!n.read && (
                <button
                  type="button"
                  className="link-btn inbox__read"
                  onClick={() => void readOne(n.id, true)}
                  data-testid={`inbox-mark-read-${n.id}`}
                  // The name starts with the visible text (WCAG 2.5.3) and says which item.
                  aria-label={`Mark read: ${n.message}`}
                >
                  Mark read
                </button>
              )}
            </li>
          );
        })}
      </ul>
      {nextBefore != null && (
        <button type="button" className="btn btn--ghost btn--block" onClick={() => void loadMore()} data-testid="inbox-load-more">
          Load older
        </button>
      )}
      {local.length > 0 && (
        <section aria-labelledby="inbox-local-title" data-testid="inbox-local">
          <h3 className="inbox__section" id="inbox-local-title">
            Other alerts
          </h3>
          <p className="muted inbox__note">Shown on this device since you signed in; not saved.</p>
          <ul className="inbox__list">
            {local.map((t) => {
              const Icon = ICONS[t.level] ?? Info;
              return (
                <li key={t.id} className={`inbox__item inbox__local inbox__item--${t.level}`} data-testid="inbox-local-item">
                  <Icon size={18} aria-hidden className="inbox__icon" />
                  <span className="inbox__text">
                    <span className="inbox__msg">{t.message}</span>
                    <span className="inbox__time">{ago(new Date(t.at).toISOString())}</span>
                  </span>
                </li>
              );
            })}
          </ul>
        </section>
      )}
    </div>
  );
}
