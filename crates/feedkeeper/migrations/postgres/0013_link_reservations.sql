-- A single-use link is reserved by the browser that starts a login with it, until that login
-- ends (or its OAuth state would have expired), so two browsers cannot both connect through it.
ALTER TABLE connect_links ADD COLUMN reserved_by TEXT;
ALTER TABLE connect_links ADD COLUMN reserved_until BIGINT;
