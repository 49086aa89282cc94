// The SQL of sql/ on a real PostgreSQL (Debian's), applied the way
// CloudNativePG's initdb bootstrap applies it: as superuser, in a database
// owned by an ordinary role, in the order the Cluster lists the files.
// Then: re-applied by the owner, and the runtime role's rights probed.
//
// The server is a throw-away cluster in a temporary directory, on a unix
// socket only. As root, it runs as the postgres system user.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { listSqlFiles, repoRoot, run } from './common.mjs';

function pgBinDir() {
  if (process.env.PG_BINDIR) return process.env.PG_BINDIR;
  const base = '/usr/lib/postgresql';
  if (!fs.existsSync(base)) return null;
  const versions = fs.readdirSync(base)
    .filter((v) => fs.existsSync(path.join(base, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? path.join(base, versions[0], 'bin') : null;
}

export class Postgres {
  constructor() {
    this.bin = pgBinDir();
    if (!this.bin) throw new Error('no PostgreSQL server binaries (install postgresql)');
    this.asRoot = process.getuid?.() === 0;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kotte-sql-'));
    if (this.asRoot) {
      const uid = Number(run('id', ['-u', 'postgres']).stdout);
      const gid = Number(run('id', ['-g', 'postgres']).stdout);
      if (!uid) throw new Error('running as root but there is no postgres user');
      fs.chownSync(this.dir, uid, gid);
      fs.chmodSync(this.dir, 0o700);
    }
  }

  exec(cmd, args) {
    const full = path.isAbsolute(cmd) ? cmd : path.join(this.bin, cmd);
    return this.asRoot
      ? run('runuser', ['-u', 'postgres', '--', full, ...args], { cwd: '/' })
      : run(full, args);
  }

  start() {
    const data = path.join(this.dir, 'data');
    let r = this.exec('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync']);
    if (r.status !== 0) throw new Error(`initdb: ${r.stderr.trim()}`);
    r = this.exec('pg_ctl', ['-D', data, '-l', path.join(this.dir, 'log'), '-w', '-o',
      `-k ${this.dir} -c listen_addresses= -c fsync=off`, 'start']);
    if (r.status !== 0) throw new Error(`pg_ctl start: ${r.stderr.trim()} ${this.log()}`);
    this.running = true;
  }

  log() {
    try { return fs.readFileSync(path.join(this.dir, 'log'), 'utf8').slice(-500); } catch { return ''; }
  }

  stop() {
    if (this.running) this.exec('pg_ctl', ['-D', path.join(this.dir, 'data'), '-m', 'immediate', 'stop']);
    this.running = false;
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  // Runs SQL text or a file; returns { ok, out, err }.
  psql(user, db, { sql, file }) {
    const args = ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', this.dir, '-U', user, '-d', db];
    let tmp = null;
    if (file) {
      tmp = path.join(this.dir, `f-${Math.random().toString(36).slice(2)}.sql`);
      fs.copyFileSync(file, tmp);
      fs.chmodSync(tmp, 0o644);
      args.push('-f', tmp);
    } else {
      args.push('-c', sql);
    }
    const r = this.exec(path.join(this.bin, 'psql'), args);
    if (tmp) fs.rmSync(tmp, { force: true });
    return { ok: r.status === 0, out: r.stdout.trim(), err: r.stderr.trim() };
  }
}

// Files in the order the Cluster applies them (by content).
export function bootstrapOrder(docs, sqlFiles = listSqlFiles()) {
  const cluster = docs.find((d) => d.kind === 'Cluster');
  const cms = new Map(docs.filter((d) => d.kind === 'ConfigMap').map((d) => [d.metadata.name, d.data ?? {}]));
  const refs = cluster?.spec?.bootstrap?.initdb?.postInitApplicationSQLRefs?.configMapRefs ?? [];
  return refs.map((r) => {
    const body = cms.get(r.name)?.[r.key];
    return sqlFiles.find((f) => fs.readFileSync(f, 'utf8') === body) ?? null;
  }).filter(Boolean);
}

const CAN = [
  `INSERT INTO kotte_sessions (session_id, user_id, created_at, last_activity, expires_at,
     max_expires_at, idle_timeout_seconds)
   VALUES ('hash-1', '1', now(), now(), now() + interval '30 min', now() + interval '1 hour', 1800)`,
  `UPDATE kotte_sessions SET data = data || '{"csrf_token": "t"}', last_activity = now()
   WHERE session_id = 'hash-1'`,
  `SELECT data FROM kotte_sessions WHERE session_id = 'hash-1' AND expires_at > now()`,
  `DELETE FROM kotte_sessions WHERE expires_at < now()`,
  `INSERT INTO kotte_credentials (id, user_id, name, host, port, database, encrypted_username, encrypted_password,
     key_id, created_at, updated_at)
   VALUES ('00000000-0000-4000-8000-000000000001', '1', 'graphs', 'db.example', 5432, 'kotte',
     '\\x01', '\\x02', 'k1', now(), now())`,
  `UPDATE kotte_credentials SET encrypted_password = '\\x03', key_id = 'k2', updated_at = now()
   WHERE id = '00000000-0000-4000-8000-000000000001'`,
  `SELECT name, host, port, sslmode FROM kotte_credentials WHERE user_id = '1'`,
  `DELETE FROM kotte_credentials WHERE id = '00000000-0000-4000-8000-000000000001'`,
  `INSERT INTO kotte_users (username, password_hash) VALUES ('admin', '$2b$12$abcdefghijklmnopqrstuv')
   ON CONFLICT (username) DO NOTHING RETURNING id, username`,
  `SELECT id, username, password_hash FROM kotte_users WHERE username = 'ADMIN'`,
  `UPDATE kotte_users SET last_login_at = now() WHERE username = 'admin'`,
  `SELECT count(*) FROM kotte_users`,
  `INSERT INTO kotte_audit_events (event, actor_id, request_id, payload)
   VALUES ('auth_success', '1', 'req-1', '{"ip": "127.0.0.1"}')`,
  `SELECT max(version) FROM kotte_schema_migrations`,
];

const CANNOT = [
  'CREATE TABLE kotte_evil (id int)',
  'ALTER TABLE kotte_sessions ADD COLUMN evil int',
  'CREATE INDEX kotte_evil_idx ON kotte_sessions (user_id, data)',
  'DROP TABLE kotte_sessions',
  'TRUNCATE kotte_sessions',
  'ALTER TABLE kotte_sessions OWNER TO kotte_app',
  'DELETE FROM kotte_users',
  'SELECT * FROM kotte_audit_events',
  "UPDATE kotte_audit_events SET event = 'x'",
  'DELETE FROM kotte_audit_events',
  "INSERT INTO kotte_schema_migrations (version, name) VALUES (999, 'evil')",
];

const MUST_FAIL = [
  [`INSERT INTO kotte_credentials (id, user_id, name, host, port, database, encrypted_username, encrypted_password,
      key_id, created_at, updated_at)
    VALUES (gen_random_uuid(), '1', 'p', 'h', 0, 'd', '\\x01', '\\x02', 'k', now(), now())`, 'port 0 is accepted'],
  [`INSERT INTO kotte_credentials (id, user_id, name, host, port, database, encrypted_username, encrypted_password,
      key_id, created_at, updated_at)
    VALUES (gen_random_uuid(), '1', 'dup', 'h', 5432, 'd', '\\x01', '\\x02', 'k', now(), now()),
           (gen_random_uuid(), '1', 'dup', 'h', 5432, 'd', '\\x01', '\\x02', 'k', now(), now())`,
   'two saved connections of one user share a name'],
  ["INSERT INTO kotte_users (username, password_hash) VALUES ('Admin', 'x')", 'user names are case-sensitive'],
  [`INSERT INTO kotte_sessions (session_id, user_id, created_at, last_activity, expires_at,
      max_expires_at) VALUES ('h2', '1', now(), now(), now(), now())`, 'a session without idle timeout is accepted'],
];

const denied = (err) => /permission denied|must be owner/.test(err);

// Runs every SQL sub-check; returns [{ name, problems }].
export function sqlChecks(docs, { files } = {}) {
  const order = files ?? bootstrapOrder(docs);
  const sqlRoot = path.join(repoRoot, 'sql');
  const rel = (f) => (f.startsWith(sqlRoot) ? `sql/${path.relative(sqlRoot, f)}` : path.basename(f));
  const results = [];
  const pg = new Postgres();
  try {
    pg.start();
    const su = (sql) => pg.psql('postgres', 'postgres', { sql });
    su('CREATE ROLE kotte LOGIN');
    su('CREATE DATABASE kotte OWNER kotte');
    const hasAge = pg.psql('postgres', 'kotte',
      { sql: "SELECT count(*) FROM pg_available_extensions WHERE name = 'age'" }).out === '1';

    // 1. bootstrap
    let p = [];
    const skipped = [];
    if (!order.length) p.push('the Cluster applies no file from sql/');
    for (const f of order) {
      if (!hasAge && fs.readFileSync(f, 'utf8').match(/CREATE EXTENSION[^;]*\bage\b/i)) { skipped.push(rel(f)); continue; }
      const r = pg.psql('postgres', 'kotte', { file: f });
      if (!r.ok) p.push(`${rel(f)}: ${r.err.split('\n')[0]}`);
    }
    const migrations = order.filter((f) => f.includes(`${path.sep}migrations${path.sep}`));
    const tables = pg.psql('postgres', 'kotte', { sql:
      "SELECT tablename || ':' || tableowner FROM pg_tables WHERE tablename LIKE 'kotte\\_%' ORDER BY 1" }).out.split('\n');
    for (const t of ['kotte_audit_events', 'kotte_credentials', 'kotte_schema_migrations', 'kotte_sessions', 'kotte_users']) {
      const hit = tables.find((x) => x.startsWith(`${t}:`));
      if (!hit) p.push(`table ${t} missing`);
      else if (!hit.endsWith(':kotte')) p.push(`table ${t} is owned by ${hit.split(':')[1]}, not the database owner`);
    }
    for (const f of migrations) {
      const m = path.basename(f).match(/^(\d+)_/);
      const v = m ? Number(m[1]) : NaN;
      const got = pg.psql('postgres', 'kotte', { sql: `SELECT name FROM kotte_schema_migrations WHERE version = ${v}` }).out;
      if (got !== path.basename(f, '.sql')) p.push(`${rel(f)} did not record itself (version ${v})`);
    }
    results.push({ name: `sql bootstrap as CloudNativePG applies it${skipped.length ? ` (no AGE here: skipped ${skipped.join(', ')})` : ''}`, problems: p });

    // 2. re-apply
    p = [];
    const count = () => pg.psql('postgres', 'kotte', { sql: 'SELECT count(*) FROM kotte_schema_migrations' }).out;
    const before = count();
    for (const f of order.filter((x) => !skipped.includes(rel(x)))) {
      for (const who of ['kotte', 'postgres']) {
        if (who === 'kotte' && f.includes(`${path.sep}extensions${path.sep}`)) continue;
        const r = pg.psql(who, 'kotte', { file: f });
        if (!r.ok) p.push(`${rel(f)} re-applied as ${who}: ${r.err.split('\n')[0]}`);
      }
    }
    if (count() !== before) p.push('re-applying recorded migrations twice');
    results.push({ name: 'sql re-applies cleanly (database owner and superuser)', problems: p });

    // 3. - 5. the runtime role
    su('ALTER ROLE kotte_app LOGIN');
    p = [];
    for (const sql of CAN) {
      const r = pg.psql('kotte_app', 'kotte', { sql });
      if (!r.ok) p.push(`${sql.split('\n')[0].slice(0, 60)}...: ${r.err.split('\n')[0]}`);
    }
    const ci = pg.psql('kotte_app', 'kotte', { sql: "SELECT count(*) FROM kotte_users WHERE username = 'ADMIN'" }).out;
    if (ci !== '1') p.push('user names are not case-insensitive');
    results.push({ name: 'sql kotte_app can do what Kotte does', problems: p });

    p = [];
    for (const sql of CANNOT) {
      const r = pg.psql('kotte_app', 'kotte', { sql });
      if (r.ok) p.push(`kotte_app may: ${sql}`);
      else if (!denied(r.err)) p.push(`${sql}: failed for another reason: ${r.err.split('\n')[0]}`);
    }
    const attrs = pg.psql('postgres', 'kotte', { sql:
      "SELECT rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls FROM pg_roles WHERE rolname = 'kotte_app'" }).out;
    if (attrs !== 'f') p.push('kotte_app has a role attribute beyond LOGIN');
    const owns = pg.psql('postgres', 'kotte', { sql:
      "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = 'kotte_app'" }).out;
    if (owns !== '0') p.push('kotte_app owns objects');
    results.push({ name: 'sql kotte_app has no DDL and cannot read or rewrite the audit trail', problems: p });

    p = [];
    for (const [sql, what] of MUST_FAIL) {
      if (pg.psql('kotte_app', 'kotte', { sql }).ok) p.push(what);
    }
    results.push({ name: 'sql constraints hold', problems: p });
  } catch (e) {
    results.push({ name: 'sql server', problems: [e.message] });
  } finally {
    pg.stop();
  }
  return results;
}
