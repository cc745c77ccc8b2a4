-- A lot's staff as a notification audience: the same as the SQLite engine's 1003, which explains
-- it. PostgreSQL alters the table in place.
ALTER TABLE notifications DROP CONSTRAINT notifications_audience_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_audience_kind_check
    CHECK (audience_kind IN ('user', 'role', 'lot', 'all'));
ALTER TABLE notifications ADD COLUMN lot_id BIGINT;
ALTER TABLE notifications ADD CONSTRAINT notifications_lot_check
    CHECK ((audience_kind = 'lot') = (lot_id IS NOT NULL));
CREATE INDEX notifications_by_lot ON notifications (lot_id, id) WHERE audience_kind = 'lot';
