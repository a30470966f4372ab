-- One-time links to set a password: an operator's `feedkeeper users reset-password` (until mail
-- arrives) and `feedkeeper users create` (an invitation). Only the SHA-256 of the link's secret
-- is kept; a link works once, and not after it expires.
CREATE TABLE password_resets (
    token_hash  TEXT    PRIMARY KEY,
    user_id     BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    used_at     BIGINT
);
CREATE INDEX password_resets_user ON password_resets (user_id);
