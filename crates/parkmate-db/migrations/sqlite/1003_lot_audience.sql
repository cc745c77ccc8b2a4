-- A lot's staff as a notification audience (issue 13: the lot's employees hear of every new
-- car-wash job live). One row per notification, like a role: `audience_kind = 'lot'` with the
-- lot in `lot_id`; who sees it is decided when it is read, by `lot_employees` (1001), so an
-- assignment takes effect at once for replay, inbox and read state.
--
-- SQLite cannot alter the CHECK on `audience_kind`, so `notifications` is rebuilt; so is
-- `notification_reads`, whose foreign key points at it (dropped first, so no key dangles at any
-- point). Ids are kept, and so is the AUTOINCREMENT high-water mark: an id is never reused.

CREATE TEMP TABLE saved_notifications AS SELECT * FROM notifications;
CREATE TEMP TABLE saved_reads AS SELECT * FROM notification_reads;
CREATE TEMP TABLE saved_sequence AS SELECT seq FROM sqlite_sequence WHERE name = 'notifications';

DROP TABLE notification_reads;
DROP TABLE notifications;

CREATE TABLE notifications (
    id            INTEGER PRIMARY KEY AUTOINCREMENT, -- AUTOINCREMENT: ids are never reused
    audience_kind TEXT    NOT NULL CHECK (audience_kind IN ('user', 'role', 'lot', 'all')),
    user_id       INTEGER,
    role          TEXT,
    lot_id        INTEGER,
    level         TEXT    NOT NULL,
    event         TEXT    NOT NULL,
    message       TEXT    NOT NULL,
    data          TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    dedupe_key    TEXT UNIQUE,
    CHECK ((audience_kind = 'user') = (user_id IS NOT NULL)),
    CHECK ((audience_kind = 'role') = (role IS NOT NULL)),
    CHECK ((audience_kind = 'lot') = (lot_id IS NOT NULL))
);
INSERT INTO notifications (id, audience_kind, user_id, role, level, event, message, data,
        created_at_ms, dedupe_key)
    SELECT id, audience_kind, user_id, role, level, event, message, data, created_at_ms, dedupe_key
    FROM saved_notifications ORDER BY id;
CREATE INDEX notifications_by_user ON notifications (user_id, id) WHERE audience_kind = 'user';
CREATE INDEX notifications_by_role ON notifications (role, id) WHERE audience_kind = 'role';
CREATE INDEX notifications_by_lot ON notifications (lot_id, id) WHERE audience_kind = 'lot';
CREATE INDEX notifications_for_all ON notifications (id) WHERE audience_kind = 'all';

CREATE TABLE notification_reads (
    user_id         INTEGER NOT NULL,
    notification_id INTEGER NOT NULL REFERENCES notifications (id),
    PRIMARY KEY (user_id, notification_id)
) WITHOUT ROWID;
INSERT INTO notification_reads (user_id, notification_id)
    SELECT user_id, notification_id FROM saved_reads;

-- The copy above set the sequence to the highest id kept; the mark may have been higher.
UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT seq FROM saved_sequence))
    WHERE name = 'notifications' AND EXISTS (SELECT 1 FROM saved_sequence);
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'notifications', seq FROM saved_sequence
    WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'notifications');

DROP TABLE saved_notifications;
DROP TABLE saved_reads;
DROP TABLE saved_sequence;
