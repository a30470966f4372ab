-- The encodings of an image's variants, comma-separated, best first ("avif,webp,jpeg").
-- AVIF takes far longer to make than WebP and JPEG, so it comes in a second pass of the
-- image's variants job: a widget shows the stored WebP and JPEG as soon as they exist, and
-- offers AVIF once it does. NULL on images made before AVIF existed here: they have WebP and
-- JPEG, and the maintenance job gives them their second pass.
ALTER TABLE images ADD COLUMN formats TEXT;
