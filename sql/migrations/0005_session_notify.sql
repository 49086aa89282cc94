-- Migration 0005: tell every replica when a session changes.
--
-- The PostgreSQL session backend may keep a per-process cache of session
-- records (kotte_session_pg_options.cache), so that a read inside the
-- touch interval costs no round trip. Such a cache is only as good as what
-- tells it that a record changed on another replica: here, a NOTIFY on
-- channel kotte_sessions whose payload is the row key (session_id, the
-- keyed hash of the token: never a usable token), sent by a trigger in the
-- same transaction as the change, so that it reaches the listeners exactly
-- when (and only if) the change commits.
--
-- Which changes: every DELETE (a logout, a revoke of all of a user's
-- sessions, a regenerate's old id, the purge, an operator's hand-written
-- DELETE), and every UPDATE that changes more than the sliding times
-- (data, the key, the owner, the idle timeout or the absolute expiry: an
-- update, a set over a live session, a regenerate). A slide alone sends
-- nothing: a cache re-reads a record at least once per touch interval
-- anyway, so it never answers with times older than that bound, and a
-- NOTIFY per slide would cost every replica a wake-up per request. An
-- INSERT of a new key sends nothing either: no cache holds a key that did
-- not exist (a dead record's key is overwritten through ON CONFLICT DO
-- UPDATE, which is an UPDATE here).
--
-- Row-level triggers: the payload names one row. PostgreSQL folds
-- identical notifications of one transaction into one, and delivers them
-- in commit order.
--
-- Same rules as 0001: one transaction, idempotent (CREATE OR REPLACE),
-- records itself, names no deployment role (the function runs with the
-- rights of whoever changes the row; EXECUTE on functions is PUBLIC).

BEGIN;

CREATE OR REPLACE FUNCTION kotte_sessions_notify() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    PERFORM pg_notify('kotte_sessions', OLD.session_id);
    RETURN NULL;
END
$$;

-- Created by a superuser (CloudNativePG's bootstrap), the function would
-- stay the superuser's, and the database owner could not apply this file
-- again: it goes to the database owner, as roles/app_role.sql hands over
-- the tables.
DO $$
DECLARE
    db_owner name;
BEGIN
    SELECT pg_get_userbyid(datdba) INTO db_owner
      FROM pg_database WHERE datname = current_database();
    EXECUTE format('ALTER FUNCTION kotte_sessions_notify() OWNER TO %I', db_owner);
END
$$;

COMMENT ON FUNCTION kotte_sessions_notify() IS
    'NOTIFY kotte_sessions with the row key of a deleted or changed session (cache invalidation, 0005)';

CREATE OR REPLACE TRIGGER kotte_sessions_notify_delete
    AFTER DELETE ON kotte_sessions
    FOR EACH ROW EXECUTE FUNCTION kotte_sessions_notify();

CREATE OR REPLACE TRIGGER kotte_sessions_notify_change
    AFTER UPDATE ON kotte_sessions
    FOR EACH ROW
    WHEN (OLD.data IS DISTINCT FROM NEW.data
          OR OLD.session_id IS DISTINCT FROM NEW.session_id
          OR OLD.user_id IS DISTINCT FROM NEW.user_id
          OR OLD.idle_timeout_seconds IS DISTINCT FROM NEW.idle_timeout_seconds
          OR OLD.created_at IS DISTINCT FROM NEW.created_at
          OR OLD.max_expires_at IS DISTINCT FROM NEW.max_expires_at)
    EXECUTE FUNCTION kotte_sessions_notify();

INSERT INTO kotte_schema_migrations (version, name)
VALUES (5, '0005_session_notify')
ON CONFLICT (version) DO NOTHING;

COMMIT;
