-- Web Push (issue 15, docs/push.md): people's browsers, what each notification owes them, and
-- their preferences.
--
-- No foreign keys to `notifications` or `users`: tokens minted by the CLI may name users the
-- booking domain never stored, and `notifications` is rebuilt by migrations that change its
-- CHECKs (1003), which a key pointing at it would have to survive.

-- A person's browsers: what `PushSubscription.toJSON()` gave, after the server parsed it. An
-- endpoint belongs to one browser profile, so it is unique: the last person to subscribe it on
-- that browser owns it.
CREATE TABLE push_subscriptions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER NOT NULL,
    endpoint      TEXT    NOT NULL UNIQUE,
    p256dh        TEXT    NOT NULL,
    auth          TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX push_subscriptions_by_user ON push_subscriptions (user_id, id);

-- One row per notification and person it reached or owes a push: the delivery funnel
-- (stored → delivered to a socket → seen (`ack`) → read, and pushed / push failed).
-- A notification owes a push while `push_due_at_ms` is set and none of seen, pushed, failed is.
CREATE TABLE notification_deliveries (
    notification_id   INTEGER NOT NULL,
    user_id           INTEGER NOT NULL,
    event             TEXT    NOT NULL,
    delivered_at_ms   INTEGER,
    seen_at_ms        INTEGER,
    push_due_at_ms    INTEGER,
    pushed_at_ms      INTEGER,
    push_failed_at_ms INTEGER,
    push_attempts     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (notification_id, user_id)
) WITHOUT ROWID;
CREATE INDEX notification_deliveries_owed ON notification_deliveries (push_due_at_ms)
    WHERE push_due_at_ms IS NOT NULL AND seen_at_ms IS NULL
      AND pushed_at_ms IS NULL AND push_failed_at_ms IS NULL;

-- How far the leader's escalation has looked at new notifications (like `outbox_cursor`). It
-- starts at the newest notification: what was stored before push existed owes nothing.
CREATE TABLE push_cursor (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    scanned_through INTEGER NOT NULL
);
INSERT INTO push_cursor (id, scanned_through) SELECT 1, COALESCE(MAX(id), 0) FROM notifications;

-- Per person and event kind: shown in the app (the inbox keeps everything anyway) and pushed.
-- No row: the defaults (docs/push.md).
CREATE TABLE notification_preferences (
    user_id INTEGER NOT NULL,
    event   TEXT    NOT NULL,
    in_app  INTEGER NOT NULL CHECK (in_app IN (0, 1)),
    push    INTEGER NOT NULL CHECK (push IN (0, 1)),
    PRIMARY KEY (user_id, event)
) WITHOUT ROWID;

-- Quiet hours in the person's time zone (an IANA name), minutes after local midnight; an end
-- before the start wraps past midnight. Pushes falling inside are held, not dropped.
CREATE TABLE quiet_hours (
    user_id      INTEGER PRIMARY KEY,
    time_zone    TEXT    NOT NULL,
    start_minute INTEGER NOT NULL CHECK (start_minute BETWEEN 0 AND 1439),
    end_minute   INTEGER NOT NULL CHECK (end_minute BETWEEN 0 AND 1439)
);
