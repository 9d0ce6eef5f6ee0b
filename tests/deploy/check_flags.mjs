// Checks that every command line in the deploy files uses flags the binaries have:
//   node check_flags.mjs
// Command lines come from the Dockerfile (ENTRYPOINT/CMD/HEALTHCHECK), docker-compose.yml
// (entrypoint/command/healthcheck) and the Kubernetes containers (command/args). Flags come
// from the sources: slq-server from server/main/server_config.cc, slqctl from client/*.cc,
// slq-worker from server/main/*worker*.cc. A binary whose sources are not there yet is
// reported as skipped, not failed.
import fs from 'node:fs';
import path from 'node:path';
import { Problems, REPO, loadYaml, loadYamlDocs } from './lib/common.mjs';

const P = new Problems('flags');

function sourceFlags(files) {
  const flags = new Set();
  const subcommands = new Set();
  for (const f of files) {
    const text = fs.readFileSync(f, 'utf8');
    for (const m of text.matchAll(/add_(?:option|flag)\(\s*"([^"]+)"/g)) {
      for (const n of m[1].split(',')) if (n.startsWith('--')) flags.add(n);
    }
    for (const m of text.matchAll(/Add\(app,\s*"([a-z0-9-]+)"/g)) flags.add(`--${m[1]}`);
    for (const m of text.matchAll(/add_subcommand\(\s*"([a-z0-9-]+)"/g)) subcommands.add(m[1]);
  }
  return files.length ? { flags, subcommands, files } : null;
}
const ls = (dir, re) => (fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => re.test(f) && !/_test\.cc$/.test(f)).map((f) => path.join(dir, f)) : []);
const BINARIES = {
  'slq-server': sourceFlags(ls(path.join(REPO, 'server', 'main'), /^server_config\.cc$/)),
  'slq-worker': sourceFlags(ls(path.join(REPO, 'server', 'main'), /worker.*\.cc$/)),
  slqctl: sourceFlags(ls(path.join(REPO, 'client'), /\.cc$/)),
};

const invocations = [];  // {where, argv}
// Dockerfile: JSON-form ENTRYPOINT, CMD, HEALTHCHECK ... CMD [...].
{
  const text = fs.readFileSync(path.join(REPO, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  let entry = [];
  for (const line of text.split('\n')) {
    const m = /^(ENTRYPOINT|CMD|HEALTHCHECK)\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    const json = /(\[.*\])\s*$/.exec(m[2]);
    if (!json) { P.add('Dockerfile', `${m[1]} must use the JSON (exec) form`); continue; }
    const argv = JSON.parse(json[1]);
    if (m[1] === 'ENTRYPOINT') entry = argv;
    else if (m[1] === 'CMD') invocations.push({ where: 'Dockerfile CMD', argv: [...entry, ...argv] });
    else invocations.push({ where: 'Dockerfile HEALTHCHECK', argv });
  }
}
// docker compose.
{
  const compose = loadYaml(path.join(REPO, 'deploy', 'docker-compose.yml'));
  for (const [name, s] of Object.entries(compose.services)) {
    if (!/(^|[/-])slq(:|$)|SLQ_IMAGE/.test(String(s.image))) continue;  // ${SLQ_IMAGE:-slq:cuda}
    const entry = s.entrypoint || ['slq-server'];
    if (s.command) invocations.push({ where: `compose ${name}`, argv: [...entry, ...s.command] });
    const t = s.healthcheck?.test;
    if (Array.isArray(t) && t[0] === 'CMD') invocations.push({ where: `compose ${name} healthcheck`, argv: t.slice(1) });
  }
}
// Kubernetes.
for (const f of fs.readdirSync(path.join(REPO, 'deploy', 'k8s')).filter((x) => /\.ya?ml$/.test(x))) {
  for (const { doc } of loadYamlDocs(path.join(REPO, 'deploy', 'k8s', f))) {
    for (const c of doc?.spec?.template?.spec?.containers || []) {
      if (!/(^|\/)slq(:|$)/.test(c.image || '')) continue;
      const probes = ['startupProbe', 'livenessProbe', 'readinessProbe'].map((p) => c[p]?.exec?.command).filter(Boolean);
      invocations.push({ where: `k8s ${f} ${c.name}`, argv: [...(c.command || ['slq-server']), ...(c.args || [])] });
      probes.forEach((argv) => invocations.push({ where: `k8s ${f} ${c.name} probe`, argv }));
    }
  }
}

if (process.env.SLQ_DEBUG) for (const i of invocations) console.log(i.where, JSON.stringify(i.argv));
const skipped = new Set();
for (const { where, argv } of invocations) {
  const bin = path.basename(argv[0]);
  const known = BINARIES[bin];
  if (!(bin in BINARIES)) { P.add(where, `unknown binary ${argv[0]}`); continue; }
  if (!known) { skipped.add(bin); continue; }
  for (const a of argv.slice(1)) {
    if (!a.startsWith('--')) continue;
    const flag = a.split('=')[0];
    if (!known.flags.has(flag)) P.add(where, `${bin} has no flag ${flag} (flags: ${[...known.flags].sort().join(' ')})`);
  }
  if (bin === 'slqctl') {
    const last = argv[argv.length - 1];
    if (!known.subcommands.has(last)) P.add(where, `slqctl has no subcommand ${last}`);
  }
}
for (const b of skipped) console.log(`flags: SKIP ${b} (no sources yet)`);
const code = P.report();
console.log(`flags: ${invocations.length} command lines checked, ${P.list.length} problems`);
process.exit(code);
