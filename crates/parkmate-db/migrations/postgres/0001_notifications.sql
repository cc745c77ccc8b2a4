-- Notifications: one row per notification, also for role and broadcast audiences.
-- The same tables as the SQLite engine's 0001, in PostgreSQL's types. The booking domain keeps its
-- own migrations (versions 1001 and up) in the same database.
--
-- Ids come from an identity sequence, whose order is NOT commit order under concurrent
-- transactions; `insert_notifications` (src/postgres.rs) makes it so with a transaction-scoped
-- advisory lock. Never insert into this table any other way.
CREATE TABLE notifications (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    audience_kind TEXT   NOT NULL CHECK (audience_kind IN ('user', 'role', 'all')),
    user_id       BIGINT,
    role          TEXT,
    level         TEXT   NOT NULL,
    event         TEXT   NOT NULL,
    message       TEXT   NOT NULL,
    data          JSONB  NOT NULL,
    created_at_ms BIGINT NOT NULL,
    dedupe_key    TEXT UNIQUE,
    CHECK ((audience_kind = 'user') = (user_id IS NOT NULL)),
    CHECK ((audience_kind = 'role') = (role IS NOT NULL))
);
CREATE INDEX notifications_by_user ON notifications (user_id, id) WHERE audience_kind = 'user';
CREATE INDEX notifications_by_role ON notifications (role, id) WHERE audience_kind = 'role';
CREATE INDEX notifications_for_all ON notifications (id) WHERE audience_kind = 'all';

-- Read state per user: everything up to read_through is read, plus single reads above it.
CREATE TABLE read_watermarks (
    user_id      BIGINT PRIMARY KEY,
    read_through BIGINT NOT NULL
);
CREATE TABLE notification_reads (
    user_id         BIGINT NOT NULL,
    notification_id BIGINT NOT NULL REFERENCES notifications (id),
    PRIMARY KEY (user_id, notification_id)
);

-- How far the outbox dispatcher has published; everything above is published at start-up.
CREATE TABLE outbox_cursor (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    published_through BIGINT  NOT NULL
);
INSERT INTO outbox_cursor (id, published_through) VALUES (1, 0);
