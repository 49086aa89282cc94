// Shared helpers: where things are, building overlays, the pod model.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

export const testsDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function gitTopLevel(dir) {
  const r = spawnSync('git', ['-C', dir, 'rev-parse', '--show-toplevel'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

export const repoRoot = gitTopLevel(testsDir) ?? path.resolve(testsDir, '..', '..');

// shared/ sits beside the repository clone (CI), or at /work/shared.
export function sharedDir() {
  const candidates = [
    process.env.KOTTE_SHARED_DIR,
    path.resolve(repoRoot, '..', 'shared'),
    '/work/shared',
  ].filter(Boolean);
  return candidates.find((d) => fs.existsSync(path.join(d, 'k8s-schemas'))) ?? null;
}

export function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  if (r.error) return { status: -1, stdout: '', stderr: String(r.error.message) };
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

export function parseYamlDocs(text) {
  return YAML.parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length) throw new Error(d.errors[0].message);
      return d.toJS();
    })
    .filter((d) => d && typeof d === 'object');
}

// Builds a kustomization directory with kubectl's built-in kustomize.
// Returns { docs } or { error }.
export function kustomize(dir) {
  const r = run('kubectl', ['kustomize', dir]);
  if (r.status !== 0) {
    const msg = (r.stderr || r.stdout).split('\n').filter((l) => l && !l.startsWith('# Warning')).join(' ')
      .replace(/^[EF]\d{4} [\d:.]+\s+\d+ \S+\] "command failed" err=/, '');
    return { error: msg || `kubectl kustomize exited ${r.status}` };
  }
  try {
    return { docs: parseYamlDocs(r.stdout) };
  } catch (e) {
    return { error: `output is not YAML: ${e.message}` };
  }
}

export const nsOf = (o) => o?.metadata?.namespace ?? 'default';
export const idOf = (o) => `${o.kind}/${o.metadata?.name}`;
export const find = (docs, kind, name) => docs.find((d) => d.kind === kind && d.metadata?.name === name);

// Label selectors --------------------------------------------------------------

export function selectorMatches(sel, labels = {}) {
  if (!sel) return false;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    switch (e.operator) {
      case 'In': if (!has || !e.values.includes(labels[e.key])) return false; break;
      case 'NotIn': if (has && e.values.includes(labels[e.key])) return false; break;
      case 'Exists': if (!has) return false; break;
      case 'DoesNotExist': if (has) return false; break;
      default: return false;
    }
  }
  return true;
}

// Services use a plain map as selector.
export const mapSelectorMatches = (map, labels = {}) =>
  Object.entries(map).every(([k, v]) => labels[k] === v);

// The pod model ------------------------------------------------------------------
//
// Every pod the stack will run, as a template: the pods of Deployments and
// other controllers, and the instance pods CloudNativePG creates for a
// Cluster (labels and ports as the operator sets them).

const CONTROLLERS = ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'CronJob', 'Pod'];

export function podSpecOf(o) {
  switch (o.kind) {
    case 'Pod': return { labels: o.metadata?.labels ?? {}, spec: o.spec ?? {} };
    case 'CronJob': {
      const t = o.spec?.jobTemplate?.spec?.template ?? {};
      return { labels: t.metadata?.labels ?? {}, spec: t.spec ?? {} };
    }
    default: {
      const t = o.spec?.template ?? {};
      return { labels: t.metadata?.labels ?? {}, spec: t.spec ?? {} };
    }
  }
}

export function workloads(docs) {
  return docs.filter((d) => CONTROLLERS.includes(d.kind));
}

export const CNPG_PORTS = [
  { name: 'postgresql', containerPort: 5432, protocol: 'TCP' },
  { name: 'status', containerPort: 8000, protocol: 'TCP' },
  { name: 'metrics', containerPort: 9187, protocol: 'TCP' },
];

export function podTemplates(docs) {
  const out = [];
  for (const w of workloads(docs)) {
    const { labels, spec } = podSpecOf(w);
    const ports = (spec.containers ?? []).flatMap((c) => c.ports ?? []);
    out.push({ owner: idOf(w), namespace: nsOf(w), labels, ports, spec });
  }
  for (const c of docs.filter((d) => d.kind === 'Cluster' && d.apiVersion?.startsWith('postgresql.cnpg.io/'))) {
    out.push({
      owner: idOf(c),
      namespace: nsOf(c),
      labels: {
        ...(c.spec?.inheritedMetadata?.labels ?? {}),
        'cnpg.io/cluster': c.metadata.name,
        'cnpg.io/podRole': 'instance',
      },
      ports: CNPG_PORTS,
      synthetic: true,
    });
  }
  return out;
}

export function listSqlFiles(dir = path.join(repoRoot, 'sql')) {
  const out = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.sql')) out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}
