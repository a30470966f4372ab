-- A secret to show this session once, on the page it is redirected to after the POST that made
-- it (a new client link): sealed, and taken (cleared) when shown, so a reload does not resubmit
-- and does not show it again.
ALTER TABLE sessions ADD COLUMN reveal TEXT;
