import { useEffect, useState, type FormEvent } from 'react';
import { ArrowLeft, Clock, Droplets } from 'lucide-react';
import { api, errorMessage, type Booking, type PaymentMethod } from '../app/api';
import { fireTimerAlert, WARN_BEFORE_MS } from '../app/bookingTimer';
import { cardPayload, ErrorBox, PageHead, PaymentFields, PaymentPill, RefundNote, StatusPill, WashPill, WindowList } from '../app/components';
import { countdown, dateTime, money, time } from '../app/format';
import { useLive, useLiveData } from '../app/live';
import { Link } from '../app/router';

export function BookingPage({ id }: { id: number }) {
  const { data: booking, error, loading, reload, setData } = useLiveData(() => api.booking(id), [id]);
  return (
    <main className="page">
      <Link to="/bookings" className="back">
        <ArrowLeft size={16} aria-hidden /> My bookings
      </Link>
      <ErrorBox>{error}</ErrorBox>
      {loading && !booking && <p className="muted">Loading…</p>}
      {booking && <BookingDetail booking={booking} onChanged={(b) => setData(b)} onExpired={reload} />}
    </main>
  );
}

function BookingDetail({ booking: b, onChanged, onExpired }: { booking: Booking; onChanged: (b: Booking) => void; onExpired: () => void }) {
  const { serverNow } = useLive();
  const end = Date.parse(b.end_at);
  const [left, setLeft] = useState(() => end - serverNow());
  const [renewResult, setRenewResult] = useState<RenewResult | null>(null);

  useEffect(() => {
    let reloaded = false;
    const tick = () => {
      const l = end - serverNow();
      setLeft(l);
      fireTimerAlert(b.id, b.end_at, l, b.status);
      if (l <= 0 && !reloaded && b.status !== 'expired' && b.status !== 'declined' && b.status !== 'lapsed') {
        reloaded = true;
        // Give the server a moment to mark it expired, then pick up the new status.
        setTimeout(onExpired, 1500);
      }
    };
    tick();
    const t = setInterval(tick, 1000);
    return () => clearInterval(t);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [b.id, b.end_at, b.status, end, serverNow]);

  // Declined and lapsed bookings never got their slot: no countdown, no renewal.
  const refused = b.status === 'declined' || b.status === 'lapsed';
  const ended = left <= 0 || b.status === 'expired';
  const canRenew = ended && !refused && b.status !== 'requested';
  const warn = !ended && left <= WARN_BEFORE_MS;

  return (
    <>
      <PageHead title={`${b.lot_name} · Slot #${b.slot_number}`} sub={`Booking #${b.id}`}>
        <StatusPill status={b.status} />
      </PageHead>
      <section className={`card timer${warn ? ' timer--warn' : ''}${ended ? ' timer--ended' : ''}`}>
        <Clock size={22} aria-hidden />
        <div>
          <div className="timer__value" data-testid="countdown" data-left-ms={Math.max(0, Math.round(left))}>
            {refused ? '—' : ended ? 'Expired' : countdown(left)}
          </div>
          <div className="muted">
            {b.status === 'declined'
              ? 'Declined'
              : b.status === 'lapsed'
                ? 'Lapsed: not approved in time'
                : ended
                  ? `Ended at ${time(b.end_at)}`
                  : `Ends at ${time(b.end_at)}`}
          </div>
        </div>
      </section>
      {b.status === 'declined' && (
        <p className="alert alert--warning" data-testid="decline-reason">
          Declined by an admin{b.decline_reason ? `: ${b.decline_reason}` : '.'}
        </p>
      )}
      {b.status === 'requested' && b.lapses_at && (
        <p className="alert alert--info" data-testid="awaiting-approval">
          Waiting for an admin to approve this request. Unless approved by {time(b.lapses_at)}, it lapses and any card
          payment is refunded.
        </p>
      )}
      {b.status === 'lapsed' && (
        <p className="alert alert--warning" data-testid="lapsed-note">
          This request was not approved in time; the slot was released.
        </p>
      )}
      <section className="card details">
        <dl>
          <dt>From</dt>
          <dd>{dateTime(b.start_at)}</dd>
          <dt>Until</dt>
          <dd data-testid="booking-end-at">{dateTime(b.end_at)}</dd>
          <dt>Amount</dt>
          <dd>
            {money(b.amount_cents)} <RefundNote b={b} />
          </dd>
          <dt>Payment</dt>
          <dd>
            <PaymentPill b={b} />
          </dd>
          <dt>Windows</dt>
          <dd>
            <WindowList b={b} />
          </dd>
          {b.car_wash && (
            <>
              <dt>
                <Droplets size={14} aria-hidden /> Car wash
              </dt>
              <dd data-testid="car-wash-status">
                <WashPill b={b} />
              </dd>
            </>
          )}
        </dl>
      </section>
      {renewResult && (
        <p
          className={`alert ${renewResult.ok ? 'alert--success' : 'alert--error'}`}
          role={renewResult.ok ? 'status' : 'alert'}
          data-testid="renew-result"
          data-result={renewResult.ok ? 'success' : 'error'}
        >
          {renewResult.text}
        </p>
      )}
      {canRenew && <RenewForm booking={b} onRenewed={onChanged} onResult={setRenewResult} />}
    </>
  );
}

interface RenewResult {
  ok: boolean;
  text: string;
}

function RenewForm(props: { booking: Booking; onRenewed: (b: Booking) => void; onResult: (r: RenewResult | null) => void }) {
  const { booking, onRenewed, onResult: setResult } = props;
  const [minutes, setMinutes] = useState(60);
  const [method, setMethod] = useState<PaymentMethod>('online');
  const [card, setCard] = useState('');
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setResult(null);
    try {
      // The toast for success/failure arrives from the server (events 3 and 4); here we show the
      // outcome inline only, so nothing is announced twice.
      const b = await api.renew(booking.id, { duration_minutes: minutes, ...cardPayload(method, card) });
      setResult({ ok: true, text: `Renewed until ${time(b.end_at)}.` });
      onRenewed(b);
    } catch (err) {
      setResult({ ok: false, text: `Renewal failed: ${errorMessage(err)}` });
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="card form" onSubmit={(e) => void submit(e)} data-testid="renew-form">
      <h2>Renew this booking</h2>
      <label className="field">
        <span>Duration (minutes)</span>
        <input
          type="number"
          min={1}
          max={1440}
          value={minutes}
          onChange={(e) => setMinutes(Math.max(1, Number(e.target.value) || 1))}
          data-testid="renew-duration"
          required
        />
      </label>
      <PaymentFields prefix="renew" method={method} onMethod={setMethod} card={card} onCard={setCard} />
      <button type="submit" className="btn btn--primary" disabled={busy} data-testid="renew-button">
        {busy ? 'Renewing…' : 'Renew'}
      </button>
    </form>
  );
}
