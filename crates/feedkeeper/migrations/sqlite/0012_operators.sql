-- Operators see the whole server (the System status page: every tenant's jobs and errors, the
-- Meta app's problems). The first account is one; `feedkeeper users create --operator` makes
-- more.
ALTER TABLE users ADD COLUMN is_operator BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE users SET is_operator = TRUE WHERE id = (SELECT MIN(id) FROM users);
