import { useEffect, useRef, useState, type FormEvent } from 'react';
import { Droplets, MapPin } from 'lucide-react';
import { api, errorMessage, type Lot, type PaymentMethod, type Slot } from '../app/api';
import { cardPayload, Empty, ErrorBox, PageHead, PaymentFields } from '../app/components';
import { money } from '../app/format';
import { useLiveData } from '../app/live';
import { navigate } from '../app/router';
import { notify } from '@parkmate/notify';

export function DriverLotsPage() {
  const { data, error, loading, reload } = useLiveData(() => api.lots().then((r) => r.items));
  const [selected, setSelected] = useState<{ lot: Lot; slot: Slot } | null>(null);
  const lots = data ?? [];

  return (
    <main className="page">
      <PageHead title="Find parking" sub="Pick a free slot, choose how long, and pay by cash or card." />
      <ErrorBox>{error}</ErrorBox>
      {loading && !data && <p className="muted">Loading lots…</p>}
      {data && lots.length === 0 && <Empty testId="lots-empty">No parking lots yet.</Empty>}
      <div className="grid">
        {lots.map((lot) => {
          const free = lot.slots.filter((s) => !s.occupied);
          return (
            <section key={lot.id} className="card lot" data-testid={`lot-${lot.id}`}>
              <header className="lot__head">
                <div>
                  <h2>
                    <MapPin size={16} aria-hidden /> {lot.name}
                  </h2>
                  <p className="muted">
                    {money(lot.price_per_hour_cents)}/hour · by {lot.owner_name}
                  </p>
                </div>
                <span className={`pill ${free.length ? 'pill--confirmed' : 'pill--declined'}`} data-testid={`lot-free-${lot.id}`}>
                  {free.length} free
                </span>
              </header>
              <div className="slots">
                {lot.slots.map((s) => (
                  <button
                    key={s.id}
                    type="button"
                    className={`slot${s.occupied ? ' slot--taken' : ''}${selected?.slot.id === s.id ? ' is-selected' : ''}`}
                    disabled={s.occupied}
                    onClick={() => setSelected({ lot, slot: s })}
                    data-testid={`slot-${s.id}`}
                    data-slot-number={s.number}
                    aria-label={`Slot ${s.number}${s.car_wash ? ', car wash' : ''}${s.occupied ? ', taken' : ', free'}`}
                  >
                    #{s.number}
                    {s.car_wash && <Droplets size={12} aria-hidden />}
                  </button>
                ))}
              </div>
              {selected?.lot.id === lot.id && (
                <BookingForm
                  lot={lot}
                  slot={selected.slot}
                  onCancel={() => {
                    // Back to the slot that opened the form, not to <body>.
                    document.querySelector<HTMLElement>(`[data-testid="slot-${selected.slot.id}"]`)?.focus();
                    setSelected(null);
                  }}
                  onBooked={(id) => {
                    reload();
                    navigate(`/bookings/${id}`);
                  }}
                />
              )}
            </section>
          );
        })}
      </div>
    </main>
  );
}

function BookingForm({ lot, slot, onCancel, onBooked }: { lot: Lot; slot: Slot; onCancel: () => void; onBooked: (id: number) => void }) {
  const [minutes, setMinutes] = useState(60);
  const [wash, setWash] = useState(false);
  const [method, setMethod] = useState<PaymentMethod>('cash');
  const [card, setCard] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const estimate = Math.round((lot.price_per_hour_cents * minutes) / 60);
  // Picking a slot opens this form: focus follows, to its heading (WCAG 2.4.3).
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), [slot.id]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const b = await api.createBooking({
        slot_id: slot.id,
        duration_minutes: minutes,
        car_wash: slot.car_wash && wash,
        ...cardPayload(method, card),
      });
      notify.success(`Booked slot #${b.slot_number} at ${b.lot_name}`, { toastId: `booked-${b.id}` });
      onBooked(b.id);
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="form booking-form" onSubmit={(e) => void submit(e)} data-testid="booking-form">
      <h3 ref={heading} tabIndex={-1}>
        Book slot #{slot.number}
      </h3>
      <label className="field">
        <span>Duration (minutes)</span>
        <input
          type="number"
          min={1}
          max={1440}
          step={1}
          value={minutes}
          onChange={(e) => setMinutes(Math.max(1, Number(e.target.value) || 1))}
          data-testid="booking-duration"
          required
        />
      </label>
      {slot.car_wash && (
        <label className="check">
          <input type="checkbox" checked={wash} onChange={(e) => setWash(e.target.checked)} data-testid="booking-car-wash" />
          Add a car wash
        </label>
      )}
      <PaymentFields prefix="booking" method={method} onMethod={setMethod} card={card} onCard={setCard} />
      <p className="muted">Parking estimate: {money(estimate)}</p>
      <ErrorBox testId="booking-error">{error}</ErrorBox>
      <div className="actions">
        <button type="button" className="btn btn--ghost" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="btn btn--primary" disabled={busy} data-testid="book-button">
          {busy ? 'Booking…' : 'Book now'}
        </button>
      </div>
    </form>
  );
}
