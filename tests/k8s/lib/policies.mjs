// Policy checks over a built overlay. Each returns a list of problems; an
// empty list is a pass.

import fs from 'node:fs';
import path from 'node:path';
import {
  find, idOf, listSqlFiles, mapSelectorMatches, nsOf, podSpecOf, podTemplates,
  repoRoot, selectorMatches, sharedDir, testsDir, workloads,
} from './common.mjs';

// The API Deployments: Kotte's backend, and kotte-server beside it in the
// mixed overlays. Both are probed on the same path.
const API_DEPLOYMENTS = ['kotte-backend', 'kotte-server'];
const HEALTH_PATH = '/api/v1/health';

// Resources, probes, restricted securityContext, no host access, no state
// on disk for Deployments; the same (where the operator lets us) for the
// database Cluster.
export function checkWorkloads(docs) {
  const problems = [];
  for (const w of workloads(docs)) {
    const { spec: pod } = podSpecOf(w);
    const where = idOf(w);
    const psc = pod.securityContext ?? {};
    for (const k of ['hostNetwork', 'hostPID', 'hostIPC']) if (pod[k]) problems.push(`${where}: ${k}`);
    for (const v of pod.volumes ?? []) {
      if (v.hostPath) problems.push(`${where}: hostPath volume ${v.name}`);
      if (w.kind === 'Deployment' && (v.persistentVolumeClaim || v.ephemeral)) {
        problems.push(`${where}: keeps state on volume ${v.name} (Deployments here must be stateless)`);
      }
    }
    const containers = [
      ...(pod.initContainers ?? []).map((c) => [c, true]),
      ...(pod.containers ?? []).map((c) => [c, false]),
    ];
    if (!containers.length) problems.push(`${where}: no containers`);
    for (const [c, init] of containers) {
      const id = `${where} container ${c.name}`;
      const r = c.resources ?? {};
      for (const k of ['cpu', 'memory']) {
        if (!r.requests?.[k]) problems.push(`${id}: no resources.requests.${k}`);
        if (!r.limits?.[k]) problems.push(`${id}: no resources.limits.${k}`);
      }
      if (!init) {
        if (!c.readinessProbe) problems.push(`${id}: no readinessProbe`);
        if (!c.livenessProbe) problems.push(`${id}: no livenessProbe`);
      }
      problems.push(...restrictedProblems(id, c.securityContext ?? {}, psc));
    }
    if (w.kind === 'Deployment' && API_DEPLOYMENTS.includes(w.metadata.name)) {
      const c = (pod.containers ?? [])[0] ?? {};
      for (const probe of ['readinessProbe', 'livenessProbe']) {
        const p = c[probe]?.httpGet?.path;
        if (p !== HEALTH_PATH) problems.push(`${where}: ${probe} is not an HTTP GET of ${HEALTH_PATH}`);
      }
    }
  }
  for (const c of docs.filter((d) => d.kind === 'Cluster')) {
    const where = idOf(c);
    const r = c.spec?.resources ?? {};
    for (const k of ['cpu', 'memory']) {
      if (!r.requests?.[k]) problems.push(`${where}: no spec.resources.requests.${k}`);
      if (!r.limits?.[k]) problems.push(`${where}: no spec.resources.limits.${k}`);
    }
    // The operator manages the probes of its instances; the pod-level
    // seccomp profile is spec.seccompProfile.
    problems.push(...restrictedProblems(where, c.spec?.securityContext ?? {},
      { seccompProfile: c.spec?.seccompProfile }));
    if (c.spec?.postgresUID === 0) problems.push(`${where}: postgresUID 0`);
  }
  // The Barman Cloud plugin adds a sidecar to every instance pod; its
  // resources come from the ObjectStore.
  for (const o of docs.filter((d) => d.kind === 'ObjectStore')) {
    const r = o.spec?.instanceSidecarConfiguration?.resources ?? {};
    for (const k of ['cpu', 'memory']) {
      if (!r.requests?.[k]) problems.push(`${idOf(o)}: no sidecar resources.requests.${k}`);
      if (!r.limits?.[k]) problems.push(`${idOf(o)}: no sidecar resources.limits.${k}`);
    }
  }
  return problems;
}

