-- What every node's widget cache follows: a log of the public ids whose output changed, in the
-- order the changes were committed. Each writer moves the counter as the last statement of its
-- transaction and stamps its rows with the new value; the counter's row lock is held until the
-- commit, so a node that has read a change numbered N has also seen every change before it.
-- No application clock is involved (nodes' clocks may differ; commits may be late).
CREATE TABLE change_counter (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    seq             BIGINT  NOT NULL,
    -- Changes up to here were deleted (older than a day): a node that has not read that far
    -- must start over (reload its list of widgets, drop its cache).
    trimmed_through BIGINT  NOT NULL
);
INSERT INTO change_counter (id, seq, trimmed_through) VALUES (1, 0, 0);

CREATE TABLE widget_changes (
    seq             BIGINT  NOT NULL,
    public_id       TEXT    NOT NULL,
    -- For trimming only (the app clock of the writer).
    created_at      BIGINT  NOT NULL,
    PRIMARY KEY (seq, public_id)
);
CREATE INDEX widget_changes_created ON widget_changes (created_at);

-- The look-back poll by modification times is gone.
DROP INDEX widgets_updated;
DROP INDEX feeds_updated;
DROP INDEX connections_status_changed;
