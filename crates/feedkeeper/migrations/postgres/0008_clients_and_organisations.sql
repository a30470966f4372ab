-- Who a connection was made for: a connection made through a client link remembers the link's
-- label and the client's email (copied, so they outlive the link).
ALTER TABLE connections ADD COLUMN client_label TEXT;
ALTER TABLE connections ADD COLUMN client_email TEXT;

-- The organisation a user presents to their clients on client-link pages (and later in mail)
-- instead of their login email.
ALTER TABLE users ADD COLUMN organisation_name TEXT;

-- The organisation's logo, stored by us (a client's browser never loads it from elsewhere).
-- One row per user; the version changes the logo's URL, so it can be cached for long.
CREATE TABLE organisation_logos (
    user_id         BIGINT  PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    content_type    TEXT    NOT NULL,
    bytes           BYTEA   NOT NULL,
    version         BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);
