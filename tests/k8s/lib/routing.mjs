// The mixed overlays: which server each Kotte API route reaches through the
// Ingresses, and whether that server answers it as Kotte does.
//
// Three inputs, each from its source:
//   - the Ingresses of a built overlay, matched as ingress-nginx matches
//     them (Ingresses of one host merge into one server; an Exact path
//     wins, else the longest Prefix, compared by path element);
//   - kotte-server's route table, from the binary (`kotte-server routes`);
//   - Kotte's routes, from tests/k8s/kotte-api-routes.json, which
//     checkKotteRouteList() compares with Kotte's sources at the
//     Dockerfile's KOTTE_REF when a mirror of Kotte's repository is at hand.

import fs from 'node:fs';
import path from 'node:path';
import { find, idOf, repoRoot, run, testsDir } from './common.mjs';

export const SERVER_SERVICE = 'kotte-server';
export const BACKEND_SERVICE = 'kotte-backend';

export function loadKotteRoutes() {
  return JSON.parse(fs.readFileSync(path.join(testsDir, 'kotte-api-routes.json'), 'utf8'));
}

// kotte-server's route table, or { skip } when no binary is at hand.
export function serverRoutes() {
  const given = process.env.KOTTE_SERVER_BIN;
  const candidates = [given, ...['build-asan', 'build', 'build-tsan', 'build-release']
    .map((d) => path.join(repoRoot, d, 'examples', 'kotte-server', 'kotte-server'))].filter(Boolean);
  const bin = candidates.find((f) => { try { fs.accessSync(f, fs.constants.X_OK); return true; } catch { return false; } });
  if (!bin) {
    return { skip: 'no kotte-server binary to ask for its route table (build one, e.g. build-asan as tests/run.sh does, or set KOTTE_SERVER_BIN)' };
  }
  const r = run(bin, ['routes'], { env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=0' } });
  if (r.status !== 0) return { error: `${bin} routes exited ${r.status}: ${r.stderr.trim().slice(0, 200)}` };
  return { bin, routes: JSON.parse(r.stdout) };
}

// "/a/{x}/b" -> "/a/{}/b": templates compared by shape.
const shape = (p) => p.replace(/\{[^}]*\}/g, '{}');
// a concrete path for a template
const concrete = (p) => p.replace(/\{[^}]*\}/g, 'x1');

// The Ingress paths that serve @p host, with their Ingress.
function hostPaths(docs, host) {
  const out = [];
  for (const ing of docs.filter((d) => d.kind === 'Ingress')) {
    for (const rule of ing.spec?.rules ?? []) {
      if ((rule.host ?? '') !== host) continue;
      for (const p of rule.http?.paths ?? []) out.push({ ing: ing.metadata.name, ...p });
    }
  }
  return out;
}

function prefixMatches(prefix, p) {
  const pre = prefix.replace(/\/+$/, '');
  return pre === '' || p === pre || p.startsWith(`${pre}/`);
}

// The Ingress path ingress-nginx picks for request path @p p, or null.
export function resolve(paths, p) {
  const exact = paths.find((x) => x.pathType === 'Exact' && x.path === p);
  if (exact) return exact;
  const pre = paths.filter((x) => x.pathType === 'Prefix' && prefixMatches(x.path, p))
    .sort((a, b) => b.path.replace(/\/+$/, '').length - a.path.replace(/\/+$/, '').length);
  return pre[0] ?? null;
}

// Every check of a mixed build. Returns problems; [] when the build sends
// nothing to kotte-server (the check does not apply).
export function checkRouting(docs, { server = serverRoutes(), kotte = loadKotteRoutes() } = {}) {
  const toServer = (p) => p.backend?.service?.name === SERVER_SERVICE;
  const ingresses = docs.filter((d) => d.kind === 'Ingress');
  const mixed = ingresses.filter((i) => (i.spec?.rules ?? []).some((r) => (r.http?.paths ?? []).some(toServer)));
  if (!mixed.length) return { problems: [], note: 'no Ingress path to kotte-server' };
  if (server.skip) return { skip: server.skip };
  if (server.error) return [server.error];
  const problems = [];
  const main = find(docs, 'Ingress', 'kotte');
  if (!main) return ['the Ingress kotte (/ and /api) is not in the build'];
  const host = main.spec?.rules?.[0]?.host ?? '';
  // one server: same host, same TLS, same redirect
  for (const ing of mixed) {
    for (const r of ing.spec.rules) if ((r.host ?? '') !== host) problems.push(`${idOf(ing)}: host ${r.host} is not the Ingress kotte's (${host}); its paths would not merge into that server`);
    const tls = (x) => JSON.stringify((x.spec?.tls ?? []).map((t) => [...(t.hosts ?? [])].sort()));
    if (tls(ing) !== tls(main)) problems.push(`${idOf(ing)}: TLS hosts ${tls(ing)} differ from the Ingress kotte's ${tls(main)}`);
    const redirect = 'nginx.ingress.kubernetes.io/force-ssl-redirect';
    if ((ing.metadata.annotations?.[redirect] ?? '') !== (main.metadata.annotations?.[redirect] ?? '')) {
      problems.push(`${idOf(ing)}: ${redirect} differs from the Ingress kotte's`);
    }
    if ((ing.spec.ingressClassName ?? '') !== (main.spec?.ingressClassName ?? '')) problems.push(`${idOf(ing)}: ingressClassName differs from the Ingress kotte's`);
  }
  const paths = hostPaths(docs, host);
  const served = new Set(server.routes.filter((r) => r.kotte).map((r) => `${r.method} ${shape(r.path)}`));
  const anyEntry = new Set(server.routes.map((r) => `${r.method} ${shape(r.path)}`));
  const routedHere = new Map(); // ingress path -> count of Kotte routes it takes
  for (const p of paths.filter(toServer)) {
    if (!['Exact', 'Prefix'].includes(p.pathType)) problems.push(`Ingress/${p.ing} path ${p.path}: pathType ${p.pathType} (only Exact and Prefix have one meaning on every controller)`);
    routedHere.set(p, 0);
  }
  for (const r of kotte.routes) {
    const hit = resolve(paths, concrete(r.path));
    const svc = hit?.backend?.service?.name;
    const what = `${r.method} ${r.path}`;
    if (svc === SERVER_SERVICE) {
      routedHere.set(hit, (routedHere.get(hit) ?? 0) + 1);
      const key = `${r.method} ${shape(r.path)}`;
      if (!served.has(key)) {
        problems.push(`${what} is sent to kotte-server by Ingress/${hit.ing} path ${hit.path} (${hit.pathType}), but kotte-server ${anyEntry.has(key) ? 'does not answer it as Kotte does' : 'has no such route'}`);
      }
    } else if (svc !== BACKEND_SERVICE) {
      problems.push(`${what} reaches ${svc ? `Service ${svc}` : 'no backend'}, not Kotte's backend`);
    }
  }
  for (const [p, n] of routedHere) {
    if (n === 0) problems.push(`Ingress/${p.ing} path ${p.path} (${p.pathType}) sends no Kotte route to kotte-server`);
  }
  const n = [...routedHere.values()].reduce((a, b) => a + b, 0);
  return { problems, note: `${n} of ${kotte.routes.length} Kotte routes to kotte-server, the rest to kotte-backend` };
}

