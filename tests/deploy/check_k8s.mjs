// Validates Kubernetes manifests: node check_k8s.mjs [DIR_OR_FILE...] (default deploy/k8s).
// Every object: schema + strict unknown-field check (lib/k8s_strict.mjs). Across objects:
// kustomization resources exist; selectors match pod labels; Services select some workload
// and target named ports that exist; referenced ConfigMaps, Secrets (and keys), PVCs exist;
// HPA targets exist; GPU workloads request nvidia.com/gpu; gRPC probes use the gRPC port;
// the server config in the ConfigMap uses only known slq-server options.
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { Problems, REPO, loadYamlDocs } from './lib/common.mjs';
import { validateK8sObject } from './lib/k8s_strict.mjs';
import { checkServerConfig } from './lib/server_keys.mjs';

const P = new Problems('k8s');
const args = process.argv.slice(2);
const inputs = args.length ? args : [path.join(REPO, 'deploy', 'k8s')];

function listYaml(p) {
  if (fs.statSync(p).isFile()) return [p];
  return fs.readdirSync(p, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listYaml(path.join(p, e.name))
      : /\.ya?ml$/.test(e.name) ? [path.join(p, e.name)] : []);
}

const objects = [];  // {obj, file}
for (const file of inputs.flatMap(listYaml)) {
  let docs;
  try { docs = loadYamlDocs(file); } catch (e) { P.add(file, e.message); continue; }
  for (const { doc } of docs) objects.push({ obj: doc, file: path.relative(REPO, file) });
}
if (objects.length === 0) P.add(inputs.join(','), 'no Kubernetes objects found');

// True when some server source sets a health status for `service` (gRPC answers NOT_FOUND
// for a service name nobody set, and a Kubernetes grpc probe fails on that).
function serviceStatusSet(service) {
  const walk = (d) => (fs.existsSync(d) ? fs.readdirSync(d, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(path.join(d, e.name)) : /\.(cc|h)$/.test(e.name) ? [path.join(d, e.name)] : []) : []);
  return walk(path.join(REPO, 'server')).some((f) => {
    const t = fs.readFileSync(f, 'utf8');
    return t.includes('SetServingStatus') && t.includes(`"${service}"`);
  });
}
const byKind = (kind) => objects.filter((o) => o.obj.kind === kind);
const find = (kind, name) => objects.find((o) => o.obj.kind === kind && o.obj.metadata?.name === name);
const WORKLOADS = ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'];
const matches = (selector, labels) =>
  Object.entries(selector || {}).every(([k, v]) => labels && labels[k] === v);

// 1. Schema + strict fields (Kustomization is not an API object: checked in 2).
for (const { obj, file } of objects) {
  if (obj.kind === 'Kustomization') continue;
  const where = `${file} ${obj.kind}/${obj.metadata?.name}`;
  for (const p of await validateK8sObject(obj)) P.add(where, p);
  if (!obj.metadata?.name) P.add(where, 'metadata.name is required');
}

// 2. Kustomization: known keys, listed resources exist and every manifest is listed.
for (const { obj, file } of byKind('Kustomization')) {
  const allowed = new Set(['apiVersion', 'kind', 'namespace', 'resources', 'images', 'labels',
    'commonLabels', 'commonAnnotations', 'patches', 'configMapGenerator', 'secretGenerator', 'replicas']);
  for (const k of Object.keys(obj)) if (!allowed.has(k)) P.add(file, `unknown Kustomization key "${k}"`);
  const dir = path.dirname(path.join(REPO, file));
  const listed = new Set(obj.resources || []);
  for (const r of listed) if (!fs.existsSync(path.join(dir, r))) P.add(file, `resource ${r} does not exist`);
  for (const f of fs.readdirSync(dir)) {
    if (/\.ya?ml$/.test(f) && f !== path.basename(file) && !listed.has(f)) P.add(file, `${f} is not listed in resources`);
  }
}

