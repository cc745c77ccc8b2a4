-- The parking domain. Lives in the same database as the notifications (0001) so a state change and
-- its notification rows commit in one transaction. Times are Unix milliseconds (UTC), like the
-- notification store's, so window comparisons are plain integer comparisons.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL,
    email         TEXT    NOT NULL UNIQUE,   -- stored lower-cased by Email::parse
    password_hash TEXT    NOT NULL,          -- argon2id PHC string
    role          TEXT    NOT NULL CHECK (role IN ('user', 'owner', 'admin', 'employee')),
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE lots (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id             INTEGER NOT NULL REFERENCES users (id),
    name                 TEXT    NOT NULL,
    price_per_hour_cents INTEGER NOT NULL CHECK (price_per_hour_cents >= 0)
);
CREATE INDEX lots_by_owner ON lots (owner_id);

CREATE TABLE slots (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    lot_id   INTEGER NOT NULL REFERENCES lots (id),
    number   INTEGER NOT NULL CHECK (number > 0),
    car_wash INTEGER NOT NULL DEFAULT 0 CHECK (car_wash IN (0, 1)),
    UNIQUE (lot_id, number)
);

CREATE TABLE lot_employees (
    lot_id         INTEGER NOT NULL REFERENCES lots (id),
    user_id        INTEGER NOT NULL REFERENCES users (id),
    assigned_at_ms INTEGER NOT NULL,
    PRIMARY KEY (lot_id, user_id)
) WITHOUT ROWID;
CREATE INDEX lot_employees_by_user ON lot_employees (user_id);

CREATE TABLE bookings (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id          INTEGER NOT NULL REFERENCES users (id),
    slot_id          INTEGER NOT NULL REFERENCES slots (id),
    -- The current window [start, end); a renewal replaces it.
    start_at_ms      INTEGER NOT NULL,
    end_at_ms        INTEGER NOT NULL,
    -- Length of the current window as asked for: tells a retried renewal from a new one.
    duration_minutes INTEGER NOT NULL CHECK (duration_minutes > 0),
    status           TEXT    NOT NULL CHECK (status IN ('requested', 'confirmed', 'declined', 'expired')),
    payment_method   TEXT    NOT NULL CHECK (payment_method IN ('cash', 'online')),
    payment_status   TEXT    NOT NULL CHECK (payment_status IN ('pending', 'paid')),
    -- The gateway's reference of the last online charge (for refunds and support).
    payment_ref      TEXT,
    -- Everything charged for this booking: the first window plus every renewal.
    amount_cents     INTEGER NOT NULL CHECK (amount_cents >= 0),
    car_wash_status  TEXT    CHECK (car_wash_status IN ('pending', 'done')),
    decline_reason   TEXT,
    -- The end_at the 5-minute warning (event 1) was sent for: once per window, again after a
    -- renewal moves the end. Persisted so a restart never warns twice.
    warned_end_at_ms INTEGER,
    created_at_ms    INTEGER NOT NULL,
    renewed_at_ms    INTEGER,
    CHECK (end_at_ms > start_at_ms)
);
CREATE INDEX bookings_by_user ON bookings (user_id, id);
CREATE INDEX bookings_by_slot_active ON bookings (slot_id, end_at_ms)
    WHERE status IN ('requested', 'confirmed');
-- The scheduler's ordered set of deadlines: active bookings by end.
CREATE INDEX bookings_active_by_end ON bookings (end_at_ms)
    WHERE status IN ('requested', 'confirmed');

-- Two active bookings never hold one slot for overlapping windows. Enforced here, not only in
-- application code, so it holds for every writer (another process, a racing request, a renewal).
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