// Kotte's routes from its sources: the routers included by
// backend/app/api/v1/__init__.py (with their prefixes), their @router
// decorators, under the /api/v1 prefix backend/app/main.py gives them.
export function parseKotteRoutes(read) {
  const v1 = 'backend/app/api/v1';
  const init = read(`${v1}/__init__.py`);
  const main = read('backend/app/main.py');
  if (!/include_router\(\s*v1_router\s*,\s*prefix\s*=\s*"\/api\/v1"/.test(main)) {
    throw new Error('backend/app/main.py no longer includes v1_router at /api/v1');
  }
  const aliases = new Map();
  for (const m of init.matchAll(/from app\.api\.v1\.(\w+) import router as (\w+)/g)) aliases.set(m[2], m[1]);
  const moduleOf = (expr) => {
    let mod = expr.endsWith('.router') ? expr.slice(0, -'.router'.length) : aliases.get(expr);
    for (let i = 0; mod && i < 5; i++) { // a module that only re-exports another's router
      const alias = read(`${v1}/${mod}.py`).match(/^router\s*=\s*(\w+)\.router\s*$/m);
      if (!alias) break;
      mod = alias[1];
    }
    return mod;
  };
  const routes = [];
  for (const m of init.matchAll(/router\.include_router\(\s*([\w.]+)\s*(?:,\s*prefix\s*=\s*"([^"]*)")?/g)) {
    const mod = moduleOf(m[1]);
    if (!mod) throw new Error(`cannot tell which module ${m[1]} is`);
    const src = read(`${v1}/${mod}.py`);
    for (const d of src.matchAll(/@router\.(get|post|put|patch|delete)\(\s*"([^"]*)"/g)) {
      routes.push({ method: d[1].toUpperCase(), path: `/api/v1${m[2] ?? ''}${d[2]}` });
    }
  }
  return routes;
}

// tests/k8s/kotte-api-routes.json against Kotte's sources at KOTTE_REF,
// when a mirror of e4c5/kotte is here (KOTTE_MIRRORS, or /work/.mirror).
export function checkKotteRouteList(list = loadKotteRoutes()) {
  const df = fs.readFileSync(path.join(repoRoot, 'k8s', 'Dockerfile.backend'), 'utf8');
  const ref = df.match(/^ARG KOTTE_REF=([0-9a-f]{40})$/m)?.[1];
  if (!ref) return ['k8s/Dockerfile.backend has no KOTTE_REF'];
  const problems = [];
  if (list.kotte_ref !== ref) problems.push(`kotte-api-routes.json is for ${list.kotte_ref}, the backend image builds ${ref}`);
  const mirrors = [process.env.KOTTE_MIRRORS, '/work/.mirror'].filter(Boolean)
    .map((m) => path.join(m, 'e4c5+kotte', 'repo'));
  const git = mirrors.find((m) => fs.existsSync(m));
  if (!git) return problems.length ? problems : { skip: 'no mirror of e4c5/kotte (set KOTTE_MIRRORS): the list is not compared with Kotte\'s sources' };
  const read = (f) => {
    const r = run('git', ['--git-dir', git, 'show', `${ref}:${f}`]);
    if (r.status !== 0) throw new Error(`git show ${ref}:${f}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  const fromSource = parseKotteRoutes(read).map((r) => `${r.method} ${r.path}`).sort();
  const listed = list.routes.map((r) => `${r.method} ${r.path}`).sort();
  for (const r of fromSource) if (!listed.includes(r)) problems.push(`Kotte has ${r}, which kotte-api-routes.json lacks`);
  for (const r of listed) if (!fromSource.includes(r)) problems.push(`kotte-api-routes.json lists ${r}, which Kotte does not have`);
  return { problems, note: `${fromSource.length} routes, as in ${git} at ${ref.slice(0, 12)}` };
}
