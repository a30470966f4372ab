-- Mail (issue 16): who is told about a connection's incidents, what is still to be told, and
-- the outbox of messages with their delivery.

-- A user's mail settings: connection mail on or off, and when reminders follow while an
-- incident stays open (days after it opened, comma-separated, ascending).
ALTER TABLE users ADD COLUMN notify_enabled BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE users ADD COLUMN reminder_days TEXT NOT NULL DEFAULT '1,3,7';
-- Per connection: on or off, and extra recipients (normalized addresses, comma-separated).
ALTER TABLE connections ADD COLUMN notify_enabled BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE connections ADD COLUMN notify_extra TEXT NOT NULL DEFAULT '';

-- The outbox. A message is written whole (its body sealed, as it holds one-time links) in the
-- transaction that decides it, and sent by its `mail-send` job. `message_id` is the Message-ID
-- header, the same on every attempt, so a resend after a crash is recognisably the same mail.
-- status: 'pending' (to send), 'sent', 'kept' (no SMTP server configured: only in the
-- dashboard's mailbox), 'failed' (refused for good, or undeliverable for too long),
-- 'withdrawn' (not sent yet when what it says stopped being true: fixed, or disconnected).
CREATE TABLE mail_messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    recipient       TEXT    NOT NULL,
    -- 'alerts' (connections), 'account' (password reset, invitation), 'test'.
    category        TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    body_sealed     TEXT    NOT NULL,
    message_id      TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    attempts        BIGINT  NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      BIGINT  NOT NULL,
    sent_at         BIGINT
);
CREATE INDEX mail_messages_user ON mail_messages (user_id, id);

-- What a recipient is to be told about an incident: its first notice (stage 0), each reminder
-- (stage 1, 2, ...) and, once it closes, that it was resolved (kind 'restored'). The unique
-- constraint is the "exactly once per incident and recipient". A notice waits until due_at (a
-- short hold, so that many connections breaking at once make one message) and is then folded
-- into a message (message_id set). Written and read only under its connection's row lock.
CREATE TABLE notices (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id     BIGINT  NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    connection_id   BIGINT  NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    recipient       TEXT    NOT NULL,
    -- The incident's kind when decided ('reconnect_needed', 'expiry_at_risk',
    -- 'data_access_expiring'), or 'restored'.
    kind            TEXT    NOT NULL,
    stage           BIGINT  NOT NULL,
    due_at          BIGINT  NOT NULL,
    message_id      BIGINT  REFERENCES mail_messages (id) ON DELETE SET NULL,
    composed        BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      BIGINT  NOT NULL,
    CONSTRAINT notices_once UNIQUE (incident_id, recipient, kind, stage)
);
CREATE INDEX notices_due ON notices (due_at) WHERE NOT composed;
CREATE INDEX notices_connection ON notices (connection_id, message_id);

-- Recipients who turned a category of one owner's mail off (the one-click List-Unsubscribe,
-- RFC 8058): the mail of other owners who also tell that address is not affected.
CREATE TABLE mail_optouts (
    owner_id        BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    recipient       TEXT    NOT NULL,
    category        TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    PRIMARY KEY (owner_id, recipient, category)
);
