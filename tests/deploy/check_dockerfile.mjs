// Structural checks of the Dockerfile that dockerfilelint does not make:
//   node check_dockerfile.mjs [Dockerfile]   prints the build-steps of the build stage last
// - every FROM that is no earlier stage pins a tag (not "latest"); COPY --from names a stage
// - stages runtime-cpu and runtime-cuda exist; runtime-cuda is the last (default) target
// - the runtime stages run as a non-root numeric USER, copy only /opt/slq from the build,
//   have a HEALTHCHECK through `slqctl ... health`, EXPOSE 7070 9090 9091, and a VOLUME
// - build args CUDA_VERSION and SLQ_CUDA_ARCH exist; the build runs
//   scripts/docker-build-steps.sh (whose steps run.sh then dry-runs)
// - .dockerignore keeps .git, build dirs and node_modules out of the context
import fs from 'node:fs';
import path from 'node:path';
import { Problems, REPO } from './lib/common.mjs';

const P = new Problems('dockerfile');
const file = process.argv[2] || path.join(REPO, 'Dockerfile');
const raw = fs.readFileSync(file, 'utf8').split('\n');

// Joins continuation lines, drops comments: [{line, instr, args}].
const instrs = [];
let buf = '';
let start = 0;
raw.forEach((l, i) => {
  if (!buf && (/^\s*#/.test(l) || !l.trim())) return;
  if (/^\s*#/.test(l)) return;  // comment inside a continued instruction
  if (!buf) start = i + 1;
  buf += (buf ? ' ' : '') + l.replace(/\\\s*$/, '').trim();
  if (!/\\\s*$/.test(l)) {
    const m = /^(\w+)\s+(.*)$/.exec(buf);
    if (m) instrs.push({ line: start, instr: m[1].toUpperCase(), args: m[2] });
    else P.add(`line ${start}`, `cannot parse "${buf}"`);
    buf = '';
  }
});

const stages = [];  // {name, from, instrs[]}
const globalArgs = [];
for (const it of instrs) {
  if (it.instr === 'FROM') {
    const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(it.args);
    if (!m) { P.add(`line ${it.line}`, `bad FROM ${it.args}`); continue; }
    const known = stages.some((s) => s.name === m[1]);
    if (!known) {
      if (!/[:@]/.test(m[1].replace(/^[^/]*\//, '')) || /:latest$/.test(m[1])) P.add(`line ${it.line}`, `FROM ${m[1]} must pin a tag`);
    }
    stages.push({ name: m[2], from: m[1], parent: known ? m[1] : null, instrs: [] });
  } else if (stages.length === 0) {
    if (it.instr !== 'ARG') P.add(`line ${it.line}`, `${it.instr} before the first FROM`);
    globalArgs.push(it.args.split('=')[0]);
  } else {
    stages[stages.length - 1].instrs.push(it);
  }
}
const stage = (n) => stages.find((s) => s.name === n);
const allArgs = new Set([...globalArgs, ...stages.flatMap((s) => s.instrs.filter((i) => i.instr === 'ARG').map((i) => i.args.split('=')[0]))]);
for (const a of ['CUDA_VERSION', 'SLQ_CUDA_ARCH', 'SLQ_CUDA']) if (!allArgs.has(a)) P.add(file, `build arg ${a} is missing`);

for (const s of stages) {
  for (const it of s.instrs) {
    const from = /--from=(\S+)/.exec(it.args);
    if (it.instr === 'COPY' && from && !stages.slice(0, stages.indexOf(s)).some((x) => x.name === from[1])) {
      P.add(`line ${it.line}`, `COPY --from=${from[1]} names no earlier stage`);
    }
  }
}

// Instructions of a stage including those inherited from its parent stages.
function lineage(s) { return s.parent ? [...lineage(stage(s.parent)), ...s.instrs] : s.instrs; }
for (const name of ['runtime-cpu', 'runtime-cuda']) {
  const s = stage(name);
  if (!s) { P.add(file, `stage ${name} is missing`); continue; }
  const all = lineage(s);
  const users = all.filter((i) => i.instr === 'USER');
  const user = users.length ? users[users.length - 1].args : 'root';
  if (!/^[1-9][0-9]*(:[1-9][0-9]*)?$/.test(user)) P.add(name, `final USER must be a non-root numeric uid, got "${user}"`);
  const hc = all.filter((i) => i.instr === 'HEALTHCHECK');
  if (hc.length === 0 || !/slqctl.*health/.test(hc[hc.length - 1].args)) P.add(name, 'needs a HEALTHCHECK running slqctl ... health');
  const exposed = all.filter((i) => i.instr === 'EXPOSE').flatMap((i) => i.args.split(/\s+/));
  for (const p of ['7070', '9090', '9091']) if (!exposed.includes(p)) P.add(name, `does not EXPOSE ${p}`);
  if (!all.some((i) => i.instr === 'VOLUME')) P.add(name, 'declares no VOLUME');
  for (const c of all.filter((i) => i.instr === 'COPY')) {
    if (!/--from=build\s+\/opt\/slq\s/.test(c.args) && !/--from=cuda-repo/.test(c.args)) {
      P.add(`line ${c.line}`, `runtime stages copy only /opt/slq from the build stage, not "${c.args}"`);
    }
  }
  const ep = all.filter((i) => i.instr === 'ENTRYPOINT').pop();
  if (!ep || !/slq-server/.test(ep.args)) P.add(name, 'ENTRYPOINT must be slq-server');
}
if (stages.length && stages[stages.length - 1].name !== 'runtime-cuda') P.add(file, 'the last (default) stage must be runtime-cuda');

const build = stage('build');
let steps = [];
if (!build) P.add(file, 'stage build is missing');
else {
  const run = build.instrs.find((i) => i.instr === 'RUN' && /scripts\/docker-build-steps\.sh/.test(i.args));
  if (!run) P.add('build', 'no RUN of scripts/docker-build-steps.sh');
  else steps = run.args.split(/scripts\/docker-build-steps\.sh/)[1].trim().split(/\s+/);
  if (!build.instrs.some((i) => i.instr === 'RUN' && /scripts\/install-deps\.sh/.test(i.args))) {
    P.add('build', 'dependencies must come from scripts/install-deps.sh');
  }
  for (const need of ['configure', 'build', 'install']) if (!steps.includes(need)) P.add('build', `build steps lack "${need}"`);
}

const ignore = fs.readFileSync(path.join(path.dirname(file), '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
for (const need of ['.git', 'build*/', '**/node_modules']) if (!ignore.includes(need)) P.add('.dockerignore', `must list ${need}`);

const code = P.report();
console.log(`dockerfile: ${stages.length} stages, ${instrs.length} instructions, ${P.list.length} problems`);
if (code === 0) console.log(`STEPS ${steps.join(' ')}`);
// With a second argument: write every RUN as a bash script there, for shellcheck.
if (process.argv[3]) {
  const body = instrs.filter((i) => i.instr === 'RUN')
    .map((i) => `# Dockerfile line ${i.line}\n( ${i.args} )\n`).join('\n');
  fs.writeFileSync(process.argv[3], `#!/bin/bash\nset -o pipefail\n${body}`);
}
process.exit(code);
