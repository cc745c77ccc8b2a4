import { api, type Booking } from '../app/api';
import { Empty, ErrorBox, PageHead } from '../app/components';
import { useLiveData } from '../app/live';
import { BookingRow } from './BookingActions';

export function EmployeeJobsPage() {
  const { data, error, loading, setData } = useLiveData(() => api.bookings().then((r) => r.items));
  // A declined booking's wash is no job (the server refuses to complete it).
  const jobs = (data ?? []).filter((b) => b.car_wash && b.status !== 'declined');
  const pending = jobs.filter((b) => b.car_wash_status === 'pending');
  const done = jobs.filter((b) => b.car_wash_status !== 'pending');
  const replace = (u: Booking) => setData((old) => (old ?? []).map((x) => (x.id === u.id ? u : x)));
  return (
    <main className="page">
      <PageHead title="Car-wash jobs" sub={`${pending.length} waiting`} />
      <ErrorBox>{error}</ErrorBox>
      {loading && !data && <p className="muted">Loading…</p>}
      {data && jobs.length === 0 && <Empty testId="jobs-empty">No car-wash jobs for your lot.</Empty>}
      <ul className="list" data-testid="jobs-pending">
        {pending.map((b) => (
          <BookingRow key={b.id} b={b} canWash onChanged={replace} />
        ))}
      </ul>
      {done.length > 0 && (
        <>
          <h2 className="section-title">Done</h2>
          <ul className="list" data-testid="jobs-done">
            {done.map((b) => (
              <BookingRow key={b.id} b={b} onChanged={replace} />
            ))}
          </ul>
        </>
      )}
    </main>
  );
}
