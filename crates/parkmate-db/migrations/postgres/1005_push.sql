-- Web Push (issue 15, docs/push.md): people's browsers, what each notification owes them, and
-- their preferences. The same tables as the SQLite engine's 1005, in PostgreSQL's types.
--
-- No foreign keys to `notifications` or `users`: tokens minted by the CLI may name users the
-- booking domain never stored, and `notifications` is rebuilt by migrations that change its
-- CHECKs (1003), which a key pointing at it would have to survive.

-- A person's browsers: what `PushSubscription.toJSON()` gave, after the server parsed it. An
-- endpoint belongs to one browser profile, so it is unique: the last person to subscribe it on
-- that browser owns it.
CREATE TABLE push_subscriptions (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       BIGINT NOT NULL,
    endpoint      TEXT    NOT NULL UNIQUE,
    p256dh        TEXT    NOT NULL,
    auth          TEXT    NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX push_subscriptions_by_user ON push_subscriptions (user_id, id);

-- One row per notification and person it reached or owes a push: the delivery funnel
-- (stored → delivered to a socket → seen (`ack`) → read, and pushed / push failed).
-- A notification owes a push while `push_due_at_ms` is set and none of seen, pushed, failed is.
CREATE TABLE notification_deliveries (
    notification_id   BIGINT NOT NULL,
    user_id           BIGINT NOT NULL,
    event             TEXT    NOT NULL,
    delivered_at_ms   BIGINT,
    seen_at_ms        BIGINT,
    push_due_at_ms    BIGINT,
    pushed_at_ms      BIGINT,
    push_failed_at_ms BIGINT,
    push_attempts     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (notification_id, user_id)
);
CREATE INDEX notification_deliveries_owed ON notification_deliveries (push_due_at_ms)
    WHERE push_due_at_ms IS NOT NULL AND seen_at_ms IS NULL
      AND pushed_at_ms IS NULL AND push_failed_at_ms IS NULL;

-- How far the leader's escalation has looked at new notifications (like `outbox_cursor`). It
-- starts at the newest notification: what was stored before push existed owes nothing.
CREATE TABLE push_cursor (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    scanned_through BIGINT NOT NULL
);
INSERT INTO push_cursor (id, scanned_through) SELECT 1, COALESCE(MAX(id), 0) FROM notifications;

-- Per person and event kind: shown in the app (the inbox keeps everything anyway) and pushed.
-- No row: the defaults (docs/push.md).
CREATE TABLE notification_preferences (
    user_id BIGINT NOT NULL,
    event   TEXT    NOT NULL,
    in_app  BOOLEAN NOT NULL,
    push    BOOLEAN NOT NULL,
    PRIMARY KEY (user_id, event)
);

-- Quiet hours in the person's time zone (an IANA name), minutes after local midnight; an end
-- before the start wraps past midnight. Pushes falling inside are held, not dropped.
CREATE TABLE quiet_hours (
    user_id      BIGINT PRIMARY KEY,
    time_zone    TEXT    NOT NULL,
    start_minute BIGINT  NOT NULL CHECK (start_minute BETWEEN 0 AND 1439),
    end_minute   BIGINT  NOT NULL CHECK (end_minute BETWEEN 0 AND 1439)
);
