import { Users } from 'lucide-react';
import { api, type Booking } from '../app/api';
import { Empty, ErrorBox, PageHead } from '../app/components';
import { money } from '../app/format';
import { useLive, useLiveData } from '../app/live';
import { BookingRow } from './BookingActions';

export function OwnerDashboardPage() {
  const { lastNotification } = useLive();
  const lots = useLiveData(() => api.lots(true).then((r) => r.items));
  const bookings = useLiveData(() => api.bookings().then((r) => r.items));
  const items = [...(bookings.data ?? [])].sort((a, b) => b.id - a.id);

  const replace = (u: Booking) => bookings.setData((old) => (old ?? []).map((x) => (x.id === u.id ? u : x)));

  return (
    <main className="page">
      <PageHead title="My lots" sub="Bookings and staff update live as notifications arrive." />
      {lastNotification && (
        <p className="live-note" data-testid="last-notification">
          Latest: {lastNotification.message}
        </p>
      )}
      <ErrorBox>{lots.error}</ErrorBox>
      <div className="grid">
        {(lots.data ?? []).map((lot) => {
          const taken = lot.slots.filter((s) => s.occupied).length;
          return (
            <section key={lot.id} className="card lot" data-testid={`owner-lot-${lot.id}`}>
              <h2>{lot.name}</h2>
              <p className="muted">
                {money(lot.price_per_hour_cents)}/hour · {taken}/{lot.slots.length} slots taken
              </p>
              <div className="employees" data-testid={`lot-employees-${lot.id}`}>
                <Users size={14} aria-hidden />
                {lot.employees.length === 0 ? (
                  <span className="muted">No employees assigned</span>
                ) : (
                  lot.employees.map((e) => (
                    <span key={e.id} className="pill pill--staff" data-testid={`lot-employee-${lot.id}-${e.id}`}>
                      {e.name}
                    </span>
                  ))
                )}
              </div>
            </section>
          );
        })}
      </div>
      {lots.data && lots.data.length === 0 && <Empty>You have no lots yet.</Empty>}

      <h2 className="section-title">Bookings</h2>
      <ErrorBox>{bookings.error}</ErrorBox>
      {bookings.data && items.length === 0 && <Empty testId="owner-bookings-empty">No bookings yet.</Empty>}
      <ul className="list" data-testid="owner-bookings">
        {items.map((b) => (
          <BookingRow key={b.id} b={b} canVerifyCash canWash onChanged={replace} />
        ))}
      </ul>
    </main>
  );
}
