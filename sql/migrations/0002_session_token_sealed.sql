-- Migration 0002: what the PostgreSQL session backend needs beyond 0001.
--
-- session_id holds a keyed hash of the token; list_user still has to hand
-- the tokens back, so each row also carries its token sealed
-- (XChaCha20-Poly1305 under a key derived from SESSION_SECRET_KEY, bound to
-- the row's session_id). A copy of the table is as useless for logging in
-- as before: without the key, neither column gives the token.
--
-- Same rules as 0001: one transaction, idempotent, records itself, names
-- no deployment role.

BEGIN;

ALTER TABLE kotte_sessions ADD COLUMN IF NOT EXISTS token_sealed bytea;

COMMENT ON COLUMN kotte_sessions.token_sealed IS
    'the session token, sealed with a key the database never sees (version byte, nonce, ciphertext)';

INSERT INTO kotte_schema_migrations (version, name)
VALUES (2, '0002_session_token_sealed')
ON CONFLICT (version) DO NOTHING;

COMMIT;