function restrictedProblems(id, csc, psc) {
  const p = [];
  if ((csc.runAsNonRoot ?? psc.runAsNonRoot) !== true) p.push(`${id}: runAsNonRoot is not true`);
  if ((csc.runAsUser ?? psc.runAsUser) === 0) p.push(`${id}: runs as UID 0`);
  if (csc.privileged) p.push(`${id}: privileged`);
  if (csc.allowPrivilegeEscalation !== false) p.push(`${id}: allowPrivilegeEscalation is not false`);
  if (csc.readOnlyRootFilesystem !== true) p.push(`${id}: readOnlyRootFilesystem is not true`);
  if (!(csc.capabilities?.drop ?? []).includes('ALL')) p.push(`${id}: capabilities do not drop ALL`);
  if ((csc.capabilities?.add ?? []).length) p.push(`${id}: adds capabilities`);
  const seccomp = csc.seccompProfile?.type ?? psc.seccompProfile?.type;
  if (!['RuntimeDefault', 'Localhost'].includes(seccomp)) p.push(`${id}: seccomp profile is not RuntimeDefault`);
  return p;
}

// PDB, HPA and spreading for every Deployment; backups in production.
export function checkHardening(docs, { production = false } = {}) {
  const problems = [];
  const pdbs = docs.filter((d) => d.kind === 'PodDisruptionBudget');
  const hpas = docs.filter((d) => d.kind === 'HorizontalPodAutoscaler');
  for (const d of docs.filter((x) => x.kind === 'Deployment')) {
    const where = idOf(d);
    const { labels, spec } = podSpecOf(d);
    if (!pdbs.some((p) => nsOf(p) === nsOf(d) && selectorMatches(p.spec?.selector, labels))) {
      problems.push(`${where}: no PodDisruptionBudget selects its pods`);
    }
    const hpa = hpas.find((h) => nsOf(h) === nsOf(d) && h.spec?.scaleTargetRef?.kind === 'Deployment' &&
      h.spec.scaleTargetRef.name === d.metadata.name);
    if (!hpa) problems.push(`${where}: no HorizontalPodAutoscaler`);
    else if ((hpa.spec.minReplicas ?? 1) < 2) problems.push(`${where}: HPA minReplicas below 2`);
    if ((d.spec?.replicas ?? 1) < 2) problems.push(`${where}: fewer than 2 replicas`);
    const spread = (spec.topologySpreadConstraints ?? []).some((t) => selectorMatches(t.labelSelector, labels));
    const anti = [
      ...(spec.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? []),
      ...(spec.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [])
        .map((x) => x.podAffinityTerm),
    ].some((t) => selectorMatches(t?.labelSelector, labels));
    if (!spread && !anti) problems.push(`${where}: no topology spread or anti-affinity over its own pods`);
  }
  for (const c of docs.filter((d) => d.kind === 'Cluster')) {
    const where = idOf(c);
    if ((c.spec?.instances ?? 1) < 2) problems.push(`${where}: fewer than 2 instances`);
    if (c.spec?.enablePDB === false) problems.push(`${where}: enablePDB is false`);
    if (c.spec?.affinity?.enablePodAntiAffinity === false) problems.push(`${where}: pod anti-affinity disabled`);
    if (!production) continue;
    const archiver = (c.spec?.plugins ?? []).find((p) => p.isWALArchiver && p.enabled !== false);
    if (!archiver && !c.spec?.backup?.barmanObjectStore) {
      problems.push(`${where}: no WAL archive / object store backup configured`);
    }
    if (archiver?.name === 'barman-cloud.cloudnative-pg.io') {
      const store = archiver.parameters?.barmanObjectName;
      if (!find(docs, 'ObjectStore', store)) problems.push(`${where}: ObjectStore ${store} is not defined`);
    }
    const sb = docs.filter((d) => d.kind === 'ScheduledBackup' && d.spec?.cluster?.name === c.metadata.name &&
      !d.spec?.suspend);
    if (!sb.length) problems.push(`${where}: no ScheduledBackup`);
    for (const b of sb) {
      if (archiver && b.spec.method !== 'plugin') problems.push(`${idOf(b)}: method is not plugin`);
      if (b.spec.method === 'plugin' && b.spec.pluginConfiguration?.name !== archiver?.name) {
        problems.push(`${idOf(b)}: pluginConfiguration does not name the cluster's WAL archiver`);
      }
    }
  }
  return problems;
}

