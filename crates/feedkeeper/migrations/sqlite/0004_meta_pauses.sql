-- Pauses Meta asked for that apply beyond one connection (an app-wide throttle): every node reads
-- them before calling Meta, so one node's "back off" holds for all.
CREATE TABLE meta_pauses (
    scope       TEXT    PRIMARY KEY,
    until_at    BIGINT  NOT NULL,
    reason      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);
