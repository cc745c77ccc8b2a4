import type { ReactNode } from 'react';
import { Banknote } from 'lucide-react';
import { TEST_CARDS, type Booking, type BookingWindow, type PaymentMethod } from './api';
import { dateTime, money, time } from './format';

export function StatusPill({ status }: { status: string }) {
  return (
    <span className={`pill pill--${status}`} data-testid="booking-status" data-status={status}>
      {status}
    </span>
  );
}

export function PaymentPill({ b }: { b: Pick<Booking, 'payment_method' | 'payment_status'> }) {
  const label = b.payment_method === 'cash' ? `cash · ${b.payment_status}` : `card · ${b.payment_status}`;
  return (
    <span className={`pill pill--pay-${b.payment_status}`} data-testid="payment-status" data-payment={b.payment_status}>
      {label}
    </span>
  );
}

/** "Refunded $3.60", the line a refund adds to a booking, a toast or an inbox item. */
export function refundText(cents: number): string {
  return `Refunded ${money(cents)}`;
}

/** What was given back of a booking, when anything was. */
export function RefundNote({ b }: { b: Booking }) {
  if (b.refunded_cents <= 0) return null;
  return (
    <span className="refund-note" data-testid={`refund-${b.id}`}>
      {refundText(b.refunded_cents)}
    </span>
  );
}

/** A window's payment in words: how, how much, and what became of it. */
function windowPayment(w: BookingWindow): string {
  if (w.payment_method === 'cash') {
    return w.payment_status === 'paid'
      ? `Cash ${money(w.amount_cents)}, verified${w.cash_verified_at ? ` ${dateTime(w.cash_verified_at)}` : ''}`
      : `Cash ${money(w.amount_cents)}, not yet verified`;
  }
  if (w.refund) {
    const state = w.refund.status === 'succeeded' ? 'refunded' : w.refund.status === 'failed' ? 'refund failed' : 'refund pending';
    return `Card ${money(w.amount_cents)}, ${state}`;
  }
  return `Card ${money(w.amount_cents)}, paid`;
}

/**
 * A booking's windows, each with its own payment: the first, then one per renewal. With
 * `onVerify` (the lot's owner, an admin), each window whose cash is unverified offers its own
 * "Verify cash".
 */
export function WindowList(props: { b: Booking; onVerify?: (seq: number) => void; busy?: boolean }) {
  const { b, onVerify, busy } = props;
  const ended = b.status === 'declined' || b.status === 'lapsed';
  return (
    <ol className="windows" data-testid={`windows-${b.id}`} aria-label="Windows and payments">
      {b.windows.map((w) => (
        <li key={w.seq} className="windows__item" data-testid={`window-${b.id}-${w.seq}`} data-payment={w.payment_status}>
          <span className="windows__when">
            #{w.seq} · {dateTime(w.start_at)} → {time(w.end_at)}
          </span>
          <span className={`windows__pay windows__pay--${w.payment_status}`}>{windowPayment(w)}</span>
          {w.refund?.reference && <code className="muted">{w.refund.reference}</code>}
          {onVerify && !ended && w.payment_method === 'cash' && w.payment_status === 'pending' && (
            <button
              type="button"
              className="btn btn--small"
              disabled={busy}
              onClick={() => onVerify(w.seq)}
              data-testid={`verify-cash-${b.id}-${w.seq}`}
            >
              <Banknote size={14} aria-hidden /> Verify cash #{w.seq}
            </button>
          )}
        </li>
      ))}
    </ol>
  );
}

export function WashPill({ b }: { b: Booking }) {
  if (!b.car_wash || !b.car_wash_status) return null;
  return <span className={`pill pill--wash-${b.car_wash_status}`}>wash · {b.car_wash_status}</span>;
}

export function ErrorBox({ children, testId }: { children: ReactNode; testId?: string }) {
  if (!children) return null;
  return (
    <p className="alert alert--error" role="alert" data-testid={testId}>
      {children}
    </p>
  );
}

export function Empty({ children, testId }: { children: ReactNode; testId?: string }) {
  return (
    <p className="empty" data-testid={testId}>
      {children}
    </p>
  );
}

export function PageHead({ title, sub, children }: { title: string; sub?: ReactNode; children?: ReactNode }) {
  return (
    <div className="page-head">
      <div>
        <h1>{title}</h1>
        {sub && <p className="muted">{sub}</p>}
      </div>
      {children}
    </div>
  );
}

/** Cash or card, with the test gateway's cards listed as one-click hints. */
export function PaymentFields(props: {
  prefix: string;
  method: PaymentMethod;
  onMethod: (m: PaymentMethod) => void;
  card: string;
  onCard: (c: string) => void;
}) {
  const { prefix, method, onMethod, card, onCard } = props;
  return (
    <fieldset className="field payment">
      <legend>Payment</legend>
      <div className="segmented" role="radiogroup">
        <label className={method === 'cash' ? 'is-on' : ''}>
          <input
            type="radio"
            name={`${prefix}-payment`}
            value="cash"
            checked={method === 'cash'}
            onChange={() => onMethod('cash')}
            data-testid={`${prefix}-payment-cash`}
          />
          Cash
        </label>
        <label className={method === 'online' ? 'is-on' : ''}>
          <input
            type="radio"
            name={`${prefix}-payment`}
            value="online"
            checked={method === 'online'}
            onChange={() => onMethod('online')}
            data-testid={`${prefix}-payment-card`}
          />
          Card
        </label>
      </div>
      {method === 'online' && (
        <>
          <label className="field">
            <span>Card number</span>
            <input
              inputMode="numeric"
              autoComplete="cc-number"
              placeholder="4242 4242 4242 4242"
              value={card}
              onChange={(e) => onCard(e.target.value.replace(/[^\d ]/g, ''))}
              data-testid={`${prefix}-card-number`}
              required
            />
          </label>
          <div className="hints">
            <span className="muted">Test cards:</span>
            {TEST_CARDS.map((c) => (
              <button
                type="button"
                key={c.number}
                className="hint"
                onClick={() => onCard(c.number)}
                data-testid={`${prefix}-test-card-${c.number}`}
                title={c.outcome}
              >
                <code>{c.number.replace(/(\d{4})(?=\d)/g, '$1 ')}</code> <span>{c.outcome}</span>
              </button>
            ))}
          </div>
        </>
      )}
    </fieldset>
  );
}

export function cardPayload(method: PaymentMethod, card: string): { payment_method: PaymentMethod; card_number?: string } {
  return method === 'online' ? { payment_method: 'online', card_number: card.replace(/\s+/g, '') } : { payment_method: 'cash' };
}
