// Schema validation of every built object.
//
//   * Kubernetes kinds: the npm package kubernetes-models (types, required
//     fields, enums, formats such as quantities);
//   * CloudNativePG kinds: the CRD schemas in shared/k8s-schemas/cnpg-*,
//     compiled with Ajv; unknown fields are errors (the API server would
//     silently drop them, so a typo would be lost);
//   * ExternalSecret: @kubernetes-models/external-secrets;
//   * the Barman Cloud plugin's ObjectStore: its spec.configuration is the
//     same type as a Cluster's spec.backup.barmanObjectStore, so it is
//     checked against that part of the CloudNativePG Cluster CRD.
// A kind with no schema here is an error, never a pass.

import fs from 'node:fs';
import path from 'node:path';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { parseYamlDocs, sharedDir, idOf } from './common.mjs';


function cnpgSchemaDir() {
  const shared = sharedDir();
  if (!shared) return null;
  const dirs = fs.readdirSync(path.join(shared, 'k8s-schemas'))
    .filter((d) => d.startsWith('cnpg-'))
    .sort();
  return dirs.length ? path.join(shared, 'k8s-schemas', dirs[dirs.length - 1]) : null;
}

// Closes every object schema that lists its properties, so unknown fields fail.
function closeObjects(schema) {
  if (Array.isArray(schema)) return schema.forEach(closeObjects);
  if (!schema || typeof schema !== 'object') return;
  if (schema.properties && schema.additionalProperties === undefined &&
      !schema['x-kubernetes-preserve-unknown-fields']) {
    schema.additionalProperties = false;
  }
  for (const v of Object.values(schema)) closeObjects(v);
}

let crdValidators = null;

function loadCrds() {
  if (crdValidators) return crdValidators;
  const dir = cnpgSchemaDir();
  if (!dir) throw new Error('no shared/k8s-schemas/cnpg-* directory (set KOTTE_SHARED_DIR)');
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  for (const f of ['int32', 'int64', 'byte', 'quantity', 'duration']) ajv.addFormat(f, true);
  crdValidators = new Map();
  let clusterSchema = null;
  for (const f of fs.readdirSync(dir).filter((n) => /\.ya?ml$/.test(n))) {
    for (const crd of parseYamlDocs(fs.readFileSync(path.join(dir, f), 'utf8'))) {
      if (crd.kind !== 'CustomResourceDefinition') continue;
      const { group, names } = crd.spec;
      for (const v of crd.spec.versions) {
        if (!v.served) continue;
        const schema = structuredClone(v.schema.openAPIV3Schema);
        closeObjects(schema);
        crdValidators.set(`${group}/${v.name}/${names.kind}`, ajv.compile(schema));
        if (names.kind === 'Cluster') clusterSchema = structuredClone(v.schema.openAPIV3Schema);
      }
    }
  }
  if (clusterSchema) {
    const store = clusterSchema.properties.spec.properties.backup.properties.barmanObjectStore;
    const objectStore = {
      type: 'object',
      required: ['apiVersion', 'kind', 'metadata', 'spec'],
      properties: {
        apiVersion: { const: 'barmancloud.cnpg.io/v1' },
        kind: { const: 'ObjectStore' },
        metadata: { type: 'object' },
        spec: {
          type: 'object',
          required: ['configuration'],
          properties: {
            configuration: store,
            retentionPolicy: { type: 'string', pattern: '^[1-9][0-9]*[dwm]$' },
            // Same type as the resources of the Cluster's own containers.
            instanceSidecarConfiguration: {
              type: 'object',
              properties: {
                resources: clusterSchema.properties.spec.properties.resources,
                env: clusterSchema.properties.spec.properties.env,
                retentionPolicyIntervalSeconds: { type: 'integer' },
                logLevel: { type: 'string', enum: ['error', 'warning', 'info', 'debug', 'trace'] },
                additionalContainerArgs: { type: 'array', items: { type: 'string' } },
                startupProbe: { type: 'object' },
                livenessProbe: { type: 'object' },
                readinessProbe: { type: 'object' },
              },
            },
          },
        },
      },
    };
    closeObjects(objectStore);
    crdValidators.set('barmancloud.cnpg.io/v1/ObjectStore', ajv.compile(objectStore));
  }
  return crdValidators;
}

function splitApiVersion(apiVersion) {
  const i = apiVersion.lastIndexOf('/');
  return i < 0 ? ['', apiVersion] : [apiVersion.slice(0, i), apiVersion.slice(i + 1)];
}

async function loadModel(pkg, group, version, kind) {
  const sub = group ? `${group}/${version}/${kind}` : `${version}/${kind}`;
  try {
    return (await import(`${pkg}/${sub}`))[kind] ?? null;
  } catch {
    return null;
  }
}

const DNS1123 = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function ajvErrors(errors) {
  return errors.slice(0, 3).map((e) => `${e.instancePath || '/'} ${e.message}${
    e.params?.additionalProperty ? ` (${e.params.additionalProperty})` : ''}`).join('; ');
}

export async function validateObject(o) {
  if (!o.apiVersion || !o.kind) return ['object without apiVersion/kind'];
  const name = o.metadata?.name;
  if (!name || name.length > 253 || !DNS1123.test(name)) return [`${idOf(o)}: invalid metadata.name`];
  const [group, version] = splitApiVersion(o.apiVersion);

  const crds = loadCrds();
  const crd = crds.get(`${group}/${version}/${o.kind}`);
  if (crd) return crd(o) ? [] : [`${idOf(o)}: ${ajvErrors(crd.errors)}`];

  const model =
    (await loadModel('kubernetes-models', group, version, o.kind)) ??
    (group === 'external-secrets.io'
      ? await loadModel('@kubernetes-models/external-secrets', group, version, o.kind)
      : null);
  if (!model) return [`${idOf(o)}: no schema known for ${o.apiVersion} ${o.kind}`];
  try {
    new model(o).validate();
    return [];
  } catch (e) {
    return [`${idOf(o)}: ${String(e.message).split(', ').slice(0, 3).join('; ')}`];
  }
}

export async function checkSchemas(docs) {
  const problems = [];
  for (const o of docs) problems.push(...(await validateObject(o)));
  return problems;
}
