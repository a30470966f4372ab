-- Connected Instagram accounts, their lifecycle (status, incidents, audit log), and the Meta
-- data-deletion requests we answered.

CREATE TABLE connections (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id                BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The Instagram professional-account id (17841...): reconnecting matches on it.
    ig_user_id              TEXT    NOT NULL,
    -- Other ids Meta may use for the same person in callbacks: the app-scoped Instagram id and,
    -- for Facebook Login, the app-scoped Facebook user id.
    app_scoped_id           TEXT,
    fb_user_id              TEXT,
    username                TEXT    NOT NULL,
    display_name            TEXT,
    account_type            TEXT,
    profile_picture_url     TEXT,
    -- 'instagram' (Instagram Login) or 'facebook' (Business connection through a Page).
    login_kind              TEXT    NOT NULL,
    fb_page_id              TEXT,
    fb_page_name            TEXT,
    -- AES-256-GCM sealed token (see crypto.rs); NULL once its data was purged.
    token_sealed            TEXT,
    token_issued_at         BIGINT,
    token_expires_at        BIGINT,
    data_access_expires_at  BIGINT,
    -- 'active', 'degraded' or 'needs_reconnect' (with reason).
    status                  TEXT    NOT NULL,
    reason                  TEXT,
    status_changed_at       BIGINT  NOT NULL,
    degraded_since          BIGINT,
    consecutive_failures    BIGINT  NOT NULL DEFAULT 0,
    backoff_until           BIGINT,
    last_refresh_at         BIGINT,
    last_check_at           BIGINT,
    last_sync_at            BIGINT,
    last_error              TEXT,
    last_error_code         BIGINT,
    last_error_subcode      BIGINT,
    last_error_at           BIGINT,
    deauthorized_at         BIGINT,
    data_purged_at          BIGINT,
    created_at              BIGINT  NOT NULL,
    updated_at              BIGINT  NOT NULL,
    CONSTRAINT connections_owner_ig_user_key UNIQUE (owner_id, ig_user_id)
);
CREATE INDEX connections_ig_user ON connections (ig_user_id);
CREATE INDEX connections_app_scoped ON connections (app_scoped_id);
CREATE INDEX connections_fb_user ON connections (fb_user_id);

-- Every state change and token event of a connection: when, why, and the Meta error behind it.
CREATE TABLE audit_log (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_id   BIGINT  NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    at              BIGINT  NOT NULL,
    event           TEXT    NOT NULL,
    from_status     TEXT,
    to_status       TEXT,
    reason          TEXT,
    detail          TEXT,
    meta_code       BIGINT,
    meta_subcode    BIGINT,
    actor           TEXT    NOT NULL
);
CREATE INDEX audit_log_connection ON audit_log (connection_id, at);

-- A period in which a person must act on a connection. At most one is open per connection.
CREATE TABLE incidents (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_id   BIGINT  NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    kind            TEXT    NOT NULL,
    reason          TEXT,
    opened_at       BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    closed_at       BIGINT
);
CREATE UNIQUE INDEX incidents_one_open ON incidents (connection_id) WHERE closed_at IS NULL;

-- Data-deletion requests from Meta, answered with a status URL and confirmation code.
CREATE TABLE deletion_requests (
    confirmation_code   TEXT    PRIMARY KEY,
    meta_user_id        TEXT    NOT NULL,
    requested_at        BIGINT  NOT NULL,
    completed_at        BIGINT,
    connections_deleted BIGINT  NOT NULL DEFAULT 0
);

-- Links an owner hands to a client (or to an account holder, to reconnect) so they can log in on
-- their own device. Only the SHA-256 of the link's secret is stored.
CREATE TABLE connect_links (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash      TEXT    NOT NULL,
    owner_id        BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    label           TEXT    NOT NULL,
    client_email    TEXT,
    -- Set for a reconnect link: the connection the login must renew.
    connection_id   BIGINT  REFERENCES connections (id) ON DELETE CASCADE,
    single_use      BOOLEAN NOT NULL,
    expires_at      BIGINT  NOT NULL,
    created_at      BIGINT  NOT NULL,
    used_at         BIGINT,
    use_count       BIGINT  NOT NULL DEFAULT 0,
    revoked_at      BIGINT,
    CONSTRAINT connect_links_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX connect_links_owner ON connect_links (owner_id);

-- OAuth 'state' values in flight: random, single use, expiring, and bound to the dashboard
-- session or the client-link browser that started the login. Only their SHA-256 is stored.
CREATE TABLE oauth_states (
    state_hash      TEXT    PRIMARY KEY,
    provider        TEXT    NOT NULL,
    owner_id        BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- SHA-256 of what the browser must show at the callback: the session's CSRF token (owner) or
    -- the client-link cookie (client).
    binding_hash    TEXT    NOT NULL,
    link_id         BIGINT  REFERENCES connect_links (id) ON DELETE CASCADE,
    -- A reconnect must renew this connection.
    connection_id   BIGINT  REFERENCES connections (id) ON DELETE CASCADE,
    created_at      BIGINT  NOT NULL,
    expires_at      BIGINT  NOT NULL,
    used_at         BIGINT
);
CREATE INDEX oauth_states_expires ON oauth_states (expires_at);

-- After a Facebook login with several Pages: the Pages (with their sealed tokens) waiting for the
-- person to pick which to connect.
CREATE TABLE page_choices (
    id_hash         TEXT    PRIMARY KEY,
    owner_id        BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    binding_hash    TEXT    NOT NULL,
    link_id         BIGINT  REFERENCES connect_links (id) ON DELETE CASCADE,
    connection_id   BIGINT  REFERENCES connections (id) ON DELETE CASCADE,
    fb_user_id      TEXT,
    pages_sealed    TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    expires_at      BIGINT  NOT NULL
);
