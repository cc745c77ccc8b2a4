-- Money a parking operator can trust (issue 13): the same tables and columns as the SQLite
-- engine's 1002, which explains them. PostgreSQL alters in place: the status CHECK is replaced,
-- the payment columns move from `bookings` to `booking_windows`.

ALTER TABLE bookings DROP CONSTRAINT bookings_status_check;
ALTER TABLE bookings ADD CONSTRAINT bookings_status_check
    CHECK (status IN ('requested', 'confirmed', 'declined', 'expired', 'lapsed'));

-- When the current request was made (the hold counts from it), and when an admin approved it.
ALTER TABLE bookings ADD COLUMN requested_at_ms BIGINT;
ALTER TABLE bookings ADD COLUMN approved_at_ms BIGINT;
UPDATE bookings SET requested_at_ms = COALESCE(renewed_at_ms, created_at_ms),
    -- Only a confirmed booking is known to have been approved (see the SQLite migration).
    approved_at_ms = CASE WHEN status = 'confirmed' THEN COALESCE(renewed_at_ms, created_at_ms) END;
ALTER TABLE bookings ALTER COLUMN requested_at_ms SET NOT NULL;

CREATE TABLE payments (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         BIGINT NOT NULL REFERENCES users (id),
    booking_id      BIGINT REFERENCES bookings (id),
    window_seq      BIGINT,
    kind            TEXT   NOT NULL CHECK (kind IN ('charge', 'refund')),
    refund_of       BIGINT UNIQUE REFERENCES payments (id),
    idempotency_key TEXT   NOT NULL UNIQUE,
    amount_cents    BIGINT NOT NULL CHECK (amount_cents >= 0),
    status          TEXT   NOT NULL,
    gateway_ref     TEXT,
    created_at_ms   BIGINT NOT NULL,
    settled_at_ms   BIGINT,
    CHECK ((kind = 'refund') = (refund_of IS NOT NULL)),
    CHECK ((kind = 'charge' AND status IN ('pending', 'succeeded', 'failed', 'refunded'))
        OR (kind = 'refund' AND status IN ('pending', 'succeeded', 'failed')))
);
CREATE INDEX payments_by_booking ON payments (booking_id);
CREATE INDEX payments_unsettled ON payments (created_at_ms) WHERE status = 'pending';

CREATE TABLE booking_windows (
    booking_id          BIGINT NOT NULL REFERENCES bookings (id),
    seq                 BIGINT NOT NULL CHECK (seq > 0),
    start_at_ms         BIGINT NOT NULL,
    end_at_ms           BIGINT NOT NULL,
    duration_minutes    BIGINT NOT NULL CHECK (duration_minutes > 0),
    amount_cents        BIGINT NOT NULL CHECK (amount_cents >= 0),
    payment_method      TEXT   NOT NULL CHECK (payment_method IN ('cash', 'online')),
    payment_status      TEXT   NOT NULL CHECK (payment_status IN ('pending', 'paid', 'refunded')),
    payment_id          BIGINT UNIQUE REFERENCES payments (id),
    cash_verified_at_ms BIGINT,
    created_at_ms       BIGINT NOT NULL,
    PRIMARY KEY (booking_id, seq),
    CHECK (end_at_ms > start_at_ms),
    CHECK ((payment_method = 'online') = (payment_id IS NOT NULL))
);

INSERT INTO payments (user_id, booking_id, window_seq, kind, idempotency_key, amount_cents, status,
        gateway_ref, created_at_ms, settled_at_ms)
    SELECT user_id, id, 1, 'charge', 'legacy:' || id, amount_cents, 'succeeded', payment_ref,
        created_at_ms, created_at_ms
    FROM bookings WHERE payment_method = 'online';

INSERT INTO booking_windows (booking_id, seq, start_at_ms, end_at_ms, duration_minutes, amount_cents,
        payment_method, payment_status, payment_id, cash_verified_at_ms, created_at_ms)
    SELECT b.id, 1, b.start_at_ms, b.end_at_ms, b.duration_minutes, b.amount_cents, b.payment_method,
        b.payment_status, p.id,
        CASE WHEN b.payment_method = 'cash' AND b.payment_status = 'paid'
             THEN COALESCE(b.renewed_at_ms, b.created_at_ms) END,
        COALESCE(b.renewed_at_ms, b.created_at_ms)
    FROM bookings b LEFT JOIN payments p ON p.idempotency_key = 'legacy:' || b.id;

ALTER TABLE bookings DROP COLUMN payment_method, DROP COLUMN payment_status,
    DROP COLUMN payment_ref, DROP COLUMN amount_cents;

CREATE INDEX bookings_requested_by_time ON bookings (requested_at_ms) WHERE status = 'requested';
