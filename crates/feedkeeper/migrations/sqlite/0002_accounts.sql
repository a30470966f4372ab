-- Dashboard accounts: users, their login sessions, and the failed-login log behind the rate limit.
-- Times are BIGINT Unix seconds, as everywhere.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Normalized (trimmed, lower-case) before it gets here, so UNIQUE means "one account per address".
    email         TEXT    NOT NULL,
    -- An argon2id PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash).
    password_hash TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email)
);

-- One row per logged-in browser. Only the SHA-256 of the cookie value is kept, so a copy of the
-- database lets nobody in. A session ends at expires_at, or once unused for the idle lifetime.
CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash   TEXT    NOT NULL,
    user_id      BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Sent in every form of this session and compared on every POST.
    csrf_token   TEXT    NOT NULL,
    -- A one-time message for the next page this session sees ("Password changed.").
    flash        TEXT,
    created_at   BIGINT  NOT NULL,
    last_seen_at BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL,
    CONSTRAINT sessions_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_last_seen_at ON sessions (last_seen_at);

-- Failed log-ins, kept for the rate-limit window only. `subject` is "email:<sha256 of the
-- address>" or "ip:<address>": stored in the database so the limit holds across nodes.
CREATE TABLE login_failures (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    subject      TEXT    NOT NULL,
    failed_at    BIGINT  NOT NULL
);
CREATE INDEX login_failures_subject ON login_failures (subject, failed_at);
CREATE INDEX login_failures_failed_at ON login_failures (failed_at);
