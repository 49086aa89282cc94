// Runs every check of tests/k8s and prints one line per check, then
// "N passed, N failed". Exit status 1 if anything failed. Started by run.sh,
// which installs what this needs.
//
//   node tests/k8s/run.mjs [--only SUBSTRING]

import fs from 'node:fs';
import path from 'node:path';
import { kustomize, listSqlFiles, repoRoot, testsDir } from './lib/common.mjs';
import { checkSchemas } from './lib/schema.mjs';
import {
  checkDeployOrder, checkEnv, checkEnvContract, checkHardening, checkImages, checkSelectors, checkSqlRefs,
  checkWorkloads,
} from './lib/policies.mjs';
import { checkNetworkPolicies } from './lib/netpol.mjs';
import { checkDockerfile, checkImageContracts, listDockerfiles } from './lib/dockerfiles.mjs';
import { checkNginx } from './lib/nginx.mjs';
import { checkMigration } from './lib/migrate.mjs';
import { sqlChecks } from './lib/sql.mjs';
import { checkKotteRouteList, checkRouting, serverRoutes } from './lib/routing.mjs';

const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : null;
let passed = 0;
let failed = 0;
let skipped = 0;

function report(name, problems, note = '', skip = null) {
  if (skip) {
    skipped++;
    console.log(`SKIP ${name}: ${skip}`);
  } else if (problems.length) {
    failed++;
    const more = problems.length > 3 ? ` (+${problems.length - 3} more)` : '';
    console.log(`FAIL ${name}: ${problems.slice(0, 3).join('; ')}${more}`);
  } else {
    passed++;
    console.log(`PASS ${name}${note ? ` (${note})` : ''}`);
  }
}

// fn returns a list of problems, or { problems, note }, or { skip: why }
// when what it needs is not here (counted apart, never as a pass).
async function check(name, fn) {
  if (only && !name.includes(only)) return;
  let out;
  try {
    out = await fn();
  } catch (e) {
    out = [`threw: ${e.stack?.split('\n').slice(0, 2).join(' ') ?? e}`];
  }
  if (Array.isArray(out)) report(name, out);
  else report(name, out.problems ?? [], out.note, out.skip);
}

// The checks a built overlay (or a fixture built on one) goes through.
const isProduction = (name) => name.startsWith('production');
const CHECKS = {
  schema: (docs) => checkSchemas(docs),
  workloads: (docs) => checkWorkloads(docs),
  hardening: (docs, prod) => checkHardening(docs, { production: prod }),
  selectors: (docs) => checkSelectors(docs),
  netpol: (docs) => checkNetworkPolicies(docs),
  env: (docs) => checkEnv(docs),
  'sql-refs': (docs) => checkSqlRefs(docs),
  'image-contracts': (docs) => checkImageContracts(docs),
  'deploy-order': (docs) => checkDeployOrder(docs),
  images: (docs) => checkImages(docs),
  migrate: (docs) => checkMigration(docs),
  routing: (docs, _prod, server) => checkRouting(docs, { server }),
};
const server = serverRoutes(); // kotte-server's route table, asked once

// 1. Every overlay -------------------------------------------------------------
const overlaysDir = path.join(repoRoot, 'k8s', 'overlays');
const overlays = fs.readdirSync(overlaysDir)
  .filter((o) => fs.existsSync(path.join(overlaysDir, o, 'kustomization.yaml')))
  .sort();
await check('overlays dev and production exist', () =>
  ['dev', 'production'].filter((o) => !overlays.includes(o)).map((o) => `k8s/overlays/${o} is missing`));

const builds = new Map();
for (const o of overlays) {
  await check(`build ${o} (kubectl kustomize)`, () => {
    const r = kustomize(path.join(overlaysDir, o));
    if (r.error) return [r.error];
    builds.set(o, r.docs);
    return r.docs.length ? [] : ['empty build'];
  });
}
for (const [o, docs] of builds) {
  for (const [id, fn] of Object.entries(CHECKS)) {
    if (id === 'images' && !isProduction(o)) continue;
    const label = {
      schema: 'objects validate against Kubernetes and CloudNativePG schemas',
      workloads: 'containers have resources, probes, restricted securityContext',
      hardening: 'PDBs, HPAs, spreading, instances, backups',
      selectors: 'Service/PDB/HPA/NetworkPolicy/Ingress references resolve',
      netpol: 'NetworkPolicies allow exactly the needed flows',
      env: 'backend environment fully provided',
      'sql-refs': 'Cluster bootstrap applies every sql/ file once, in order',
      'image-contracts': 'Dockerfiles agree with the manifests',
      'deploy-order': 'every object is in one stage of the README order',
      images: 'production images pinned',
      migrate: 'the backend migrates (its own image, as the owner) before it serves',
      routing: 'every Kotte route reaches a server that answers it as Kotte does',
    }[id];
    await check(`${id} ${o}: ${label}`, () => fn(docs, isProduction(o), server));
  }
}

