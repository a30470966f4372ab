-- Webhooks (issue 16): each user's endpoints, and every delivery with its attempts.

-- An endpoint, with its signing secret (sealed, "whsec_..." inside) and, for a day after a
-- rotation, the one before it: both sign meanwhile, so receivers can switch without a gap.
CREATE TABLE webhook_endpoints (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id                 BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url                     TEXT    NOT NULL,
    -- The event types it gets, comma-separated; empty: all of them.
    events                  TEXT    NOT NULL DEFAULT '',
    secret_sealed           TEXT    NOT NULL,
    previous_secret_sealed  TEXT,
    previous_secret_until   BIGINT,
    enabled                 BOOLEAN NOT NULL DEFAULT TRUE,
    -- Why it was turned off (by its owner, or because deliveries kept failing).
    disabled_reason         TEXT,
    -- Since when every attempt has failed (NULL: the last one worked, or none was made).
    failing_since           BIGINT,
    created_at              BIGINT  NOT NULL,
    updated_at              BIGINT  NOT NULL
);
CREATE INDEX webhook_endpoints_user ON webhook_endpoints (user_id);

-- One event for one endpoint. The body is stored exactly as signed, and event_id (the
-- webhook-id header) is the same on every attempt, so receivers can drop repeats.
-- status: 'pending' (attempts go on), 'delivered' (a 2xx answer), 'failed' (given up).
CREATE TABLE webhook_deliveries (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id         BIGINT  NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id            TEXT    NOT NULL,
    event_type          TEXT    NOT NULL,
    payload             TEXT    NOT NULL,
    status              TEXT    NOT NULL,
    attempts            BIGINT  NOT NULL DEFAULT 0,
    last_status         BIGINT,
    last_error          TEXT,
    last_duration_ms    BIGINT,
    last_attempt_at     BIGINT,
    delivered_at        BIGINT,
    created_at          BIGINT  NOT NULL
);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);

-- The webhook event last announced for an incident ('connection.needs_reconnect' or
-- 'connection.expiring'): a change of kind announces only what is new, and closing announces
-- `connection.restored` exactly when something was announced.
ALTER TABLE incidents ADD COLUMN announced TEXT;
