-- The backlogs /metrics reads at every scrape (db/metrics.rs), each by a small partial index
-- rather than a scan of its whole table: mail waiting to be sent, webhook deliveries waiting,
-- pictures not stored yet, stored images without their variants, open incidents.
CREATE INDEX mail_messages_pending ON mail_messages (created_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (id) WHERE status = 'pending';
CREATE INDEX image_refs_unfetched ON image_refs (connection_id) WHERE image_key IS NULL;
CREATE INDEX images_unprocessed ON images (created_at) WHERE widths IS NULL AND failed IS NULL;
CREATE INDEX incidents_open ON incidents (opened_at) WHERE closed_at IS NULL;
