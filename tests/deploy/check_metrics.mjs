// Keeps the metric names consistent everywhere:
//   node check_metrics.mjs contract   docs/METRICS.md lists exactly the contract's metrics
//                                     (names, types, labels)
//   node check_metrics.mjs rules      alert/recording rules use only listed metrics
//   node check_metrics.mjs code       server/metrics/metrics.cc registers exactly the listed
//                                     metrics with the listed types (skipped without it)
import fs from 'node:fs';
import path from 'node:path';
import { Problems, REPO, checkPromqlNames, loadMetricList, loadYaml } from './lib/common.mjs';

// The contract of the service (issue [F]): name -> [type, labels].
const CONTRACT = {
  slq_jobs: ['gauge', ['state']],
  slq_jobs_finished_total: ['counter', ['state']],
  slq_job_stage_duration_seconds: ['histogram', ['stage']],
  slq_task_queue_depth: ['gauge', []],
  slq_leases_active: ['gauge', []],
  slq_leases_expired_total: ['counter', []],
  slq_workers_connected: ['gauge', []],
  slq_fetch_bytes_total: ['counter', []],
  slq_inference_requests_total: ['counter', ['model', 'status']],
  slq_inference_ttft_seconds: ['histogram', ['model']],
  slq_inference_itl_seconds: ['histogram', ['model']],
  slq_inference_e2e_seconds: ['histogram', ['model']],
  slq_inference_prompt_tokens_total: ['counter', ['model']],
  slq_inference_generated_tokens_total: ['counter', ['model']],
  slq_inference_requests_running: ['gauge', []],
  slq_inference_requests_waiting: ['gauge', []],
  slq_inference_batch_size: ['histogram', []],
  slq_kv_cache_usage_ratio: ['gauge', ['model']],
  slq_model_memory_bytes: ['gauge', ['model']],
  slq_shadow_ear: ['histogram', ['artifact']],
  slq_shadow_kl: ['histogram', ['artifact']],
  slq_artifact_certified_ear: ['gauge', ['artifact']],
};

const mode = process.argv[2];
const metricsFile = process.argv[3] || path.join(REPO, 'docs', 'METRICS.md');
const P = new Problems(`metrics ${mode}`);
const metrics = loadMetricList(metricsFile);

if (mode === 'contract') {
  for (const [name, [type, labels]] of Object.entries(CONTRACT)) {
    const m = metrics.get(name);
    if (!m) { P.add('METRICS.md', `${name} is not documented`); continue; }
    if (m.type !== type) P.add('METRICS.md', `${name} is documented as ${m.type}, the contract says ${type}`);
    if (m.labels.join(',') !== labels.join(',')) P.add('METRICS.md', `${name} labels ${m.labels} != contract ${labels}`);
  }
  for (const name of metrics.keys()) if (!CONTRACT[name]) P.add('METRICS.md', `${name} is not in the contract`);
  for (const [name, m] of metrics) {
    if (m.type === 'counter' && !name.endsWith('_total')) P.add('METRICS.md', `counter ${name} must end in _total`);
  }
} else if (mode === 'rules') {
  const dir = path.join(REPO, 'deploy', 'prometheus', 'rules');
  for (const f of fs.readdirSync(dir).filter((x) => /\.ya?ml$/.test(x) && !/\.test\.ya?ml$/.test(x))) {
    const doc = loadYaml(path.join(dir, f));
    const recorded = new Set(doc.groups.flatMap((g) => g.rules.filter((r) => r.record).map((r) => r.record)));
    for (const g of doc.groups) {
      for (const r of g.rules) {
        const where = `${f} ${r.alert || r.record}`;
        const { bad } = checkPromqlNames(r.expr, metrics, recorded);
        for (const b of bad) P.add(where, b);
        if (r.alert && !['warning', 'critical'].includes(r.labels?.severity)) P.add(where, 'severity must be warning or critical');
        if (r.alert && !r.annotations?.summary) P.add(where, 'alert needs a summary annotation');
      }
    }
  }
} else if (mode === 'code') {
  const file = path.join(REPO, 'server', 'metrics', 'metrics.cc');
  if (!fs.existsSync(file)) {
    console.log(`metrics code: SKIP (${path.relative(REPO, file)} not there)`);
    process.exit(0);
  }
  const text = fs.readFileSync(file, 'utf8');
  const found = new Map();
  for (const m of text.matchAll(/Build(Gauge|Counter|Histogram)\(\)\s*\.Name\("(slq_[a-z0-9_]+)"\)/g)) {
    found.set(m[2], m[1].toLowerCase());
  }
  for (const [name, type] of found) {
    if (!metrics.has(name)) P.add(path.relative(REPO, file), `${name} is registered but not in docs/METRICS.md`);
    else if (metrics.get(name).type !== type) P.add(path.relative(REPO, file), `${name} is a ${type} in code, ${metrics.get(name).type} in docs`);
  }
  for (const name of metrics.keys()) if (!found.has(name)) P.add(path.relative(REPO, file), `${name} is documented but not registered`);
} else {
  console.error('usage: check_metrics.mjs contract|rules|code [METRICS.md]');
  process.exit(2);
}

const code = P.report();
console.log(`metrics ${mode}: ${metrics.size} documented metrics, ${P.list.length} problems`);
process.exit(code);
