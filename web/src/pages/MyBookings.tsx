import { ChevronRight } from 'lucide-react';
import { api } from '../app/api';
import { Empty, ErrorBox, PageHead, PaymentPill, RefundNote, StatusPill, WashPill } from '../app/components';
import { dateTime, money } from '../app/format';
import { useLiveData } from '../app/live';
import { Link } from '../app/router';

export function MyBookingsPage() {
  const { data, error, loading } = useLiveData(() => api.bookings().then((r) => r.items));
  const items = [...(data ?? [])].sort((a, b) => b.id - a.id);
  return (
    <main className="page">
      <PageHead title="My bookings" />
      <ErrorBox>{error}</ErrorBox>
      {loading && !data && <p className="muted">Loading…</p>}
      {data && items.length === 0 && (
        <Empty testId="bookings-empty">
          No bookings yet. <Link to="/lots">Find parking</Link>
        </Empty>
      )}
      <ul className="list">
        {items.map((b) => (
          <li key={b.id} className="card row" data-testid={`booking-row-${b.id}`}>
            <Link to={`/bookings/${b.id}`} className="row__link" testId={`booking-link-${b.id}`}>
              <div className="row__main">
                <strong>
                  {b.lot_name} · Slot #{b.slot_number}
                </strong>
                <span className="muted">
                  {dateTime(b.start_at)} → {dateTime(b.end_at)} · {money(b.amount_cents)} <RefundNote b={b} />
                </span>
                <span className="pills">
                  <StatusPill status={b.status} />
                  <PaymentPill b={b} />
                  <WashPill b={b} />
                </span>
              </div>
              <ChevronRight size={18} aria-hidden />
            </Link>
          </li>
        ))}
      </ul>
    </main>
  );
}
