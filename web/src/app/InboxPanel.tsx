import { useCallback, useEffect, useState } from 'react';
import { AlertTriangle, CheckCircle, Info, XCircle } from 'lucide-react';
import type { Level, Notification } from '../notifications';
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

export function InboxPanel({ onClose }: { onClose: () => void }) {
  const { version, markRead, markAllRead, unreadCount } = useLive();
  const { user } = useAuth();
  const [items, setItems] = useState<Notification[]>([]);
  const [nextBefore, setNextBefore] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);

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

  const loadMore = useCallback(async () => {
    if (nextBefore == null) return;
    try {
      const page = await api.inbox(nextBefore, 20);
      setItems((old) => [...old, ...page.items.filter((n) => !old.some((o) => o.id === n.id))]);
      setNextBefore(page.next_before);
    } catch (e) {
      setError(errorMessage(e));
    }
  }, [nextBefore]);

  const readOne = async (id: number) => {
    try {
      await markRead(id);
      setItems((old) => old.map((n) => (n.id === id ? { ...n, read: true } : n)));
    } catch (e) {
      setError(errorMessage(e));
    }
  };

  const readAll = async () => {
    try {
      await markAllRead();
      setItems((old) => old.map((n) => ({ ...n, read: true })));
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
    <div className="inbox" data-testid="inbox" role="dialog" aria-label="Notifications">
      <div className="inbox__head">
        <strong>Notifications</strong>
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
              <button type="button" className="inbox__main" onClick={() => open(n)}>
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
                  onClick={() => void readOne(n.id)}
                  data-testid={`inbox-mark-read-${n.id}`}
                  aria-label="Mark as read"
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
    </div>
  );
}