// 3. Cross-references.
const ns = byKind('Namespace').map((o) => o.obj.metadata.name);
for (const { obj, file } of objects) {
  const where = `${file} ${obj.kind}/${obj.metadata?.name}`;
  const n = obj.metadata?.namespace;
  if (obj.kind !== 'Namespace' && obj.kind !== 'Kustomization' && n && n !== 'monitoring' && !ns.includes(n)) {
    P.add(where, `namespace ${n} is not declared by a Namespace object`);
  }
  if (!WORKLOADS.includes(obj.kind)) continue;
  const tpl = obj.spec?.template;
  const podLabels = tpl?.metadata?.labels;
  if (!matches(obj.spec?.selector?.matchLabels, podLabels)) P.add(where, 'spec.selector does not match the pod template labels');
  const pod = tpl?.spec || {};
  const volumes = new Map((pod.volumes || []).map((v) => [v.name, v]));
  const claimTemplates = new Set((obj.spec?.volumeClaimTemplates || []).map((c) => c.metadata?.name));
  for (const v of volumes.values()) {
    if (v.configMap && !find('ConfigMap', v.configMap.name)) P.add(where, `volume ${v.name}: ConfigMap ${v.configMap.name} not found`);
    if (v.secret) {
      const s = find('Secret', v.secret.secretName);
      if (!s) P.add(where, `volume ${v.name}: Secret ${v.secret.secretName} not found`);
      for (const it of v.secret.items || []) {
        if (s && !(it.key in { ...s.obj.stringData, ...s.obj.data })) P.add(where, `volume ${v.name}: Secret key ${it.key} not found`);
      }
    }
    if (v.persistentVolumeClaim && !find('PersistentVolumeClaim', v.persistentVolumeClaim.claimName)) {
      P.add(where, `volume ${v.name}: PVC ${v.persistentVolumeClaim.claimName} not found`);
    }
  }
  for (const c of [...(pod.containers || []), ...(pod.initContainers || [])]) {
    const cw = `${where} container ${c.name}`;
    for (const m of c.volumeMounts || []) {
      if (!volumes.has(m.name) && !claimTemplates.has(m.name)) P.add(cw, `volumeMount ${m.name} has no volume`);
    }
    for (const e of c.env || []) {
      const ref = e.valueFrom?.secretKeyRef;
      if (!ref) continue;
      const s = find('Secret', ref.name);
      if (!s) P.add(cw, `env ${e.name}: Secret ${ref.name} not found`);
      else if (!(ref.key in { ...s.obj.stringData, ...s.obj.data })) P.add(cw, `env ${e.name}: Secret key ${ref.key} not found`);
    }
    const ports = new Map((c.ports || []).map((p) => [p.name, p.containerPort]));
    const portNums = new Set((c.ports || []).map((p) => p.containerPort));
    for (const probeName of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
      const pr = c[probeName];
      if (!pr) continue;
      const port = pr.grpc?.port ?? pr.httpGet?.port ?? pr.tcpSocket?.port;
      if (port !== undefined && !(typeof port === 'number' ? portNums.has(port) : ports.has(port))) {
        P.add(cw, `${probeName} port ${port} is not a container port`);
      }
      if (pr.grpc && pr.grpc.port !== ports.get('grpc')) P.add(cw, `${probeName} grpc probe must target the grpc port`);
      if (pr.grpc?.service && !serviceStatusSet(pr.grpc.service)) {
        P.add(cw, `${probeName} asks for the health of "${pr.grpc.service}", which the server never sets (SetServingStatus): the probe would fail`);
      }
    }
    const isSlq = /(^|\/)slq(:|$)/.test(c.image || '');
    const gpuReq = c.resources?.limits?.['nvidia.com/gpu'];
    const usesGpu = (c.args || []).some((a) => /cuda/.test(a)) ||
      (c.env || []).some((e) => e.name === 'SLQ_DEVICE' && /cuda/.test(e.value || ''));
    if (isSlq && usesGpu && gpuReq !== 1) P.add(cw, 'a CUDA slq container must limit nvidia.com/gpu to 1 (one GPU per pod)');
    // Pod Security Standard "restricted" (the slq namespace enforces it) for every container.
    const sc = { ...pod.securityContext, ...c.securityContext };
    if (sc.runAsNonRoot !== true) P.add(cw, 'must run as non-root (runAsNonRoot: true)');
    if (sc.allowPrivilegeEscalation !== false) P.add(cw, 'must set allowPrivilegeEscalation: false');
    if (!(sc.capabilities?.drop || []).includes('ALL')) P.add(cw, 'must drop ALL capabilities');
    if (!['RuntimeDefault', 'Localhost'].includes(sc.seccompProfile?.type)) P.add(cw, 'needs seccompProfile RuntimeDefault');
    if (isSlq && c.securityContext?.readOnlyRootFilesystem !== true) P.add(cw, 'slq containers run with readOnlyRootFilesystem');
  }
}
for (const { obj, file } of byKind('Service')) {
  const where = `${file} Service/${obj.metadata.name}`;
  const targets = objects.filter((o) => WORKLOADS.includes(o.obj.kind) &&
    matches(obj.spec?.selector, o.obj.spec?.template?.metadata?.labels));
  if (targets.length === 0) { P.add(where, 'selector matches no workload'); continue; }
  for (const p of obj.spec.ports || []) {
    if (typeof p.targetPort !== 'string') continue;
    for (const t of targets) {
      const names = (t.obj.spec.template.spec.containers || []).flatMap((c) => (c.ports || []).map((x) => x.name));
      if (!names.includes(p.targetPort)) P.add(where, `targetPort ${p.targetPort} is not a port of ${t.obj.kind}/${t.obj.metadata.name}`);
    }
  }
}
for (const { obj, file } of byKind('HorizontalPodAutoscaler')) {
  const ref = obj.spec?.scaleTargetRef || {};
  if (!find(ref.kind, ref.name)) P.add(`${file} HPA/${obj.metadata.name}`, `scaleTargetRef ${ref.kind}/${ref.name} not found`);
}
for (const { obj, file } of byKind('ServiceMonitor')) {
  const svcs = byKind('Service').filter((s) => matches(obj.spec?.selector?.matchLabels, s.obj.metadata?.labels));
  const where = `${file} ServiceMonitor/${obj.metadata.name}`;
  if (svcs.length === 0) P.add(where, 'selector matches no Service');
  for (const ep of obj.spec?.endpoints || []) {
    if (!svcs.some((s) => (s.obj.spec.ports || []).some((p) => p.name === ep.port))) P.add(where, `no selected Service has port ${ep.port}`);
  }
}

// 4. slq-server config in ConfigMaps.
for (const { obj, file } of byKind('ConfigMap')) {
  const text = obj.data?.['slq.yaml'];
  if (text === undefined) continue;
  let cfg;
  try { cfg = YAML.parse(text, { uniqueKeys: true }); } catch (e) { P.add(file, `slq.yaml: ${e.message}`); continue; }
  for (const p of checkServerConfig(cfg, `${file} ConfigMap/${obj.metadata.name} slq.yaml`)) P.add(file, p);
}

const code = P.report();
console.log(`k8s: ${objects.length} objects checked, ${P.list.length} problems`);
process.exit(code);
