// Dockerfile checks: the linter of the VS Code Docker extension
// (dockerfile-utils), pinned base images, COPY/ADD sources that exist in
// the build context and survive its .dockerignore, pinned remote sources,
// and a non-root final user. The build context of every Dockerfile under
// k8s/ is the repository root (each file says so in its header).

import fs from 'node:fs';
import path from 'node:path';
import { DockerfileParser } from 'dockerfile-ast';
import { validate } from 'dockerfile-utils';
import { repoRoot } from './common.mjs';

export function listDockerfiles(dir = path.join(repoRoot, 'k8s')) {
  return fs.readdirSync(dir)
    .filter((f) => /^Dockerfile(\..+)?$/.test(f) && !f.endsWith('.dockerignore'))
    .sort()
    .map((f) => path.join(dir, f));
}

// .dockerignore --------------------------------------------------------------

function globToRegex(glob) {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') {
      if (glob[i + 1] === '*') { re += '.*'; i++; if (glob[i + 1] === '/') i++; } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

export function loadIgnore(dockerfile) {
  const f = `${dockerfile}.dockerignore`;
  const alt = path.join(repoRoot, '.dockerignore');
  const file = fs.existsSync(f) ? f : fs.existsSync(alt) ? alt : null;
  if (!file) return [];
  return fs.readFileSync(file, 'utf8').split('\n').map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const neg = l.startsWith('!');
      const pat = path.posix.normalize((neg ? l.slice(1) : l).replace(/^\/+/, ''));
      return { neg, re: globToRegex(pat) };
    });
}

export function ignored(rules, rel) {
  const parts = rel.split('/');
  let out = false;
  for (const r of rules) {
    for (let i = 1; i <= parts.length; i++) {
      if (r.re.test(parts.slice(0, i).join('/'))) { out = !r.neg; break; }
    }
  }
  return out;
}

// Parsing helpers ------------------------------------------------------------

function argDefaults(df) {
  const vars = {};
  for (const a of df.getARGs()) {
    const p = a.getProperty();
    if (p && p.getValue() !== null && !(p.getName() in vars)) vars[p.getName()] = p.getValue();
  }
  return vars;
}

const expand = (s, vars) => s.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (m, n) => vars[n] ?? m);

export function parseDockerfile(file) {
  const text = fs.readFileSync(file, 'utf8');
  const df = DockerfileParser.parse(text);
  const vars = argDefaults(df);
  const stages = [];
  for (const ins of df.getInstructions()) {
    const kw = ins.getKeyword();
    const args = ins.getArguments().map((a) => a.getValue());
    if (kw === 'FROM') {
      const asAt = args.findIndex((a) => a.toUpperCase() === 'AS');
      stages.push({ image: expand(args[0] ?? '', vars), name: asAt > 0 ? args[asAt + 1] : null, ins: [] });
      continue;
    }
    if (!stages.length) continue;
    const flags = Object.fromEntries((ins.getFlags?.() ?? []).map((f) => [f.getName(), f.getValue()]));
    stages[stages.length - 1].ins.push({ kw, args, flags, text: ins.getTextContent?.() ?? '' });
  }
  return { text, vars, stages };
}

const FLOATING = /^(latest|stable|edge|main|master|dev|nightly|current|lts|alpine|slim)$/i;

export function baseImageProblem(image, stageNames) {
  if (stageNames.includes(image)) return null;
  if (image === 'scratch') return null;
  if (image.includes('$')) return `FROM ${image}: unresolved variable`;
  if (image.includes('@sha256:')) return null;
  const slash = image.lastIndexOf('/');
  const colon = image.lastIndexOf(':');
  if (colon <= slash) return `FROM ${image}: no tag`;
  const tag = image.slice(colon + 1);
  if (FLOATING.test(tag)) return `FROM ${image}: floating tag`;
  if (!/\d+\.\d+|\d{8}/.test(tag)) return `FROM ${image}: tag "${tag}" is not a pinned version`;
  return null;
}

function sourcesOf(ins) {
  let args = ins.args;
  if (args.length === 1 && args[0].startsWith('[')) {
    try { args = JSON.parse(ins.text.replace(/^\s*(COPY|ADD)(\s+--\S+)*\s+/i, '')); } catch { /* keep */ }
  }
  const plain = args.filter((a) => !a.startsWith('--'));
  return plain.slice(0, -1);
}

function userProblem(user) {
  if (!user) return 'the final stage sets no USER (runs as root)';
  const name = user.split(':')[0];
  if (name === '0' || name === 'root') return `final USER is ${user}`;
  return null;
}

