// A NetworkPolicy evaluator, and the check that the policies of a build
// allow exactly the flows the stack needs (network-flows.json).
//
// Semantics follow networking.k8s.io/v1: a pod selected by no policy of a
// type is open in that direction; a selected pod admits only what some rule
// of some selecting policy allows; a flow needs both the source's egress and
// the destination's ingress. ipBlock peers are matched against addresses
// outside the cluster only (the API documents them for that).

import fs from 'node:fs';
import path from 'node:path';
import { nsOf, podTemplates, selectorMatches, testsDir } from './common.mjs';

export function loadFlows() {
  return JSON.parse(fs.readFileSync(path.join(testsDir, 'network-flows.json'), 'utf8'));
}

function ipToInt(ip) {
  return ip.split('.').reduce((a, b) => (a << 8) + Number(b), 0) >>> 0;
}

function cidrContains(cidr, ip) {
  if (cidr.includes(':') || ip.includes(':')) return false;
  const [base, bits] = cidr.split('/');
  const n = Number(bits ?? 32);
  const mask = n === 0 ? 0 : (~0 << (32 - n)) >>> 0;
  return (ipToInt(base) & mask) === (ipToInt(ip) & mask);
}

const nsLabels = (ns) => ({ 'kubernetes.io/metadata.name': ns });

function peerMatches(peer, policyNs, ep) {
  if (peer.ipBlock) {
    if (!ep.ip) return false;
    return cidrContains(peer.ipBlock.cidr, ep.ip) &&
      !(peer.ipBlock.except ?? []).some((c) => cidrContains(c, ep.ip));
  }
  if (!ep.pod) return false;
  const nsOk = peer.namespaceSelector
    ? selectorMatches(peer.namespaceSelector, nsLabels(ep.namespace))
    : ep.namespace === policyNs;
  const podOk = peer.podSelector ? selectorMatches(peer.podSelector, ep.labels) : true;
  return nsOk && podOk;
}

function resolvePort(p, dst, protocol) {
  if (typeof p !== 'string') return p;
  const hit = (dst.ports ?? []).find((cp) => cp.name === p && (cp.protocol ?? 'TCP') === protocol);
  return hit ? hit.containerPort : null;
}

function portsMatch(ports, dst, port, protocol) {
  if (!ports || !ports.length) return true;
  return ports.some((p) => {
    if ((p.protocol ?? 'TCP') !== protocol) return false;
    if (p.port === undefined) return true;
    const lo = resolvePort(p.port, dst, protocol);
    if (lo === null) return false;
    return p.endPort ? port >= lo && port <= p.endPort : port === lo;
  });
}

function policyTypes(p) {
  if (p.spec?.policyTypes?.length) return p.spec.policyTypes;
  return p.spec?.egress ? ['Ingress', 'Egress'] : ['Ingress'];
}

export function flowAllowed(policies, src, dst, port, protocol) {
  const selecting = (ep, type) => policies.filter((p) => nsOf(p) === ep.namespace &&
    policyTypes(p).includes(type) && selectorMatches(p.spec?.podSelector ?? {}, ep.labels));
  if (src.pod) {
    const eg = selecting(src, 'Egress');
    if (eg.length && !eg.some((p) => (p.spec.egress ?? []).some((r) =>
      (!r.to?.length || r.to.some((peer) => peerMatches(peer, nsOf(p), dst))) &&
      portsMatch(r.ports, dst, port, protocol)))) return false;
  }
  if (dst.pod) {
    const ing = selecting(dst, 'Ingress');
    if (ing.length && !ing.some((p) => (p.spec.ingress ?? []).some((r) =>
      (!r.from?.length || r.from.some((peer) => peerMatches(peer, nsOf(p), src))) &&
      portsMatch(r.ports, dst, port, protocol)))) return false;
  }
  return true;
}

const key = (f) => `${f.from} -> ${f.to} ${f.port}`;

export function checkNetworkPolicies(docs, flows = loadFlows()) {
  const problems = [];
  const policies = docs.filter((d) => d.kind === 'NetworkPolicy');
  const templates = podTemplates(docs);
  const endpoints = new Map();
  // optionalPods: in some builds only (kotte-server, in the mixed overlays);
  // flows to or from one that is absent are not asked for.
  const absent = new Set();
  for (const [alias, owner] of [...Object.entries(flows.pods), ...Object.entries(flows.optionalPods ?? {})]) {
    const t = templates.find((x) => x.owner === owner);
    if (!t) {
      if (alias in (flows.optionalPods ?? {})) absent.add(alias);
      else problems.push(`${owner} (${alias}) is not in the build`);
      continue;
    }
    endpoints.set(alias, { pod: true, ...t });
  }
  for (const t of templates) {
    if (![...endpoints.values()].some((e) => e.owner === t.owner)) endpoints.set(t.owner, { pod: true, ...t });
  }
  for (const [alias, peer] of Object.entries(flows.peers)) {
    endpoints.set(alias, peer.ip ? { ip: peer.ip } : { pod: true, ports: [], ...peer });
  }
  const ports = new Set(flows.ports);
  for (const t of templates) for (const p of t.ports) ports.add(`${p.containerPort}/${p.protocol ?? 'TCP'}`);

  const present = (f) => !absent.has(f.from) && !absent.has(f.to);
  flows = { ...flows, needed: flows.needed.filter(present), forbidden: (flows.forbidden ?? []).filter(present) };
  const needed = new Set(flows.needed.map(key));
  const expected = new Set([...flows.needed, ...(flows.tolerated ?? [])].map(key));
  const inNs = (ep) => ep.pod && ep.namespace === flows.namespace;

  for (const [from, src] of endpoints) {
    for (const [to, dst] of endpoints) {
      if (!inNs(src) && !inNs(dst)) continue; // neither side is ours
      for (const pp of ports) {
        const [port, protocol] = pp.split('/');
        const f = { from, to, port: pp };
        const allowed = flowAllowed(policies, src, dst, Number(port), protocol);
        if (allowed && !expected.has(key(f))) problems.push(`open but not needed: ${key(f)}`);
        if (!allowed && needed.has(key(f))) problems.push(`needed but blocked: ${key(f)}`);
      }
    }
  }
  for (const f of flows.forbidden ?? []) {
    const [src, dst] = [endpoints.get(f.from), endpoints.get(f.to)];
    if (!src || !dst) continue;
    const [port, protocol] = f.port.split('/');
    if (flowAllowed(policies, src, dst, Number(port), protocol)) {
      const msg = `open but not needed: ${key(f)}`;
      if (!problems.includes(msg)) problems.push(msg);
    }
  }
  return problems;
}
