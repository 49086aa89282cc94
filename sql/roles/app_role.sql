-- Who may do what with Kotte's tables.
--
-- Two roles, on purpose:
--
--   * the database owner (CloudNativePG's initdb `owner`, "kotte" in k8s/)
--     owns the tables and runs migrations -- the only role with DDL rights;
--   * kotte_app, the role the backend logs in as, gets data rights only, and
--     only those Kotte uses: it can read and change sessions and saved
--     connections, read, add and update users, append to the audit trail and
--     read the schema version. It cannot create, alter or drop anything,
--     cannot rewrite or delete audit rows, and owns nothing.
--
-- This file names no password and does not grant LOGIN: on Kubernetes the
-- operator's declarative role management (spec.managed.roles) turns LOGIN on
-- and sets the password from a Secret; elsewhere the operator of the
-- database does. It is idempotent and is re-applied after every migration,
-- so tables a migration adds get their grants here. It needs a role that may
-- create roles (a superuser during CloudNativePG's bootstrap) the first time
-- only; after that the database owner can re-apply it.

BEGIN;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'kotte_app') THEN
        CREATE ROLE kotte_app NOLOGIN;
    END IF;
END
$$;

-- CloudNativePG runs the bootstrap SQL as the postgres superuser, so the
-- tables it creates start out owned by postgres. Hand every Kotte table that
-- a superuser owns to the database owner, so that later migrations, run as
-- the owner, can alter them. (Sequences of bigserial columns follow.)
DO $$
DECLARE
    db_owner name;
    rel      regclass;
BEGIN
    SELECT pg_get_userbyid(datdba) INTO db_owner
      FROM pg_database WHERE datname = current_database();
    FOR rel IN
        SELECT c.oid::regclass
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_roles r     ON r.oid = c.relowner
         WHERE n.nspname = 'public'
           AND c.relkind = 'r'
           AND c.relname LIKE 'kotte\_%'
           AND r.rolsuper
           AND r.rolname <> db_owner
    LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO %I', rel, db_owner);
    END LOOP;
END
$$;

DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO kotte_app', current_database());
END
$$;

GRANT USAGE ON SCHEMA public TO kotte_app;

GRANT SELECT, INSERT, UPDATE, DELETE ON kotte_sessions    TO kotte_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON kotte_credentials TO kotte_app;
GRANT SELECT, INSERT, UPDATE         ON kotte_users       TO kotte_app;
GRANT INSERT                         ON kotte_audit_events TO kotte_app;
GRANT SELECT                         ON kotte_schema_migrations TO kotte_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON kotte_queries     TO kotte_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON kotte_query_replicas TO kotte_app;

-- bigserial ids: INSERT needs nextval() on the column's sequence.
DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO kotte_app',
                   pg_get_serial_sequence('kotte_users', 'id'));
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO kotte_app',
                   pg_get_serial_sequence('kotte_audit_events', 'id'));
END
$$;

COMMIT;
