// Upgrades migrate themselves: the backend's pods run the migration of
// their own image before they serve (k8s/README.md, "Upgrades").

import { find, idOf, podSpecOf } from './common.mjs';

const BACKEND = 'kotte-backend';
// kotte-server beside it (the mixed overlays) migrates the same way.
const ALSO = ['kotte-server'];
// What runs the migration in each image: kotte-migrate in kotte-server's
// (whose entrypoint is the server), the drop-in's command in the Python one.
const MIGRATORS = [
  { image: /kotte-server/, command: ['/opt/libkotte/bin/kotte-migrate'] },
  { image: /./, command: ['python3', '-m', 'libkotte.kotte', 'migrate'] },
];

// A variable of container @p c: { value } or { secret: {name, key} } or
// { configMap: {name} } when it may come from an envFrom ConfigMap.
function envOf(c, docs, name) {
  const e = (c.env ?? []).find((x) => x.name === name);
  if (e?.value !== undefined) return { value: e.value };
  if (e?.valueFrom?.secretKeyRef) return { secret: e.valueFrom.secretKeyRef };
  for (const ef of c.envFrom ?? []) {
    const cm = ef.configMapRef && find(docs, 'ConfigMap', ef.configMapRef.name);
    if (cm && name in (cm.data ?? {})) return { value: cm.data[name] };
  }
  return null;
}

export function checkMigration(docs) {
  if (!find(docs, 'Deployment', BACKEND)) return [`Deployment/${BACKEND} not in the build`];
  return [BACKEND, ...ALSO].filter((n) => find(docs, 'Deployment', n))
    .flatMap((n) => checkMigrationOf(docs, find(docs, 'Deployment', n)));
}

function checkMigrationOf(docs, dep) {
  const where = idOf(dep);
  const { spec } = podSpecOf(dep);
  const app = (spec.containers ?? [])[0];
  const inits = spec.initContainers ?? [];
  const m = inits.find((c) => MIGRATORS.some((x) => JSON.stringify(c.command) === JSON.stringify(x.command)));
  if (!m) return [`${where}: no init container runs the migration before the backend starts`];
  const problems = [];
  const id = `${where} init container ${m.name}`;
  // the migration of the version about to serve: the backend's own image
  if (m.image !== app?.image) problems.push(`${id}: image ${m.image} is not the backend's (${app?.image})`);
  const want = MIGRATORS.find((x) => x.image.test(app?.image ?? ''));
  if (want && JSON.stringify(m.command) !== JSON.stringify(want.command)) {
    problems.push(`${id}: runs ${JSON.stringify(m.command)}, which is not the migrator of ${app?.image} (${want.command.join(' ')})`);
  }
  // as the database owner, whose credentials the operator keeps in <cluster>-app
  const cluster = docs.find((d) => d.kind === 'Cluster');
  if (!cluster) return [...problems, 'no Cluster in the build'];
  const initdb = cluster.spec?.bootstrap?.initdb ?? {};
  const ownerSecret = initdb.secret?.name ?? `${cluster.metadata.name}-app`;
  for (const [name, key] of [['DB_USER', 'username'], ['DB_PASSWORD', 'password']]) {
    const v = envOf(m, docs, name);
    if (!v?.secret || v.secret.name !== ownerSecret || v.secret.key !== key) {
      problems.push(`${id}: ${name} does not come from ${ownerSecret}/${key}, the database owner's (${initdb.owner})`);
    }
  }
  const host = envOf(m, docs, 'DB_HOST')?.value;
  if (host !== `${cluster.metadata.name}-rw`) problems.push(`${id}: DB_HOST ${host} is not the primary (${cluster.metadata.name}-rw)`);
  const db = envOf(m, docs, 'DB_NAME')?.value;
  if (db !== (initdb.database ?? 'app')) problems.push(`${id}: DB_NAME ${db} is not the Cluster's database ${initdb.database}`);
  if (!envOf(m, docs, 'KOTTE_SQL_DIR')?.value) problems.push(`${id}: no KOTTE_SQL_DIR (the image's sql/)`);
  // the backend itself never gets the owner's password
  const appPw = envOf(app ?? {}, docs, 'DB_PASSWORD');
  if (appPw?.secret?.name === ownerSecret) problems.push(`${where}: the backend container gets the owner's password`);
  return problems;
}
