-- Migration 0003: let the session backend's slides be HOT updates.
--
-- Every read-and-slide get and every update of a session rewrites
-- expires_at. While 0001's index kotte_sessions_expires_at_idx exists,
-- such an UPDATE changes an indexed column, so PostgreSQL cannot make it a
-- HOT (heap-only tuple) update: each one adds an entry to every index of
-- the table (primary key, user_id, expires_at) -- index bloat, more WAL,
-- slower requests. The purge is the only reader of that index.
--
-- So: the index on expires_at goes, and the purge finds its candidates
-- through expires_bucket instead, the expiry floored to 5 minutes, which a
-- slide changes only when it moves expires_at across a bucket boundary.
-- Almost every slide then leaves every indexed column as it was, and
-- PostgreSQL decides HOT by comparing values, not by which columns a
-- statement assigns.
--
-- Why 5 minutes: a session's slides cross a boundary about once per bucket
-- width of activity (Kotte slides expiry for the first 30 minutes of a
-- session's hour, so at most 7 crossings in a session's life), and a user
-- whose requests come every g seconds causes a non-HOT update on a fraction
-- g/300 of them -- 1 minute would make that 5 times as many. The price is
-- paid by the purge, which runs rarely: its last batch reads the rows of
-- the bucket that holds "now" (at most 5 minutes' worth of expirations) and
-- keeps only those with expires_at < now. The purge stays exact.
--
-- expires_bucket is a generated column: PostgreSQL computes it from
-- expires_at in the very row write that sets expires_at, for every writer
-- (the backend, a replica still running the previous libkotte during a
-- rolling upgrade, an operator's hand-written UPDATE), so the two can never
-- disagree and a row can never miss its bucket. date_bin over timestamptz is
-- immutable; the origin is an absolute instant (PostgreSQL's epoch, which
-- is on a 5-minute boundary), so the buckets are the same in every time zone.
--
-- fillfactor 80: inserts leave a fifth of each page free, so the new
-- version of a sliding row finds room on its own page (a HOT update needs
-- that). A session row is about 300-400 bytes, so that is room for four or
-- five versions per page while concurrent snapshots keep older ones from
-- being pruned. The table holds only live sessions; 25% more pages for it
-- is cheap. Adding a stored generated column rewrites the table, and the
-- rewrite already packs existing rows to the new fillfactor and computes
-- their buckets: rows present before this migration get the room too, and
-- no backfill UPDATE is needed (one would touch every index and leave a dead
-- version of every row). The rewrite holds an ACCESS EXCLUSIVE lock on
-- kotte_sessions until COMMIT; the table holds live sessions only, so that
-- is short.
--
-- Same rules as 0001: one transaction, idempotent (applied again, it finds
-- the column and the index and changes nothing), records itself, names no
-- deployment role.

BEGIN;

ALTER TABLE kotte_sessions
    SET (fillfactor = 80),
    ADD COLUMN IF NOT EXISTS expires_bucket timestamptz NOT NULL
        GENERATED ALWAYS AS
            (date_bin(interval '5 minutes', expires_at, timestamptz '2000-01-01 00:00:00+00'))
        STORED;

COMMENT ON COLUMN kotte_sessions.expires_bucket IS
    'expires_at floored to 5 minutes (generated); indexed for the purge instead of expires_at, so that slides within a bucket are HOT updates';

DROP INDEX IF EXISTS kotte_sessions_expires_at_idx;
CREATE INDEX IF NOT EXISTS kotte_sessions_expires_bucket_idx
    ON kotte_sessions (expires_bucket);

INSERT INTO kotte_schema_migrations (version, name)
VALUES (3, '0003_session_expiry_bucket')
ON CONFLICT (version) DO NOTHING;

COMMIT;
