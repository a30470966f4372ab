-- The developer API (issue 16): each user's API keys, and the answers to creates sent with an
-- Idempotency-Key.

-- A key is "fk_<prefix>_<secret>": the prefix is shown in the dashboard and finds the row; only
-- the SHA-256 of the secret is kept (256 random bits: a plain hash is enough), so a lost key is
-- replaced, never recovered. A revoked key stays listed, refused.
CREATE TABLE api_keys (
    id              BIGSERIAL PRIMARY KEY,
    owner_id        BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name            TEXT    NOT NULL,
    prefix          TEXT    NOT NULL UNIQUE,
    secret_hash     TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    last_used_at    BIGINT,
    revoked_at      BIGINT
);
CREATE INDEX api_keys_owner ON api_keys (owner_id, id);

-- A create sent with an Idempotency-Key: written in the creating transaction itself, so the
-- thing created and the answer kept exist together or not at all. A repeat of the same request
-- gets the kept answer; the same key with another request is refused. Kept a day.
CREATE TABLE api_idempotency (
    key_id          BIGINT  NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    idempotency_key TEXT    NOT NULL,
    request_hash    TEXT    NOT NULL,
    status          BIGINT  NOT NULL,
    body            TEXT    NOT NULL,
    location        TEXT,
    created_at      BIGINT  NOT NULL,
    PRIMARY KEY (key_id, idempotency_key)
);
CREATE INDEX api_idempotency_created ON api_idempotency (created_at);
