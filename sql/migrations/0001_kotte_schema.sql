-- Migration 0001: the tables Kotte needs to run several replicas with no
-- Redis -- login sessions, saved connections, users and the audit trail.
--
-- Rules every file in sql/migrations/ follows:
--   * one transaction, so a failure leaves nothing half applied;
--   * idempotent (IF NOT EXISTS everywhere), so applying it again, or to a
--     database an older Kotte already migrated, is harmless;
--   * it records itself in kotte_schema_migrations;
--   * it names no deployment role: grants live in sql/roles/, which is
--     re-applied after every migration.
--
-- Applied by the test suites, by CloudNativePG's initdb bootstrap (through
-- the ConfigMap that sql/kustomization.yaml generates) and by the
-- migration command; all three read this very file.

BEGIN;

-- Case-insensitive user names, as Kotte's own schema has them. citext is a
-- trusted extension (PostgreSQL 13+): the database owner may create it.
CREATE EXTENSION IF NOT EXISTS citext;

CREATE TABLE IF NOT EXISTS kotte_schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Sessions ------------------------------------------------------------------
-- session_id is a keyed hash of the token the browser holds, never the token
-- itself: a copy of this table does not let anyone log in.
CREATE TABLE IF NOT EXISTS kotte_sessions (
    session_id           text        PRIMARY KEY,
    user_id              text        NOT NULL,
    data                 jsonb       NOT NULL DEFAULT '{}',
    created_at           timestamptz NOT NULL,
    last_activity        timestamptz NOT NULL,
    expires_at           timestamptz NOT NULL,
    max_expires_at       timestamptz NOT NULL,
    idle_timeout_seconds integer     NOT NULL
);

COMMENT ON COLUMN kotte_sessions.session_id IS
    'keyed hash of the session token; the token itself is never stored';
COMMENT ON COLUMN kotte_sessions.expires_at IS
    'sliding expiry: min(last_activity + idle_timeout_seconds, max_expires_at)';
COMMENT ON COLUMN kotte_sessions.max_expires_at IS
    'absolute expiry, set at creation; nothing extends it';

CREATE INDEX IF NOT EXISTS kotte_sessions_user_id_idx
    ON kotte_sessions (user_id);
CREATE INDEX IF NOT EXISTS kotte_sessions_expires_at_idx
    ON kotte_sessions (expires_at);

-- Saved connections -----------------------------------------------------------
-- username and password are sealed blobs (XChaCha20-Poly1305, associated
-- data bound to user, connection and field); key_id names the key of the
-- ring that sealed them, so re-sealing with a new key can find old rows.
CREATE TABLE IF NOT EXISTS kotte_credentials (
    id         uuid        PRIMARY KEY,
    user_id    text        NOT NULL,
    name       text        NOT NULL,
    host       text        NOT NULL,
    port       integer     NOT NULL CHECK (port BETWEEN 1 AND 65535),
    database   text        NOT NULL,
    sslmode    text        NOT NULL DEFAULT 'prefer',
    username   bytea       NOT NULL,
    password   bytea       NOT NULL,
    key_id     text        NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    UNIQUE (user_id, name)
);

-- 0004 renames username and password to encrypted_username and
-- encrypted_password; applied again after it, this file leaves them be.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns
                WHERE table_schema = current_schema() AND table_name = 'kotte_credentials'
                  AND column_name = 'username') THEN
        COMMENT ON COLUMN kotte_credentials.username IS 'sealed; see key_id';
        COMMENT ON COLUMN kotte_credentials.password IS 'sealed; see key_id';
        COMMENT ON COLUMN kotte_credentials.key_id IS
            'id of the key-ring key that sealed username and password';
    END IF;
END
$$;

CREATE INDEX IF NOT EXISTS kotte_credentials_key_id_idx
    ON kotte_credentials (key_id);

-- Users -----------------------------------------------------------------------
-- What Kotte's login reads and writes: it looks a user up by name, checks a
-- bcrypt hash, stamps last_login_at, and seeds an "admin" row when the table
-- is empty. ids are handed out as strings (str(id)) and become the user_id
-- of sessions and saved connections.
CREATE TABLE IF NOT EXISTS kotte_users (
    id            bigserial   PRIMARY KEY,
    username      citext      NOT NULL UNIQUE,
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz
);

COMMENT ON COLUMN kotte_users.password_hash IS 'bcrypt hash ($2b$...), never a password';

-- Audit trail -----------------------------------------------------------------
-- One row per security-relevant event (login, logout, CSRF failure, rate
-- limit, credential change). actor_id is NULL before authentication.
CREATE TABLE IF NOT EXISTS kotte_audit_events (
    id         bigserial   PRIMARY KEY,
    event      text        NOT NULL,
    actor_id   text,
    request_id text,
    payload    jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS kotte_audit_events_event_created_idx
    ON kotte_audit_events (event, created_at);
CREATE INDEX IF NOT EXISTS kotte_audit_events_actor_created_idx
    ON kotte_audit_events (actor_id, created_at)
    WHERE actor_id IS NOT NULL;

INSERT INTO kotte_schema_migrations (version, name)
VALUES (1, '0001_kotte_schema')
ON CONFLICT (version) DO NOTHING;

COMMIT;
