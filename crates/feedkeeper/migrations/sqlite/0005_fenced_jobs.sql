-- Fenced work: every claim of a job carries a random lease token (writes about the job check it),
-- leases are measured on the machines' wall clock in milliseconds and renewed while the job runs,
-- a job that keeps failing goes dead for an operator to look at, and a request to run a job that
-- is running right now is kept for when it finishes.
ALTER TABLE jobs ADD COLUMN lease_token TEXT;
ALTER TABLE jobs ADD COLUMN lease_expires_ms BIGINT;
ALTER TABLE jobs ADD COLUMN requested_due_at BIGINT;
ALTER TABLE jobs ADD COLUMN last_error_at BIGINT;
ALTER TABLE jobs ADD COLUMN dead_at BIGINT;
ALTER TABLE jobs DROP COLUMN lease_until;
UPDATE jobs SET lease_owner = NULL;
CREATE INDEX jobs_subject ON jobs (subject);

-- Writes about a connection compare and bump this, so a writer that read an older row (a probe
-- of the old token racing a reconnect) changes nothing.
ALTER TABLE connections ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
CREATE INDEX connections_fb_page ON connections (fb_page_id);

-- needs_reconnect connections are probed again on a slow schedule (a false alarm heals), so every
-- connection that still holds a token has a lifecycle job; earlier versions deleted it.
INSERT INTO jobs (kind, subject, due_at, created_at)
SELECT 'lifecycle', CAST(c.id AS TEXT), c.updated_at, c.updated_at FROM connections c
WHERE c.token_sealed IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.kind = 'lifecycle' AND j.subject = CAST(c.id AS TEXT));

-- Deleting the data of a deauthorized connection is a job of its own (the purge job re-reads the
-- grace period when it runs).
INSERT INTO jobs (kind, subject, due_at, created_at)
SELECT 'purge', CAST(c.id AS TEXT), c.deauthorized_at, c.deauthorized_at FROM connections c
WHERE c.deauthorized_at IS NOT NULL AND c.data_purged_at IS NULL;

-- A configuration mistake (a wrong app secret, an app not Live) is one problem for the operator,
-- not a reason to mark people's connections broken. One row per kind of problem.
CREATE TABLE operator_problems (
    kind            TEXT    PRIMARY KEY,
    message         TEXT    NOT NULL,
    meta_code       BIGINT,
    first_seen_at   BIGINT  NOT NULL,
    last_seen_at    BIGINT  NOT NULL,
    occurrences     BIGINT  NOT NULL DEFAULT 1,
    resolved_at     BIGINT
);

-- Meta's signed_request callbacks already processed (by the hash of their signature), so a
-- captured request replayed later does nothing.
CREATE TABLE processed_callbacks (
    signature_hash  TEXT    PRIMARY KEY,
    kind            TEXT    NOT NULL,
    issued_at       BIGINT  NOT NULL,
    processed_at    BIGINT  NOT NULL,
    -- For a data-deletion request: the confirmation code it was answered with, given again.
    confirmation_code TEXT
);
CREATE INDEX processed_callbacks_issued ON processed_callbacks (issued_at);

-- "Check now" runs at most once per connection per cooldown: the time of the last one.
ALTER TABLE connections ADD COLUMN manual_check_at BIGINT;
