import type { ReactNode } from 'react';
import { TEST_CARDS, type Booking, type PaymentMethod } from './api';

export function StatusPill({ status }: { status: string }) {
  return (
    <span className={`pill pill--${status}`} data-testid="booking-status" data-status={status}>
      {status}
    </span>
  );
}

export function PaymentPill({ b }: { b: Booking }) {
  const label = b.payment_method === 'cash' ? `cash · ${b.payment_status}` : `card · ${b.payment_status}`;
  return <span className={`pill pill--pay-${b.payment_status}`}>{label}</span>;
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
