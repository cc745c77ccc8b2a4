import { useState } from 'react';
import { Banknote, Droplets } from 'lucide-react';
import { api, errorMessage, type Booking } from '../app/api';
import { PaymentPill, RefundNote, StatusPill, WashPill, WindowList } from '../app/components';
import { dateTime, money, time } from '../app/format';
import { notify } from '@parkmate/notify';

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

  // The server refuses both for a declined (or lapsed) booking (409 invalid_transition).
  const refused = b.status === 'declined' || b.status === 'lapsed';
  const unverified = b.windows.filter((w) => w.payment_method === 'cash' && w.payment_status === 'pending');
  // One button for the oldest unverified window; each window also has its own in the list below
  // when there are several.
  const showVerify = canVerifyCash && unverified.length > 0 && !refused;
  const showWindows = b.windows.length > 1 || b.refunded_cents > 0;
  const showWash = canWash && b.car_wash && b.car_wash_status === 'pending' && !refused;
  const verify = (seq?: number) =>
    void run(
      seq == null ? 'verify-cash' : `verify-cash-${seq}`,
      () => api.verifyCash(b.id, seq),
      seq == null ? `Cash payment verified for booking #${b.id}` : `Cash of window #${seq} verified for booking #${b.id}`,
    );

  return (
    <li className="card row" data-testid={`booking-row-${b.id}`} data-status={b.status}>
      <div className="row__main">
        <strong>
          #{b.id} · {b.lot_name} · Slot #{b.slot_number}
        </strong>
        <span className="muted">
          {b.user_name} · {dateTime(b.start_at)} → {dateTime(b.end_at)} · {money(b.amount_cents)} <RefundNote b={b} />
        </span>
        {b.status === 'requested' && b.lapses_at && (
          <span className="muted" data-testid={`lapses-at-${b.id}`}>
            Lapses at {time(b.lapses_at)} unless approved
          </span>
        )}
        <span className="pills">
          <StatusPill status={b.status} />
          <PaymentPill b={b} />
          <WashPill b={b} />
        </span>
        {showWindows && <WindowList b={b} onVerify={canVerifyCash ? (seq) => verify(seq) : undefined} busy={busy != null} />}
      </div>
      <div className="row__actions">
        {showVerify && (
          <button
            type="button"
            className="btn btn--small"
            disabled={busy != null}
            onClick={() => verify()}
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
