-- Money a parking operator can trust (issue 13).
--
-- - `payments`: every charge and refund that ever went to the payment gateway, each with the
--   idempotency key the gateway received. A charge row is committed *before* the gateway is called,
--   so a charge can never exist without a row saying what it was for; its status is its outcome:
--   `pending` (sent, or about to be: uncertain until settled), `succeeded` (it pays a booking window:
--   the window's `payment_id` points at it, written in the same transaction), `failed` (declined:
--   no money moved) or `refunded` (given back or voided: its one `refund` row carries the
--   gateway's answer). A refund row is `pending` until the gateway confirms it, then `succeeded`
--   (or `failed`, for a human).
-- - `booking_windows`: a booking's windows, one per paid period (the first, then one per renewal),
--   each with its own payment, so a renewal never rewrites how an earlier window was paid.
-- - `bookings`: the payment columns move to the windows (the booking's payment status and amount
--   are read as aggregates of its windows); new status `lapsed` (a request that was not approved
--   within the hold); `requested_at_ms` (when the current request was made: the hold counts from
--   it) and `approved_at_ms` (a renewal of a booking never approved is a new request).
--
-- SQLite cannot alter a CHECK constraint or drop a column used by one, so `bookings` is rebuilt
-- (the recommended 12-step procedure, inside the migration's transaction). No other table
-- references `bookings` before this migration, so dropping the old table breaks no foreign key.

CREATE TABLE bookings_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id          INTEGER NOT NULL REFERENCES users (id),
    slot_id          INTEGER NOT NULL REFERENCES slots (id),
    -- The current window [start, end), the last of `booking_windows`: the slot is held for it.
    start_at_ms      INTEGER NOT NULL,
    end_at_ms        INTEGER NOT NULL,
    -- Length of the current window as asked for: tells a retried renewal from a new one.
    duration_minutes INTEGER NOT NULL CHECK (duration_minutes > 0),
    status           TEXT    NOT NULL
        CHECK (status IN ('requested', 'confirmed', 'declined', 'expired', 'lapsed')),
    car_wash_status  TEXT    CHECK (car_wash_status IN ('pending', 'done')),
    decline_reason   TEXT,
    warned_end_at_ms INTEGER,
    created_at_ms    INTEGER NOT NULL,
    renewed_at_ms    INTEGER,
    -- When the current request was made (creation, or a renewal that is a new request): an
    -- unapproved request lapses `booking.request_hold` after it.
    requested_at_ms  INTEGER NOT NULL,
    -- When an admin approved it; NULL for a booking never approved.
    approved_at_ms   INTEGER,
    CHECK (end_at_ms > start_at_ms)
);

INSERT INTO bookings_new (id, user_id, slot_id, start_at_ms, end_at_ms, duration_minutes, status,
        car_wash_status, decline_reason, warned_end_at_ms, created_at_ms, renewed_at_ms,
        requested_at_ms, approved_at_ms)
    SELECT id, user_id, slot_id, start_at_ms, end_at_ms, duration_minutes, status,
        car_wash_status, decline_reason, warned_end_at_ms, created_at_ms, renewed_at_ms,
        COALESCE(renewed_at_ms, created_at_ms),
        -- Only a confirmed booking is known to have been approved (before 1002 a renewal could
        -- confirm without approval, so an expired booking's past is unknown: treated as a request).
        CASE WHEN status = 'confirmed' THEN COALESCE(renewed_at_ms, created_at_ms) END
    FROM bookings;

-- The gateway calls. `booking_id` stays NULL until the booking exists (a create is charged before
-- its booking is inserted); `window_seq` names the window the charge pays (or the refund returns).
CREATE TABLE payments (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         INTEGER NOT NULL REFERENCES users (id),
    booking_id      INTEGER REFERENCES bookings_new (id),
    window_seq      INTEGER,
    kind            TEXT    NOT NULL CHECK (kind IN ('charge', 'refund')),
    -- A refund gives back exactly one charge, and a charge is given back at most once.
    refund_of       INTEGER UNIQUE REFERENCES payments (id),
    -- Sent to the gateway with the call, so a repeated call (a retry, recovery after a crash) is
    -- the same call: never a second charge or a second refund.
    idempotency_key TEXT    NOT NULL UNIQUE,
    amount_cents    INTEGER NOT NULL CHECK (amount_cents >= 0),
    status          TEXT    NOT NULL,
    -- The gateway's reference once it answered.
    gateway_ref     TEXT,
    created_at_ms   INTEGER NOT NULL,
    settled_at_ms   INTEGER,
    CHECK ((kind = 'refund') = (refund_of IS NOT NULL)),
    CHECK ((kind = 'charge' AND status IN ('pending', 'succeeded', 'failed', 'refunded'))
        OR (kind = 'refund' AND status IN ('pending', 'succeeded', 'failed')))
);
CREATE INDEX payments_by_booking ON payments (booking_id);
-- Recovery's work list: charges still pending, refunds not yet confirmed.
CREATE INDEX payments_unsettled ON payments (created_at_ms) WHERE status = 'pending';

CREATE TABLE booking_windows (
    booking_id          INTEGER NOT NULL REFERENCES bookings_new (id),
    seq                 INTEGER NOT NULL CHECK (seq > 0),
    start_at_ms         INTEGER NOT NULL,
    end_at_ms           INTEGER NOT NULL,
    duration_minutes    INTEGER NOT NULL CHECK (duration_minutes > 0),
    amount_cents        INTEGER NOT NULL CHECK (amount_cents >= 0),
    payment_method      TEXT    NOT NULL CHECK (payment_method IN ('cash', 'online')),
    -- pending: cash not yet verified; paid; refunded (an online window given back unused).
    payment_status      TEXT    NOT NULL CHECK (payment_status IN ('pending', 'paid', 'refunded')),
    -- The charge that paid this window (online only): at most one window per charge.
    payment_id          INTEGER UNIQUE REFERENCES payments (id),
    cash_verified_at_ms INTEGER,
    created_at_ms       INTEGER NOT NULL,
    PRIMARY KEY (booking_id, seq),
    CHECK (end_at_ms > start_at_ms),
    CHECK ((payment_method = 'online') = (payment_id IS NOT NULL))
) WITHOUT ROWID;

-- Every existing booking becomes one window: its current period, with everything it was charged
-- (earlier windows were overwritten by renewals before this migration and cannot be recovered).
-- An online booking's charge becomes a `succeeded` payment with its gateway reference.
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

DROP TABLE bookings;
-- Renaming also rewrites the references of `payments` and `booking_windows` to `bookings`.
ALTER TABLE bookings_new RENAME TO bookings;

CREATE INDEX bookings_by_user ON bookings (user_id, id);
CREATE INDEX bookings_by_slot_active ON bookings (slot_id, end_at_ms)
    WHERE status IN ('requested', 'confirmed');
-- The scheduler's ordered set of deadlines: active bookings by end ...
CREATE INDEX bookings_active_by_end ON bookings (end_at_ms)
    WHERE status IN ('requested', 'confirmed');
-- ... and requests by the time their hold started (they lapse `request_hold` after it).
CREATE INDEX bookings_requested_by_time ON bookings (requested_at_ms) WHERE status = 'requested';

-- The overlap guard of 1001, recreated on the rebuilt table (unchanged).
CREATE TRIGGER bookings_no_overlap_insert
BEFORE INSERT ON bookings
WHEN NEW.status IN ('requested', 'confirmed')
BEGIN
    SELECT RAISE(ABORT, 'slot_taken')
    WHERE EXISTS (
        SELECT 1 FROM bookings b
        WHERE b.slot_id = NEW.slot_id
          AND b.status IN ('requested', 'confirmed')
          AND b.start_at_ms < NEW.end_at_ms
          AND NEW.start_at_ms < b.end_at_ms
    );
END;

CREATE TRIGGER bookings_no_overlap_update
BEFORE UPDATE OF status, slot_id, start_at_ms, end_at_ms ON bookings
WHEN NEW.status IN ('requested', 'confirmed')
BEGIN
    SELECT RAISE(ABORT, 'slot_taken')
    WHERE EXISTS (
        SELECT 1 FROM bookings b
        WHERE b.slot_id = NEW.slot_id
          AND b.id != NEW.id
          AND b.status IN ('requested', 'confirmed')
          AND b.start_at_ms < NEW.end_at_ms
          AND NEW.start_at_ms < b.end_at_ms
    );
END;
