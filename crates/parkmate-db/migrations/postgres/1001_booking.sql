-- The parking domain on PostgreSQL: the same tables as the SQLite engine's 1001, in PostgreSQL's
-- types. Lives in the same database as the notifications (0001) so a state change and its
-- notification rows commit in one transaction. Times are Unix milliseconds (UTC), like the
-- notification store's, so window comparisons are plain integer comparisons. Integers are BIGINT
-- throughout so every column decodes as the i64 the code reads.

-- For `slot_id WITH =` in the exclusion constraint below (a GiST index over a plain integer).
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT   NOT NULL,
    email         TEXT   NOT NULL UNIQUE,   -- stored lower-cased by Email::parse
    password_hash TEXT   NOT NULL,          -- argon2id PHC string
    role          TEXT   NOT NULL CHECK (role IN ('user', 'owner', 'admin', 'employee')),
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE lots (
    id                   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_id             BIGINT NOT NULL REFERENCES users (id),
    name                 TEXT   NOT NULL,
    price_per_hour_cents BIGINT NOT NULL CHECK (price_per_hour_cents >= 0)
);
CREATE INDEX lots_by_owner ON lots (owner_id);

CREATE TABLE slots (
    id       BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lot_id   BIGINT  NOT NULL REFERENCES lots (id),
    number   BIGINT  NOT NULL CHECK (number > 0),
    car_wash BOOLEAN NOT NULL DEFAULT FALSE,
    UNIQUE (lot_id, number)
);

CREATE TABLE lot_employees (
    lot_id         BIGINT NOT NULL REFERENCES lots (id),
    user_id        BIGINT NOT NULL REFERENCES users (id),
    assigned_at_ms BIGINT NOT NULL,
    PRIMARY KEY (lot_id, user_id)
);
CREATE INDEX lot_employees_by_user ON lot_employees (user_id);

CREATE TABLE bookings (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id          BIGINT NOT NULL REFERENCES users (id),
    slot_id          BIGINT NOT NULL REFERENCES slots (id),
    -- The current window [start, end); a renewal replaces it.
    start_at_ms      BIGINT NOT NULL,
    end_at_ms        BIGINT NOT NULL,
    -- Length of the current window as asked for: tells a retried renewal from a new one.
    duration_minutes BIGINT NOT NULL CHECK (duration_minutes > 0),
    status           TEXT   NOT NULL CHECK (status IN ('requested', 'confirmed', 'declined', 'expired')),
    payment_method   TEXT   NOT NULL CHECK (payment_method IN ('cash', 'online')),
    payment_status   TEXT   NOT NULL CHECK (payment_status IN ('pending', 'paid')),
    -- The gateway's reference of the last online charge (for refunds and support).
    payment_ref      TEXT,
    -- Everything charged for this booking: the first window plus every renewal.
    amount_cents     BIGINT NOT NULL CHECK (amount_cents >= 0),
    car_wash_status  TEXT   CHECK (car_wash_status IN ('pending', 'done')),
    decline_reason   TEXT,
    -- The end_at the 5-minute warning (event 1) was sent for: once per window, again after a
    -- renewal moves the end. Persisted so a restart (or another node) never warns twice.
    warned_end_at_ms BIGINT,
    created_at_ms    BIGINT NOT NULL,
    renewed_at_ms    BIGINT,
    CHECK (end_at_ms > start_at_ms),
    -- Two active bookings never hold one slot for overlapping windows ([start, end), like
    -- int8range's default bounds). Enforced here for every writer on every node: a racing insert
    -- or renewal waits for the other transaction and fails with SQLSTATE 23P01 if it commits.
    CONSTRAINT slot_taken EXCLUDE USING gist (
        slot_id WITH =,
        int8range(start_at_ms, end_at_ms) WITH &&
    ) WHERE (status IN ('requested', 'confirmed'))
);
CREATE INDEX bookings_by_user ON bookings (user_id, id);
-- The scheduler's ordered set of deadlines: active bookings by end.
CREATE INDEX bookings_active_by_end ON bookings (end_at_ms)
    WHERE status IN ('requested', 'confirmed');
