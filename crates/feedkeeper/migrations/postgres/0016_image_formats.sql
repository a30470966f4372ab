-- The encodings of an image's variants, comma-separated, best first ("avif,webp,jpeg"), once
-- settled. AVIF takes far longer to make than WebP and JPEG, so the `image-avif` job makes it
-- after the image is ready: a widget shows the stored WebP and JPEG as soon as they exist and
-- offers AVIF once it is recorded. NULL means WebP and JPEG only, for now: the AVIF job has not
-- settled yet (or the image was made before AVIF existed here); the maintenance job creates
-- that job for any such image that has none. "webp,jpeg" means AVIF could not be made.
ALTER TABLE images ADD COLUMN formats TEXT;

-- The maintenance job's search for images whose AVIF job is missing stays small.
CREATE INDEX images_avif_pending ON images (key) WHERE formats IS NULL AND widths IS NOT NULL;
