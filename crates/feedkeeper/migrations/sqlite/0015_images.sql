-- feedkeeper's own copies of the pictures widgets show (the image store, `images/`).
--
-- An original is stored once, by content (`key`: the first 16 bytes of its SHA-256, base64url),
-- however many posts or accounts show it; its variants (widths × formats) are made once, by
-- the `image-variants` job whose subject is the key.
CREATE TABLE images (
    key                 TEXT    PRIMARY KEY,
    -- As shown: after the EXIF orientation is applied.
    width               BIGINT  NOT NULL,
    height              BIGINT  NOT NULL,
    -- What the bytes are (jpeg, webp, png), whatever the URL's name said.
    source_format       TEXT    NOT NULL,
    original_bytes      BIGINT  NOT NULL,
    -- The widths made, comma-separated ("320,640,1080"); NULL until the variants exist.
    widths              TEXT,
    variant_bytes       BIGINT  NOT NULL DEFAULT 0,
    -- A tiny blurred preview (a data: URI under 1 KB) and the dominant colour (#rrggbb).
    placeholder         TEXT,
    color               TEXT,
    -- Why no variants could be made from the original (a corrupt file); never retried.
    failed              TEXT,
    created_at          BIGINT  NOT NULL,
    ready_at            BIGINT,
    -- Set by the clean-up when it first finds no picture using the image; removed a while later.
    unreferenced_since  BIGINT
);

-- Each picture a connection shows, and the stored image it uses. An item is a post's own image
-- (a video's poster), a carousel child's (item_id = the child's id), or the profile picture
-- (media_id = item_id = '@profile').
CREATE TABLE image_refs (
    connection_id       BIGINT  NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    media_id            TEXT    NOT NULL,
    item_id             TEXT    NOT NULL,
    -- Instagram's signed URL as last synced, its path (the picture's name across renewals of
    -- the signature) and its expiry.
    source_url          TEXT    NOT NULL,
    source_path         TEXT    NOT NULL,
    source_expires_at   BIGINT,
    -- The stored copy and the path it was fetched from; a new path is fetched again (the same
    -- bytes find the same key).
    image_key           TEXT    REFERENCES images (key),
    fetched_path        TEXT,
    -- Failed fetches in a row, why, and not before when to try again.
    attempts            BIGINT  NOT NULL DEFAULT 0,
    last_error          TEXT,
    retry_at            BIGINT,
    PRIMARY KEY (connection_id, media_id, item_id)
);
CREATE INDEX image_refs_by_key ON image_refs (image_key);
