-- Migration 0006: the query registry (include/kotte/query.h,
-- docs/query-cancel.md): Kotte's running graph queries, so that a cancel
-- request that reaches any replica finds the replica that runs the query.
--
-- kotte_query_replicas: one row per running registry (replica). Its
-- listener connection's backend pid and backend_start say whether it is
-- alive: pg_stat_activity has that pair while the connection exists, and a
-- killed replica's connection ends at once. A later backend that reuses the
-- pid has another backend_start.
--
-- kotte_queries: one row per running query: Kotte's request id, the owner
-- (for the 403 check on whichever replica receives the cancel), the
-- replica that runs it, the backend pid of the connection running it, and
-- when it started (Kotte's one-hour stale limit). No query text: nothing on
-- another replica needs it, and a Cypher text can hold user data.
--
-- No foreign key between them: a replica may register a query before its
-- listener is first up (and its row written), and a purge deletes a dead
-- replica's row and its queries in one statement.
--
-- Same rules as 0001: one transaction, idempotent, records itself, names
-- no deployment role (sql/roles/app_role.sql grants).

BEGIN;

CREATE TABLE IF NOT EXISTS kotte_query_replicas (
    replica_id     text        PRIMARY KEY CHECK (length(replica_id) BETWEEN 1 AND 64),
    channel        text        NOT NULL CHECK (length(channel) BETWEEN 1 AND 63),
    listener_pid   integer     NOT NULL,
    listener_start timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS kotte_queries (
    request_id  text        PRIMARY KEY CHECK (length(request_id) BETWEEN 1 AND 255),
    user_id     text        NOT NULL CHECK (length(user_id) BETWEEN 1 AND 255),
    replica_id  text        NOT NULL,
    backend_pid integer     NOT NULL DEFAULT 0,
    started_at  timestamptz NOT NULL
);

CREATE INDEX IF NOT EXISTS kotte_queries_user_id_idx ON kotte_queries (user_id);
CREATE INDEX IF NOT EXISTS kotte_queries_replica_id_idx ON kotte_queries (replica_id);

COMMENT ON TABLE kotte_queries IS
    'running Kotte graph queries (libkotte query registry); no query text';
COMMENT ON TABLE kotte_query_replicas IS
    'running registries: their NOTIFY channel and listener connection (liveness via pg_stat_activity)';

INSERT INTO kotte_schema_migrations (version, name)
VALUES (6, '0006_query_registry')
ON CONFLICT (version) DO NOTHING;

COMMIT;
