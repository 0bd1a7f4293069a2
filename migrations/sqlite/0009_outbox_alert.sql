-- Retention deletes a resolved alert's mail with it (and the foreign key from outbox to alerts
-- is checked for every alert deleted): without this index each of those scanned the outbox.
CREATE INDEX outbox_alert ON outbox(alert_id) WHERE alert_id IS NOT NULL;