export function finalUser(parsed) {
  const last = parsed.stages[parsed.stages.length - 1];
  const users = last?.ins.filter((i) => i.kw === 'USER') ?? [];
  return users.length ? users[users.length - 1].args[0] : null;
}

export function checkDockerfile(file) {
  const problems = [];
  const parsed = parseDockerfile(file);
  for (const d of validate(parsed.text, {})) {
    if (d.severity <= 2) problems.push(`line ${d.range.start.line + 1}: ${d.message}`);
  }
  if (!parsed.stages.length) return [...problems, 'no FROM'];
  const names = [];
  for (const st of parsed.stages) {
    const p = baseImageProblem(st.image, names);
    if (p) problems.push(p);
    if (st.name) names.push(st.name);
  }
  const rules = loadIgnore(file);
  for (const st of parsed.stages) {
    for (const ins of st.ins.filter((i) => i.kw === 'COPY' || i.kw === 'ADD')) {
      if (ins.flags.from !== undefined) continue;
      for (const raw of sourcesOf(ins)) {
        const src = expand(raw, parsed.vars);
        if (/^https?:\/\//.test(src) || /^git@/.test(src)) {
          if (ins.kw !== 'ADD') problems.push(`COPY of a URL: ${src}`);
          else if (!/[0-9a-f]{40}|\/v?\d+\.\d+(\.\d+)?[^/]*$/.test(src) || /\b(master|main|HEAD)\b/.test(src)) {
            problems.push(`ADD ${src}: not pinned to a commit or release`);
          }
          continue;
        }
        const rel = path.posix.normalize(src.replace(/^\/+/, ''));
        if (rel.startsWith('..')) { problems.push(`${ins.kw} ${src}: outside the build context`); continue; }
        if (/[*?[]/.test(rel)) {
          const re = globToRegex(rel);
          const hits = walk(repoRoot).filter((f) => re.test(f) && !ignored(rules, f));
          if (!hits.length) problems.push(`${ins.kw} ${src}: matches no file`);
          continue;
        }
        if (!fs.existsSync(path.join(repoRoot, rel))) problems.push(`${ins.kw} ${src}: does not exist`);
        else if (rel !== '.' && ignored(rules, rel)) problems.push(`${ins.kw} ${src}: excluded by .dockerignore`);
      }
    }
  }
  const up = userProblem(finalUser(parsed));
  if (up) problems.push(up);
  return problems;
}

function walk(root) {
  const out = [];
  const rec = (d, rel) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.name === '.git' || e.name === 'node_modules') continue;
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) rec(path.join(d, e.name), r); else out.push(r);
    }
  };
  rec(root, '');
  return out;
}

// The images and the manifests agree: ports, users, entry points, the
// pinned Kotte ref, and the versions the production tags claim.
function exposes(parsed) {
  const last = parsed.stages[parsed.stages.length - 1];
  return last.ins.filter((i) => i.kw === 'EXPOSE').flatMap((i) => i.args.map((a) => Number(a.split('/')[0])));
}

// ingress-nginx's upstream-keepalive-timeout default (seconds).
const INGRESS_UPSTREAM_KEEPALIVE_S = 60;

function uid(user) {
  return user ? Number(user.split(':')[0]) : NaN;
}

