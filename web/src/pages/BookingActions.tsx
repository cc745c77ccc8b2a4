import { useState } from 'react';
import { Banknote, Droplets } from 'lucide-react';
import { api, errorMessage, type Booking } from '../app/api';
import { PaymentPill, StatusPill, WashPill } from '../app/components';
import { dateTime, money } from '../app/format';
import { notify } from '../notifications';

/** One booking as a card row, with the actions the viewer may take on it. */
export function BookingRow(props: {
  b: Booking;
  canVerifyCash?: boolean;
  canWash?: boolean;
  onChanged: (b: Booking) => void;
  children?: React.ReactNode;
}) {
  const { b, canVerifyCash, canWash, onChanged } = props;
  const [busy, setBusy] = useState<string | null>(null);

  const run = async (what: string, fn: () => Promise<Booking>, ok: string) => {
    setBusy(what);
    try {
      const updated = await fn();
      onChanged(updated);
      notify.success(ok, { toastId: `${what}-${b.id}` });
    } catch (e) {
      notify.error(errorMessage(e));
    } finally {
      setBusy(null);
    }
  };

  // The server refuses both for a declined booking (409 invalid_transition).
  const showVerify = canVerifyCash && b.payment_method === 'cash' && b.payment_status === 'pending' && b.status !== 'declined';
  const showWash = canWash && b.car_wash && b.car_wash_status === 'pending' && b.status !== 'declined';

  return (
    <li className="card row" data-testid={`booking-row-${b.id}`} data-status={b.status}>
      <div className="row__main">
        <strong>
          #{b.id} · {b.lot_name} · Slot #{b.slot_number}
        </strong>
        <span className="muted">
          {b.user_name} · {dateTime(b.start_at)} → {dateTime(b.end_at)} · {money(b.amount_cents)}
        </span>
        <span className="pills">
          <StatusPill status={b.status} />
          <PaymentPill b={b} />
          <WashPill b={b} />
        </span>
      </div>
      <div className="row__actions">
        {showVerify && (
          <button
            type="button"
            className="btn btn--small"
            disabled={busy != null}
            onClick={() => void run('verify-cash', () => api.verifyCash(b.id), `Cash payment verified for booking #${b.id}`)}
            data-testid={`verify-cash-${b.id}`}
          >
            <Banknote size={14} aria-hidden /> Verify cash
          </button>
        )}
        {showWash && (
          <button
            type="button"
            className="btn btn--small"
            disabled={busy != null}
            onClick={() => void run('car-wash-done', () => api.carWashDone(b.id), `Car wash marked done for booking #${b.id}`)}
            data-testid={`car-wash-done-${b.id}`}
          >
            <Droplets size={14} aria-hidden /> Car wash done
          </button>
        )}
        {props.children}
      </div>
    </li>
  );
}
