-- Notifications: one row per notification, also for role and broadcast audiences.
CREATE TABLE notifications (
    id            INTEGER PRIMARY KEY AUTOINCREMENT, -- AUTOINCREMENT: ids are never reused
    audience_kind TEXT    NOT NULL CHECK (audience_kind IN ('user', 'role', 'all')),
    user_id       INTEGER,
    role          TEXT,
    level         TEXT    NOT NULL,
    event         TEXT    NOT NULL,
    message       TEXT    NOT NULL,
    data          TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    dedupe_key    TEXT UNIQUE,
    CHECK ((audience_kind = 'user') = (user_id IS NOT NULL)),
    CHECK ((audience_kind = 'role') = (role IS NOT NULL))
);
CREATE INDEX notifications_by_user ON notifications (user_id, id) WHERE audience_kind = 'user';
CREATE INDEX notifications_by_role ON notifications (role, id) WHERE audience_kind = 'role';
CREATE INDEX notifications_for_all ON notifications (id) WHERE audience_kind = 'all';

-- Read state per user: everything up to read_through is read, plus single reads above it.
-- Group notifications thus get per-user read state without a row per recipient.
CREATE TABLE read_watermarks (
    user_id      INTEGER PRIMARY KEY,
    read_through INTEGER NOT NULL
);
CREATE TABLE notification_reads (
    user_id         INTEGER NOT NULL,
    notification_id INTEGER NOT NULL REFERENCES notifications (id),
    PRIMARY KEY (user_id, notification_id)
) WITHOUT ROWID;

-- How far the outbox dispatcher has published; everything above is published at start-up.
CREATE TABLE outbox_cursor (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    published_through INTEGER NOT NULL
);
INSERT INTO outbox_cursor (id, published_through) VALUES (1, 0);
