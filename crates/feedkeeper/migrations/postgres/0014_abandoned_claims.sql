-- Claims of a job in a row whose lease ran out without the job ending (the node running it
-- stopped: a crash, a kill, a job that takes its process down). Past workers.max_attempts the
-- job goes dead instead of being claimed again forever.
ALTER TABLE jobs ADD COLUMN abandoned BIGINT NOT NULL DEFAULT 0;
