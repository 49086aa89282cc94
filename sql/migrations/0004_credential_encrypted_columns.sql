-- Migration 0004: the credential table says what its blobs are.
--
-- 0001 named the sealed username and password of a saved connection
-- `username` and `password`, which a DBA reading kotte_credentials takes for
-- plaintext. The seed schema of the deployment plan names them
-- `encrypted_username` and `encrypted_password`; so do they from now on.
--
-- A rename keeps every row and every byte (and the blobs' associated data
-- binds them to user, connection, field and key, not to a column name), so
-- rows sealed before the migration open after it. Renaming is a catalog
-- change only: no table rewrite, a short ACCESS EXCLUSIVE lock.
--
-- A libkotte older than this migration reads and writes the old names, so
-- on a running cluster migrate together with the rollout of the new
-- version (k8s/ does, in each new pod's init container); the new version
-- refuses to open its stores on an older schema and says so.
--
-- Same rules as 0001: one transaction, idempotent (applied again, or on a
-- database whose columns already have the new names, it renames nothing),
-- records itself, names no deployment role.

BEGIN;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns
                WHERE table_schema = current_schema() AND table_name = 'kotte_credentials'
                  AND column_name = 'username') THEN
        ALTER TABLE kotte_credentials RENAME COLUMN username TO encrypted_username;
    END IF;
    IF EXISTS (SELECT 1 FROM information_schema.columns
                WHERE table_schema = current_schema() AND table_name = 'kotte_credentials'
                  AND column_name = 'password') THEN
        ALTER TABLE kotte_credentials RENAME COLUMN password TO encrypted_password;
    END IF;
END
$$;

COMMENT ON COLUMN kotte_credentials.encrypted_username IS
    'the username, sealed by the key ring (XChaCha20-Poly1305), never plaintext; see key_id';
COMMENT ON COLUMN kotte_credentials.encrypted_password IS
    'the password, sealed by the key ring (XChaCha20-Poly1305), never plaintext; see key_id';
COMMENT ON COLUMN kotte_credentials.key_id IS
    'id of the key-ring key that sealed encrypted_username and encrypted_password';

INSERT INTO kotte_schema_migrations (version, name)
VALUES (4, '0004_credential_encrypted_columns')
ON CONFLICT (version) DO NOTHING;

COMMIT;
