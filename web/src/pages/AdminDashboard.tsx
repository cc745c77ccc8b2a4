import { useState, type FormEvent } from 'react';
import { Check, UserPlus, X } from 'lucide-react';
import { api, errorMessage, type Booking } from '../app/api';
import { Empty, ErrorBox, PageHead } from '../app/components';
import { useLiveData } from '../app/live';
import { notify } from '@parkmate/notify';
import { BookingRow } from './BookingActions';

export function AdminDashboardPage() {
  const bookings = useLiveData(() => api.bookings().then((r) => r.items));
  const all = [...(bookings.data ?? [])].sort((a, b) => b.id - a.id);
  const pending = all.filter((b) => b.status === 'requested');
  const replace = (u: Booking) => bookings.setData((old) => (old ?? []).map((x) => (x.id === u.id ? u : x)));

  return (
    <main className="page">
      <PageHead title="Admin" sub="Approve requests and staff the lots." />
      <h2 className="section-title">Pending requests</h2>
      <ErrorBox>{bookings.error}</ErrorBox>
      {bookings.data && pending.length === 0 && <Empty testId="pending-empty">No pending requests.</Empty>}
      <ul className="list" data-testid="pending-requests">
        {pending.map((b) => (
          <BookingRow key={b.id} b={b} onChanged={replace}>
            <Decision b={b} onChanged={replace} />
          </BookingRow>
        ))}
      </ul>

      <AssignEmployee />

      <h2 className="section-title">All bookings</h2>
      <ul className="list" data-testid="all-bookings">
        {all
          .filter((b) => b.status !== 'requested')
          .map((b) => (
            <BookingRow key={b.id} b={b} canVerifyCash onChanged={replace} />
          ))}
      </ul>
    </main>
  );
}

function Decision({ b, onChanged }: { b: Booking; onChanged: (b: Booking) => void }) {
  const [reason, setReason] = useState('');
  const [declining, setDeclining] = useState(false);
  const [busy, setBusy] = useState(false);

  const act = async (fn: () => Promise<Booking>, ok: string) => {
    setBusy(true);
    try {
      onChanged(await fn());
      notify.success(ok, { toastId: `decision-${b.id}` });
    } catch (e) {
      notify.error(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  if (declining) {
    return (
      <form
        className="inline-form"
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          void act(() => api.decline(b.id, reason.trim() || undefined), `Declined booking #${b.id}`);
        }}
      >
        <input placeholder="Reason (optional)" value={reason} onChange={(e) => setReason(e.target.value)} data-testid={`decline-reason-${b.id}`} />
        <button type="submit" className="btn btn--small btn--danger" disabled={busy} data-testid={`decline-confirm-${b.id}`}>
          Decline
        </button>
        <button type="button" className="btn btn--small btn--ghost" onClick={() => setDeclining(false)}>
          Cancel
        </button>
      </form>
    );
  }
  return (
    <>
      <button
        type="button"
        className="btn btn--small btn--primary"
        disabled={busy}
        onClick={() => void act(() => api.approve(b.id), `Approved booking #${b.id}`)}
        data-testid={`approve-${b.id}`}
      >
        <Check size={14} aria-hidden /> Approve
      </button>
      <button type="button" className="btn btn--small btn--danger" disabled={busy} onClick={() => setDeclining(true)} data-testid={`decline-${b.id}`}>
        <X size={14} aria-hidden /> Decline
      </button>
    </>
  );
}

function AssignEmployee() {
  const lots = useLiveData(() => api.lots().then((r) => r.items));
  const employees = useLiveData(() => api.users('employee').then((r) => r.items));
  const [lotId, setLotId] = useState('');
  const [employeeId, setEmployeeId] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!lotId || !employeeId) return;
    setBusy(true);
    setError(null);
    try {
      const lot = await api.assignEmployee(Number(lotId), Number(employeeId));
      lots.setData((old) => (old ?? []).map((l) => (l.id === lot.id ? lot : l)));
      const emp = employees.data?.find((x) => x.id === Number(employeeId));
      notify.success(`${emp?.name ?? 'Employee'} assigned to ${lot.name}`);
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="card" data-testid="assign-employee">
      <h2>
        <UserPlus size={18} aria-hidden /> Assign an employee
      </h2>
      <form className="form form--row" onSubmit={(e) => void submit(e)}>
        <label className="field">
          <span>Lot</span>
          <select value={lotId} onChange={(e) => setLotId(e.target.value)} data-testid="assign-lot" required>
            <option value="">Choose a lot…</option>
            {(lots.data ?? []).map((l) => (
              <option key={l.id} value={l.id}>
                {l.name} (#{l.id})
              </option>
            ))}
          </select>
        </label>
        <label className="field">
          <span>Employee</span>
          <select value={employeeId} onChange={(e) => setEmployeeId(e.target.value)} data-testid="assign-employee-select" required>
            <option value="">Choose an employee…</option>
            {(employees.data ?? []).map((u) => (
              <option key={u.id} value={u.id}>
                {u.name} · {u.email}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" className="btn btn--primary" disabled={busy || !lotId || !employeeId} data-testid="assign-button">
          Assign
        </button>
      </form>
      <ErrorBox testId="assign-error">{error ?? employees.error}</ErrorBox>
      <ul className="staff-list">
        {(lots.data ?? []).map((l) => (
          <li key={l.id} data-testid={`admin-lot-employees-${l.id}`}>
            <strong>{l.name}</strong>:{' '}
            {l.employees.length ? l.employees.map((e) => e.name).join(', ') : <span className="muted">nobody yet</span>}
          </li>
        ))}
      </ul>
    </section>
  );
}
