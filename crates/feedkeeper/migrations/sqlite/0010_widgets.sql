-- Widgets: what a website embeds. The public id is random and unguessable (it is the widget's
-- address); the numeric id stays inside the dashboard.
CREATE TABLE widgets (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id       TEXT    NOT NULL,
    owner_id        BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The account it shows; NULL once that connection was disconnected (the widget then shows
    -- nothing until another account is chosen).
    connection_id   BIGINT  REFERENCES connections (id) ON DELETE SET NULL,
    name            TEXT    NOT NULL,
    -- The settings as JSON (see widgets::settings), validated before they are stored.
    settings        TEXT    NOT NULL,
    -- Bumped by every change of the widget's own settings.
    version         BIGINT  NOT NULL,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    -- Deleted widgets answer 410 Gone (their embed code is still out there).
    deleted_at      BIGINT,
    CONSTRAINT widgets_public_id_key UNIQUE (public_id)
);
CREATE INDEX widgets_owner ON widgets (owner_id);
CREATE INDEX widgets_connection ON widgets (connection_id);

-- The widget caches of every node look for recent changes by these.
CREATE INDEX widgets_updated ON widgets (updated_at);
CREATE INDEX feeds_updated ON feeds (updated_at);
CREATE INDEX connections_status_changed ON connections (status_changed_at);