// 2. Contracts and files ---------------------------------------------------------
await check('env-contract: every DESIGN.md configuration name is classified', () => checkEnvContract());
await check('kotte-routes: tests/k8s/kotte-api-routes.json is Kotte\'s route table at KOTTE_REF', () => checkKotteRouteList());
for (const f of listDockerfiles()) {
  await check(`dockerfile ${path.relative(repoRoot, f)}: lint, pinned bases, COPY sources exist, non-root`,
    () => checkDockerfile(f));
}
await check('nginx k8s/nginx/nginx.conf: parses and serves the SPA', () => checkNginx());

if (!only || 'sql'.includes(only) || only.startsWith('sql')) {
  const docs = builds.get('dev') ?? builds.values().next().value;
  if (docs) for (const r of sqlChecks(docs)) if (!only || r.name.includes(only)) report(r.name, r.problems);
}

// 3. Negative fixtures: each must be rejected by the check it targets ------------
const fx = path.join(testsDir, 'fixtures');

async function rejects(name, fn) {
  await check(`fixture ${name}`, async () => {
    const out = await fn();
    if (out.skip) return out;
    const problems = Array.isArray(out) ? out : out.problems;
    if (!problems.length) return ['was accepted; the check cannot catch what it is for'];
    return { problems: [], note: `rejected: ${problems[0]}`.slice(0, 160) };
  });
}

for (const name of fs.readdirSync(path.join(fx, 'kustomize')).sort()) {
  const dir = path.join(fx, 'kustomize', name);
  const [id, flag] = fs.readFileSync(path.join(dir, 'expect'), 'utf8').trim().split(/\s+/);
  await rejects(`${name} (${id})`, async () => {
    const r = kustomize(dir);
    if (id === 'build') return r.error ? [r.error] : [];
    if (r.error) return [];
    return CHECKS[id](r.docs, flag === 'production', server);
  });
}
for (const f of fs.readdirSync(path.join(fx, 'dockerfiles')).filter((n) => n.endsWith('.Dockerfile')).sort()) {
  await rejects(`${f} (dockerfile)`, () => checkDockerfile(path.join(fx, 'dockerfiles', f)));
}
for (const f of fs.readdirSync(path.join(fx, 'nginx')).filter((n) => n.endsWith('.conf')).sort()) {
  await rejects(`${f} (nginx)`, () => checkNginx(path.join(fx, 'nginx', f)));
}
for (const f of fs.readdirSync(path.join(fx, 'env-contract')).filter((n) => n.endsWith('.json')).sort()) {
  await rejects(`${f} (env-contract)`, () =>
    checkEnvContract(JSON.parse(fs.readFileSync(path.join(fx, 'env-contract', f), 'utf8'))));
}
await rejects('unreferenced sql file (sql-refs)', () => {
  const docs = builds.get('dev') ?? [];
  return checkSqlRefs(docs, [...listSqlFiles(), ...listSqlFiles(path.join(fx, 'sql-refs'))]);
});
for (const f of fs.readdirSync(path.join(fx, 'sql-roles')).filter((n) => n.endsWith('.sql')).sort()) {
  if (only && !`fixture ${f}`.includes(only)) continue;
  await rejects(`${f} (sql)`, () => {
    const docs = builds.get('dev') ?? [];
    const files = listSqlFiles().filter((x) => !x.includes(`${path.sep}roles${path.sep}`));
    const out = sqlChecks(docs, { files: [...files, path.join(fx, 'sql-roles', f)] });
    return out.filter((r) => r.name.includes('no DDL')).flatMap((r) => r.problems);
  });
}

if (skipped) console.log(`(${skipped} skipped: what they need is not here, see the SKIP lines)`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