// Every selector and reference points at something that exists.
export function checkSelectors(docs) {
  const problems = [];
  const pods = podTemplates(docs);
  const podsIn = (ns) => pods.filter((p) => p.namespace === ns);
  for (const s of docs.filter((d) => d.kind === 'Service')) {
    const where = idOf(s);
    const sel = s.spec?.selector;
    if (!sel || !Object.keys(sel).length) { problems.push(`${where}: no selector`); continue; }
    const matched = podsIn(nsOf(s)).filter((p) => mapSelectorMatches(sel, p.labels));
    if (!matched.length) { problems.push(`${where}: selector matches no pod template`); continue; }
    for (const port of s.spec.ports ?? []) {
      const target = port.targetPort ?? port.port;
      const ok = matched.every((p) => p.ports.some((cp) =>
        (typeof target === 'string' ? cp.name === target : cp.containerPort === target) &&
        (cp.protocol ?? 'TCP') === (port.protocol ?? 'TCP')));
      if (!ok) problems.push(`${where}: targetPort ${target} is not a port of the pods it selects`);
    }
  }
  for (const d of docs.filter((x) => ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet'].includes(x.kind))) {
    if (!selectorMatches(d.spec?.selector, podSpecOf(d).labels)) {
      problems.push(`${idOf(d)}: spec.selector does not match its own template`);
    }
  }
  for (const p of docs.filter((d) => d.kind === 'PodDisruptionBudget')) {
    if (!podsIn(nsOf(p)).some((t) => selectorMatches(p.spec?.selector, t.labels))) {
      problems.push(`${idOf(p)}: selector matches no pod template`);
    }
  }
  for (const h of docs.filter((d) => d.kind === 'HorizontalPodAutoscaler')) {
    const ref = h.spec?.scaleTargetRef ?? {};
    const t = docs.find((d) => d.kind === ref.kind && d.metadata?.name === ref.name && nsOf(d) === nsOf(h));
    if (!t) problems.push(`${idOf(h)}: scaleTargetRef ${ref.kind}/${ref.name} does not exist`);
  }
  for (const n of docs.filter((d) => d.kind === 'NetworkPolicy')) {
    const sel = n.spec?.podSelector ?? {};
    const empty = !Object.keys(sel.matchLabels ?? {}).length && !(sel.matchExpressions ?? []).length;
    if (!empty && !podsIn(nsOf(n)).some((t) => selectorMatches(sel, t.labels))) {
      problems.push(`${idOf(n)}: podSelector matches no pod`);
    }
  }
  for (const ing of docs.filter((d) => d.kind === 'Ingress')) {
    const backends = (ing.spec?.rules ?? []).flatMap((r) => (r.http?.paths ?? []).map((p) => p.backend));
    if (ing.spec?.defaultBackend) backends.push(ing.spec.defaultBackend);
    for (const b of backends) {
      const svc = find(docs, 'Service', b?.service?.name);
      if (!svc || nsOf(svc) !== nsOf(ing)) {
        problems.push(`${idOf(ing)}: backend Service ${b?.service?.name} does not exist`);
        continue;
      }
      const want = b.service.port ?? {};
      if (!(svc.spec.ports ?? []).some((p) => (want.name ? p.name === want.name : p.port === want.number))) {
        problems.push(`${idOf(ing)}: Service ${svc.metadata.name} has no port ${want.name ?? want.number}`);
      }
    }
  }
  return problems;
}

// The backend gets every variable it reads, each from a ConfigMap or
// Secret that exists and has the key.
export function loadEnvContract() {
  return JSON.parse(fs.readFileSync(path.join(testsDir, 'backend-env.json'), 'utf8'));
}

// key sets of the ConfigMaps and Secrets the build will create (Secrets
// made by ExternalSecrets included).
function keySources(docs) {
  const cms = new Map();
  const secrets = new Map();
  for (const d of docs) {
    if (d.kind === 'ConfigMap') cms.set(d.metadata.name, { ...(d.data ?? {}), ...(d.binaryData ?? {}) });
    if (d.kind === 'Secret') secrets.set(d.metadata.name, { ...(d.data ?? {}), ...(d.stringData ?? {}) });
    if (d.kind === 'ExternalSecret') {
      const t = d.spec?.target ?? {};
      const keys = {};
      const tmpl = t.template?.data;
      if (tmpl) Object.assign(keys, tmpl);
      else for (const e of d.spec?.data ?? []) keys[e.secretKey] = undefined;
      secrets.set(t.name ?? d.metadata.name, keys);
    }
  }
  return { cms, secrets };
}

// The backend's container, and kotte-server's where the build has it (it
// reads the same names).
export function checkEnv(docs, contract = loadEnvContract()) {
  if (!find(docs, 'Deployment', contract.deployment)) return [`Deployment/${contract.deployment} not in the build`];
  const problems = [];
  for (const t of [{ deployment: contract.deployment, container: contract.container }, ...(contract.alsoIn ?? [])]) {
    if (!find(docs, 'Deployment', t.deployment)) continue;
    const where = t.deployment === contract.deployment ? '' : `Deployment/${t.deployment}: `;
    problems.push(...checkEnvOf(docs, contract, t).map((x) => where + x));
  }
  return problems;
}

function checkEnvOf(docs, contract, target) {
  const problems = [];
  const dep = find(docs, 'Deployment', target.deployment);
  const c = (podSpecOf(dep).spec.containers ?? []).find((x) => x.name === target.container);
  if (!c) return [`Deployment/${target.deployment} has no container ${target.container}`];
  const { cms, secrets } = keySources(docs);
  const provided = new Map(); // name -> { value?, secret?: {name,key} }
  for (const ef of c.envFrom ?? []) {
    const prefix = ef.prefix ?? '';
    if (ef.configMapRef) {
      const cm = cms.get(ef.configMapRef.name);
      if (!cm) { if (!ef.configMapRef.optional) problems.push(`envFrom ConfigMap ${ef.configMapRef.name} does not exist`); continue; }
      for (const [k, v] of Object.entries(cm)) provided.set(prefix + k, { value: v });
    }
    if (ef.secretRef) {
      const s = secrets.get(ef.secretRef.name);
      if (!s) { if (!ef.secretRef.optional) problems.push(`envFrom Secret ${ef.secretRef.name} does not exist`); continue; }
      for (const k of Object.keys(s)) provided.set(prefix + k, { secret: { name: ef.secretRef.name, key: k } });
    }
  }
  for (const e of c.env ?? []) {
    if (e.value !== undefined) { provided.set(e.name, { value: e.value }); continue; }
    const cmRef = e.valueFrom?.configMapKeyRef;
    const sRef = e.valueFrom?.secretKeyRef;
    if (cmRef) {
      const cm = cms.get(cmRef.name);
      if (!cm || !(cmRef.key in cm)) { problems.push(`${e.name}: ConfigMap ${cmRef.name} has no key ${cmRef.key}`); continue; }
      provided.set(e.name, { value: cm[cmRef.key] });
    } else if (sRef) {
      const s = secrets.get(sRef.name);
      if (!s || !(sRef.key in s)) { problems.push(`${e.name}: Secret ${sRef.name} has no key ${sRef.key}`); continue; }
      provided.set(e.name, { secret: { name: sRef.name, key: sRef.key } });
    } else if (e.valueFrom) {
      provided.set(e.name, {});
    }
  }
  for (const name of Object.keys(contract.required)) {
    if (!provided.has(name)) problems.push(`${name} is read by the backend but no ConfigMap or Secret provides it`);
  }
  for (const [name, want] of Object.entries(contract.values ?? {})) {
    const got = provided.get(name);
    if (got && 'value' in got && String(got.value) !== want) problems.push(`${name} is "${got.value}", want "${want}"`);
  }
  // DB_HOST names the read-write Service of a Cluster in the build (or a Service).
  const host = provided.get('DB_HOST')?.value;
  if (host !== undefined) {
    const clusters = docs.filter((d) => d.kind === 'Cluster').map((d) => `${d.metadata.name}-rw`);
    if (!clusters.includes(host) && !find(docs, 'Service', host)) {
      problems.push(`DB_HOST ${host} is neither a Cluster's -rw Service nor a Service`);
    }
  }
  // DB_USER is a role the Cluster manages with LOGIN, whose password comes
  // from the very Secret key the backend reads as DB_PASSWORD.
  const user = provided.get('DB_USER')?.value;
  const pw = provided.get('DB_PASSWORD')?.secret;
  const cluster = docs.find((d) => d.kind === 'Cluster');
  if (cluster && user !== undefined) {
    const role = (cluster.spec?.managed?.roles ?? []).find((r) => r.name === user);
    if (!role || !role.login) problems.push(`DB_USER ${user} is not a managed LOGIN role of ${idOf(cluster)}`);
    else if (!pw || pw.name !== role.passwordSecret?.name || pw.key !== 'password') {
      problems.push(`DB_PASSWORD does not come from ${role.passwordSecret?.name}/password, the Secret the operator sets ${user}'s password from`);
    } else if (secrets.get(pw.name)?.username !== undefined && secrets.get(pw.name).username !== user) {
      problems.push(`Secret ${pw.name} names user ${secrets.get(pw.name).username}, not ${user}`);
    }
  }
  return problems;
}

// Every configuration name of the design contract is either provided or
// known not to be needed here.
export function checkEnvContract(contract = loadEnvContract()) {
  const shared = sharedDir();
  const design = shared && path.join(shared, 'DESIGN.md');
  if (!design || !fs.existsSync(design)) return ['shared/DESIGN.md not found'];
  const text = fs.readFileSync(design, 'utf8');
  const m = text.match(/^## Configuration names[^\n]*\n([\s\S]*?)(?=^## )/m);
  if (!m) return ['DESIGN.md has no "Configuration names" section'];
  const names = [...m[1].matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((x) => x[1]);
  if (!names.length) return ['no configuration names found in DESIGN.md'];
  return names
    .filter((n) => !(n in contract.required) && !(n in (contract.notNeeded ?? {})))
    .map((n) => `${n} (DESIGN.md) is neither required nor listed as not needed in backend-env.json`);
}

// Production images carry a registry and a pinned tag or digest.
const FLOATING = /^(latest|stable|edge|main|master|dev|nightly|current|lts)$/i;

export function imageProblem(image) {
  if (!image) return 'empty image';
  const at = image.indexOf('@');
  if (at >= 0) return /^sha256:[0-9a-f]{64}$/.test(image.slice(at + 1)) ? null : `${image}: bad digest`;
  const slash = image.lastIndexOf('/');
  const colon = image.lastIndexOf(':');
  if (colon <= slash) return `${image}: no tag`;
  const tag = image.slice(colon + 1);
  if (FLOATING.test(tag)) return `${image}: floating tag "${tag}"`;
  if (!/\d/.test(tag)) return `${image}: tag "${tag}" names no version`;
  if (slash < 0 || !image.slice(0, slash).includes('.')) return `${image}: no registry host`;
  return null;
}

export function checkImages(docs) {
  const problems = [];
  for (const w of workloads(docs)) {
    const { spec } = podSpecOf(w);
    for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
      const p = imageProblem(c.image);
      if (p) problems.push(`${idOf(w)} container ${c.name}: ${p}`);
    }
  }
  for (const c of docs.filter((d) => d.kind === 'Cluster')) {
    if (c.spec?.imageCatalogRef) continue;
    const p = imageProblem(c.spec?.imageName);
    if (p) problems.push(`${idOf(c)}: ${p}`);
  }
  return problems;
}

// The Cluster's bootstrap applies every .sql file under sql/ exactly once,
// extensions first, then migrations in order, then roles.
export function checkSqlRefs(docs, sqlFiles = listSqlFiles()) {
  const problems = [];
  const clusters = docs.filter((d) => d.kind === 'Cluster');
  if (!clusters.length) return ['no Cluster in the build'];
  const cms = new Map(docs.filter((d) => d.kind === 'ConfigMap').map((d) => [d.metadata.name, d.data ?? {}]));
  const sqlRoot = path.join(repoRoot, 'sql');
  const rel = (f) => (f.startsWith(sqlRoot) ? path.relative(sqlRoot, f) : path.basename(f));
  for (const c of clusters) {
    const where = idOf(c);
    const initdb = c.spec?.bootstrap?.initdb ?? {};
    const refs = ['postInitSQLRefs', 'postInitTemplateSQLRefs', 'postInitApplicationSQLRefs'].flatMap((f) => [
      ...(initdb[f]?.secretRefs ?? []).map((r) => ({ ...r, secret: true, field: f })),
      ...(initdb[f]?.configMapRefs ?? []).map((r) => ({ ...r, field: f })),
    ]);
    const contents = refs.map((r) => {
      if (r.secret) return null;
      const cm = cms.get(r.name);
      if (!cm || !(r.key in cm)) problems.push(`${where}: ${r.field} refers to ${r.name}/${r.key}, which does not exist`);
      return cm?.[r.key] ?? null;
    });
    const order = [];
    for (const f of sqlFiles) {
      const body = fs.readFileSync(f, 'utf8');
      const hits = contents.map((x, i) => (x === body ? i : -1)).filter((i) => i >= 0);
      if (hits.length === 0) problems.push(`${where}: sql/${rel(f)} is not applied by the bootstrap`);
      else if (hits.length > 1) problems.push(`${where}: sql/${rel(f)} is applied ${hits.length} times`);
      else order.push({ file: rel(f), at: hits[0] });
    }
    const rank = (f) => (f.startsWith('extensions/') ? 0 : f.startsWith('migrations/') ? 1 : f.startsWith('roles/') ? 2 : 3);
    const sorted = [...order].sort((a, b) => a.at - b.at);
    for (let i = 1; i < sorted.length; i++) {
      const [a, b] = [sorted[i - 1].file, sorted[i].file];
      if (rank(a) > rank(b) || (rank(a) === rank(b) && a > b)) problems.push(`${where}: ${b} is applied after ${a}`);
    }
  }
  return problems;
}

// The staged order of k8s/README.md ("Deployment order") selects objects by
// their app.kubernetes.io/name label. Every object must be in exactly one
// stage, and whatever an object uses must be applied no later than it.
export const DEPLOY_STAGES = [
  ['kotte-namespace'],
  ['kotte-age', 'kotte-sql'],
  ['kotte-backend', 'kotte-frontend', 'kotte-server'],
  ['kotte-ingress'],
];

export function checkDeployOrder(docs) {
  const problems = [];
  const stageOf = (o) => DEPLOY_STAGES.findIndex((s) => s.includes(o?.metadata?.labels?.['app.kubernetes.io/name']));
  const byName = (kinds, name) => docs.find((d) => kinds.includes(d.kind) &&
    (d.metadata?.name === name || (d.kind === 'ExternalSecret' && d.spec?.target?.name === name)));
  for (const d of docs) {
    if (stageOf(d) < 0) problems.push(`${idOf(d)}: app.kubernetes.io/name "${d.metadata?.labels?.['app.kubernetes.io/name'] ?? ''}" is in no deployment stage`);
  }
  const needs = (user, kinds, name) => {
    const dep = byName(kinds, name);
    if (dep && stageOf(dep) > stageOf(user)) {
      problems.push(`${idOf(user)} (stage ${stageOf(user) + 1}) uses ${idOf(dep)} from a later stage (${stageOf(dep) + 1})`);
    }
  };
  const ns = docs.find((d) => d.kind === 'Namespace');
  if (ns && stageOf(ns) !== 0) problems.push('the Namespace is not in the first stage');
  for (const d of docs) {
    if (d.kind === 'Deployment') {
      const c = podSpecOf(d).spec.containers ?? [];
      for (const x of c) {
        for (const ef of x.envFrom ?? []) {
          if (ef.configMapRef) needs(d, ['ConfigMap'], ef.configMapRef.name);
          if (ef.secretRef) needs(d, ['Secret', 'ExternalSecret'], ef.secretRef.name);
        }
        for (const e of x.env ?? []) {
          if (e.valueFrom?.secretKeyRef) needs(d, ['Secret', 'ExternalSecret'], e.valueFrom.secretKeyRef.name);
          if (e.valueFrom?.configMapKeyRef) needs(d, ['ConfigMap'], e.valueFrom.configMapKeyRef.name);
        }
      }
      const db = docs.find((x) => x.kind === 'Cluster');
      if (db && stageOf(db) >= stageOf(d)) problems.push(`${idOf(d)} is applied with or before the database`);
    }
    if (d.kind === 'Cluster') {
      const initdb = d.spec?.bootstrap?.initdb ?? {};
      for (const f of ['postInitSQLRefs', 'postInitTemplateSQLRefs', 'postInitApplicationSQLRefs']) {
        for (const r of initdb[f]?.configMapRefs ?? []) needs(d, ['ConfigMap'], r.name);
        for (const r of initdb[f]?.secretRefs ?? []) needs(d, ['Secret', 'ExternalSecret'], r.name);
      }
      for (const r of d.spec?.managed?.roles ?? []) if (r.passwordSecret) needs(d, ['Secret', 'ExternalSecret'], r.passwordSecret.name);
      for (const p of d.spec?.plugins ?? []) if (p.parameters?.barmanObjectName) needs(d, ['ObjectStore'], p.parameters.barmanObjectName);
    }
    if (d.kind === 'Ingress') {
      for (const r of d.spec?.rules ?? []) for (const p of r.http?.paths ?? []) needs(d, ['Service'], p.backend?.service?.name);
    }
  }
  return problems;
}