export function checkImageContracts(docs, dir = path.join(repoRoot, 'k8s')) {
  const problems = [];
  const load = (n) => {
    const f = path.join(dir, n);
    return fs.existsSync(f) ? parseDockerfile(f) : (problems.push(`k8s/${n} is missing`), null);
  };
  const backend = load('Dockerfile.backend');
  const frontend = load('Dockerfile.frontend');
  const server = load('Dockerfile.kotte-server');
  const age = load('Dockerfile.age-cnpg');
  const dep = (name) => docs.find((d) => d.kind === 'Deployment' && d.metadata.name === name);
  const podOf = (d) => d?.spec?.template?.spec ?? {};
  const portOf = (d) => podOf(d).containers?.[0]?.ports?.[0]?.containerPort;
  const runAs = (d) => podOf(d).containers?.[0]?.securityContext?.runAsUser ?? podOf(d).securityContext?.runAsUser;
  const be = dep('kotte-backend');
  const fe = dep('kotte-frontend');
  const cluster = docs.find((d) => d.kind === 'Cluster');
  if (!be || !fe || !cluster) return [...problems, 'the build lacks the backend, frontend or Cluster'];

  if (backend && frontend) {
    const [a, b] = [backend.vars.KOTTE_REF, frontend.vars.KOTTE_REF];
    if (!/^[0-9a-f]{40}$/.test(a ?? '')) problems.push(`Dockerfile.backend: KOTTE_REF ${a} is not a commit id`);
    if (a !== b) problems.push(`KOTTE_REF differs: backend ${a}, frontend ${b}`);
  }
  if (backend) {
    const cmd = backend.stages.at(-1).ins.filter((i) => i.kw === 'CMD').at(-1)?.text ?? '';
    if (!cmd.includes('libkotte.kotte.asgi:app')) problems.push('Dockerfile.backend: CMD does not start libkotte.kotte.asgi:app');
    // ingress-nginx keeps idle upstream connections 60 s and does not resend
    // a POST: the backend must keep them open longer (uvicorn's default is 5).
    const ka = Number(cmd.match(/--timeout-keep-alive"?\s*,?\s*"?(\d+)/)?.[1] ?? 5);
    if (!(ka > INGRESS_UPSTREAM_KEEPALIVE_S)) problems.push(`Dockerfile.backend: uvicorn keeps idle connections ${ka} s, not longer than the ingress's ${INGRESS_UPSTREAM_KEEPALIVE_S} s`);
    if (!exposes(backend).includes(portOf(be))) problems.push(`Dockerfile.backend: does not EXPOSE ${portOf(be)}`);
    if (uid(finalUser(backend)) !== runAs(be)) problems.push(`Dockerfile.backend: USER ${finalUser(backend)} but the pod runs as ${runAs(be)}`);
  }
  // kotte-server's image runs in the Deployment kotte-server (mixed overlays)
  const ks = dep('kotte-server');
  if (server && ks) {
    for (const d of docs.filter((x) => x.kind === 'Deployment')) {
      for (const c of podOf(d).containers ?? []) {
        const v = (c.env ?? []).find((e) => e.name === 'KOTTE_IDLE_TIMEOUT_MS')?.value;
        if (v !== undefined && !(Number(v) > INGRESS_UPSTREAM_KEEPALIVE_S * 1000)) {
          problems.push(`${d.metadata.name}: KOTTE_IDLE_TIMEOUT_MS ${v} is not longer than the ingress's ${INGRESS_UPSTREAM_KEEPALIVE_S} s upstream keep-alive`);
        }
      }
    }
    if (!exposes(server).includes(portOf(ks))) problems.push(`Dockerfile.kotte-server: does not EXPOSE ${portOf(ks)}`);
    if (uid(finalUser(server)) !== runAs(ks)) problems.push(`Dockerfile.kotte-server: USER ${finalUser(server)} but the kotte-server pod runs as ${runAs(ks)}`);
  }
  if (frontend) {
    if (!/^node:20[.-]/.test(frontend.stages[0].image) || !frontend.stages[0].image.includes('alpine')) {
      problems.push(`Dockerfile.frontend: builds on ${frontend.stages[0].image}, not node:20 alpine`);
    }
    if (!/^nginx:.*alpine/.test(frontend.stages.at(-1).image)) problems.push('Dockerfile.frontend: does not serve with nginx alpine');
    if (!exposes(frontend).includes(portOf(fe))) problems.push(`Dockerfile.frontend: does not EXPOSE ${portOf(fe)}`);
    if (uid(finalUser(frontend)) !== runAs(fe)) problems.push(`Dockerfile.frontend: USER ${finalUser(frontend)} but the pod runs as ${runAs(fe)}`);
    const conf = path.join(repoRoot, 'k8s', 'nginx', 'nginx.conf');
    if (fs.existsSync(conf) && !new RegExp(`listen\\s+${portOf(fe)}\\b`).test(fs.readFileSync(conf, 'utf8'))) {
      problems.push(`nginx.conf does not listen on ${portOf(fe)}`);
    }
  }
  if (age) {
    const base = age.stages[0].image;
    const m = base.match(/^ghcr\.io\/cloudnative-pg\/postgresql:(16\.\d+)/);
    if (!m) problems.push(`Dockerfile.age-cnpg: base ${base} is not CloudNativePG's PostgreSQL 16`);
    if (uid(finalUser(age)) !== (cluster.spec.postgresUID ?? 26)) problems.push(`Dockerfile.age-cnpg: USER ${finalUser(age)} is not the cluster's postgres UID`);
    if (age.stages.at(-1).ins.some((i) => i.kw === 'ENTRYPOINT' || i.kw === 'CMD')) {
      problems.push('Dockerfile.age-cnpg: overrides ENTRYPOINT/CMD, which the operator owns');
    }
    const tag = (cluster.spec.imageName ?? '').split(':').at(-1);
    if (m && /^\d/.test(tag) && !(tag.startsWith(m[1]) && tag.includes(`age${age.vars.AGE_VERSION}`))) {
      problems.push(`Cluster imageName tag ${tag} does not match the Dockerfile (PostgreSQL ${m[1]}, AGE ${age.vars.AGE_VERSION})`);
    }
  }
  return problems;
}
