-- What the sync worker keeps of each connected account: its profile, its newest posts, and the
-- feed's version (what widgets render from), which moves only when something shown changed.

CREATE TABLE profiles (
    connection_id       BIGINT  PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    username            TEXT    NOT NULL,
    name                TEXT,
    biography           TEXT,
    website             TEXT,
    -- Meta's signed CDN URL (expires within days; the image store keeps its own copy later).
    picture_url         TEXT,
    followers_count     BIGINT,
    follows_count       BIGINT,
    media_count         BIGINT,
    updated_at          BIGINT  NOT NULL
);

CREATE TABLE posts (
    connection_id       BIGINT  NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    media_id            TEXT    NOT NULL,
    -- Meta's `timestamp`, Unix seconds (newest first is the feed's order).
    posted_at           BIGINT  NOT NULL,
    -- IMAGE, VIDEO, CAROUSEL_ALBUM, or whatever new type Meta sends (kept, shown as an image).
    media_type          TEXT    NOT NULL,
    -- FEED, REELS, ...
    product_type        TEXT,
    caption             TEXT,
    permalink           TEXT,
    shortcode           TEXT,
    media_url           TEXT,
    thumbnail_url       TEXT,
    alt_text            TEXT,
    like_count          BIGINT,
    comments_count      BIGINT,
    -- A carousel's children as a JSON array of {id, media_type, media_url, thumbnail_url, alt_text}.
    children            TEXT,
    -- The earliest expiry (`oe`) of the post's CDN URLs: the sync renews them before it.
    urls_expire_at      BIGINT,
    first_seen_at       BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL,
    PRIMARY KEY (connection_id, media_id)
);
CREATE INDEX posts_feed_order ON posts (connection_id, posted_at);

CREATE TABLE feeds (
    connection_id       BIGINT  PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    -- Bumped when what a widget shows changed (a new post, an edit, new URLs, a deletion).
    version             BIGINT  NOT NULL,
    -- SHA-256 of the feed as shown: a sync that finds the same hash changes nothing downstream.
    content_hash        TEXT    NOT NULL,
    -- Where a sync stopped when a later page failed (Meta's `after` cursor): the next sync
    -- continues from there. NULL after a complete sync.
    resume_after        TEXT,
    last_complete_at    BIGINT,
    -- The earliest CDN URL expiry among the stored posts and the profile picture.
    urls_expire_at      BIGINT,
    -- Failed syncs in a row (reset by a success), for the retry delay.
    failures            BIGINT  NOT NULL DEFAULT 0,
    last_error          TEXT,
    -- When the version last moved.
    updated_at          BIGINT  NOT NULL
);
