// Shared helpers of the deploy validators: YAML loading, the metric list of docs/METRICS.md,
// PromQL metric-name extraction and a tiny failure collector. No I/O beyond reading files.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

// The repository root; SLQ_REPO_ROOT points the validators at a (mutated) copy instead.
export const REPO = process.env.SLQ_REPO_ROOT ||
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

// Collects problems; report() prints them and returns the process exit code.
export class Problems {
  constructor(name) { this.name = name; this.list = []; }
  add(where, msg) { this.list.push(`${where}: ${msg}`); }
  report() {
    for (const p of this.list) console.error(`  ${this.name}: ${p}`);
    return this.list.length === 0 ? 0 : 1;
  }
}

// Parses every YAML document of a file strictly (duplicate keys are errors). Returns
// [{doc, index}] or throws with the file name in the message.
export function loadYamlDocs(file) {
  const text = fs.readFileSync(file, 'utf8');
  const docs = YAML.parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true, merge: true });
  const out = [];
  docs.forEach((d, index) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
    const doc = d.toJS({ maxAliasCount: 1000 });
    if (doc !== null && doc !== undefined) out.push({ doc, index });
  });
  return out;
}

export function loadYaml(file) {
  const docs = loadYamlDocs(file);
  if (docs.length !== 1) throw new Error(`${file}: expected one YAML document, found ${docs.length}`);
  return docs[0].doc;
}

// Reads the metric table of docs/METRICS.md: Map name -> {type, labels[]}.
export function loadMetricList(file = path.join(REPO, 'docs', 'METRICS.md')) {
  const metrics = new Map();
  const row = /^\|\s*`(slq_[a-z0-9_]+)`\s*\|\s*(gauge|counter|histogram)\s*\|([^|]*)\|/;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = row.exec(line);
    if (!m) continue;
    const labels = [...m[3].matchAll(/`([a-z_]+)`/g)].map((x) => x[1]);
    if (metrics.has(m[1])) throw new Error(`${file}: metric ${m[1]} listed twice`);
    metrics.set(m[1], { type: m[2], labels });
  }
  return metrics;
}

// Returns the problems with the slq_* series names used in a PromQL expression: a name must
// be a listed metric, or a listed histogram plus _bucket/_sum/_count. Recording-rule names
// (containing ':') are allowed when listed in `recorded`.
export function checkPromqlNames(expr, metrics, recorded = new Set()) {
  const bad = [];
  const used = new Set();
  // Strip string literals so label values like "slq_x" are not taken for names.
  const code = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/'(?:[^'\\]|\\.)*'/g, "''");
  for (const m of code.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const name = m[0];
    if (name.includes(':')) {
      if (name.startsWith('slq:') && !recorded.has(name)) bad.push(`unknown recording rule ${name}`);
      continue;
    }
    if (!name.startsWith('slq_')) continue;
    if (metrics.has(name)) {
      if (metrics.get(name).type === 'histogram') {
        bad.push(`${name} is a histogram: use ${name}_bucket, _sum or _count`);
      }
      used.add(name);
      continue;
    }
    const h = /^(.*)_(bucket|sum|count)$/.exec(name);
    if (h && metrics.has(h[1]) && metrics.get(h[1]).type === 'histogram') { used.add(h[1]); continue; }
    bad.push(`${name} is not in docs/METRICS.md`);
  }
  return { bad, used };
}
