// Validates the Grafana dashboard and provisioning:
//   node check_grafana.mjs [DASHBOARD_JSON]
// Valid JSON; unique panel ids and refIds; panels inside the 24-column grid and not
// overlapping; every datasource uid is the provisioned one; every PromQL expression uses only
// metrics of docs/METRICS.md (histograms through _bucket/_sum/_count); the dashboard covers the
// required views (jobs by state, stage durations, TTFT, ITL, tokens/s, batch size, KV usage,
// shadow EAR vs certified EAR); the dashboard provider's path is where compose mounts it.
import fs from 'node:fs';
import path from 'node:path';
import { Problems, REPO, checkPromqlNames, loadMetricList, loadYaml } from './lib/common.mjs';

const P = new Problems('grafana');
const file = process.argv[2] || path.join(REPO, 'deploy', 'grafana', 'dashboards', 'slq.json');
let dash;
try { dash = JSON.parse(fs.readFileSync(file, 'utf8')); } catch (e) { P.add(file, `not valid JSON: ${e.message}`); P.report(); process.exit(1); }

const prov = loadYaml(path.join(REPO, 'deploy', 'grafana', 'provisioning', 'datasources', 'prometheus.yml'));
const uids = new Set((prov.datasources || []).map((d) => d.uid));
if (uids.size !== 1) P.add('provisioning', `expected one provisioned datasource uid, got ${[...uids].join(', ')}`);
const uid = [...uids][0];

const metrics = loadMetricList();
const usedMetrics = new Set();
if (!dash.uid || !dash.title) P.add(file, 'dashboard needs uid and title');
if (!Array.isArray(dash.panels) || dash.panels.length === 0) P.add(file, 'dashboard has no panels');

function checkDs(ds, where) {
  if (ds === undefined) return;
  if (typeof ds !== 'object' || ds.type !== 'prometheus' || ds.uid !== uid) {
    P.add(where, `datasource must be {type: prometheus, uid: ${uid}}, got ${JSON.stringify(ds)}`);
  }
}

const ids = new Set();
const cells = new Map();
const allPanels = (dash.panels || []).flatMap((p) => [p, ...(p.panels || [])]);
for (const p of allPanels) {
  const where = `panel ${p.id} "${p.title}"`;
  if (ids.has(p.id)) P.add(where, 'duplicate panel id');
  ids.add(p.id);
  const g = p.gridPos || {};
  if (!(g.w > 0 && g.h > 0 && g.x >= 0 && g.y >= 0 && g.x + g.w <= 24)) P.add(where, `bad gridPos ${JSON.stringify(g)}`);
  const overlaps = new Set();
  for (let x = g.x; x < g.x + g.w; x++) {
    for (let y = g.y; y < g.y + g.h; y++) {
      const k = `${x},${y}`;
      if (cells.has(k)) overlaps.add(cells.get(k));
      cells.set(k, p.id);
    }
  }
  for (const o of overlaps) P.add(where, `overlaps panel ${o}`);
  if (p.type === 'row') continue;
  checkDs(p.datasource, where);
  if (!Array.isArray(p.targets) || p.targets.length === 0) P.add(where, 'no targets');
  const refs = new Set();
  for (const t of p.targets || []) {
    checkDs(t.datasource, `${where} target ${t.refId}`);
    if (refs.has(t.refId)) P.add(where, `duplicate refId ${t.refId}`);
    refs.add(t.refId);
    if (typeof t.expr !== 'string' || !t.expr.trim()) { P.add(where, `target ${t.refId} has no expr`); continue; }
    const { bad, used } = checkPromqlNames(t.expr, metrics);
    for (const b of bad) P.add(`${where} target ${t.refId}`, b);
    if (used.size === 0) P.add(`${where} target ${t.refId}`, 'uses no slq metric');
    used.forEach((m) => usedMetrics.add(m));
    let depth = 0;
    for (const ch of t.expr) { depth += ch === '(' ? 1 : ch === ')' ? -1 : 0; if (depth < 0) break; }
    if (depth !== 0) P.add(`${where} target ${t.refId}`, 'unbalanced parentheses');
  }
}
for (const v of dash.templating?.list || []) checkDs(v.datasource, `variable ${v.name}`);
for (const v of dash.templating?.list || []) {
  const q = typeof v.query === 'string' ? v.query : v.query?.query || '';
  for (const b of checkPromqlNames(q, metrics).bad) P.add(`variable ${v.name}`, b);
}

const required = ['slq_jobs', 'slq_job_stage_duration_seconds', 'slq_inference_ttft_seconds',
  'slq_inference_itl_seconds', 'slq_inference_generated_tokens_total', 'slq_inference_batch_size',
  'slq_kv_cache_usage_ratio', 'slq_shadow_ear', 'slq_artifact_certified_ear'];
for (const m of required) if (!usedMetrics.has(m)) P.add(file, `no panel shows ${m}`);

const provDash = loadYaml(path.join(REPO, 'deploy', 'grafana', 'provisioning', 'dashboards', 'slq.yml'));
const compose = fs.readFileSync(path.join(REPO, 'deploy', 'docker-compose.yml'), 'utf8');
for (const pr of provDash.providers || []) {
  if (!compose.includes(`./grafana/dashboards:${pr.options?.path}`)) {
    P.add('provisioning', `dashboard path ${pr.options?.path} is not where docker-compose.yml mounts deploy/grafana/dashboards`);
  }
}

const code = P.report();
console.log(`grafana: ${allPanels.length} panels, ${usedMetrics.size} metrics used, ${P.list.length} problems`);
process.exit(code);
