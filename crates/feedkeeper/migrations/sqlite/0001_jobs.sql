-- Background work as rows: each (kind, subject) is due at a time and claimed under a lease, so a
-- crashed node's work is picked up by another and nothing runs twice at once.
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    due_at      BIGINT  NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    attempts    BIGINT  NOT NULL DEFAULT 0,
    last_error  TEXT,
    created_at  BIGINT  NOT NULL,
    CONSTRAINT jobs_kind_subject_key UNIQUE (kind, subject)
);
CREATE INDEX jobs_kind_due ON jobs (kind, due_at);
