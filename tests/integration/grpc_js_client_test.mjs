// A client no one here wrote: @grpc/grpc-js + @grpc/proto-loader load proto/slq/v1 and talk
// to a real slq-server. Usage: node grpc_js_client_test.mjs HOST:PORT TOKEN MODEL_URI
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(path.join(path.dirname(fileURLToPath(import.meta.url)), '../proto/package.json'));
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const [addr, token, modelUri] = process.argv.slice(2);
const protoDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../proto');
const def = loader.loadSync(['slq/v1/job_service.proto', 'slq/v1/inference_service.proto'],
  { includeDirs: [protoDir], keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
const slq = grpc.loadPackageDefinition(def).slq.v1;
const jobs = new slq.JobService(addr, grpc.credentials.createInsecure());
const md = new grpc.Metadata();
md.set('authorization', `Bearer ${token}`);

let passed = 0, failed = 0;
const check = (name, ok, detail = '') => {
  if (ok) { passed++; console.log(`PASS: ${name}`); } else { failed++; console.log(`FAIL: ${name} ${detail}`); }
};
const call = (method, req, meta = md) => new Promise((resolve) =>
  jobs[method](req, meta, (err, resp) => resolve({ err, resp })));

const spec = { model_uri: modelUri, target: { min_ear: 0.99 }, formats: '4-8', calibration_data: 'tinystories' };
const sub = await call('SubmitJob', { spec, idempotency_key: 'grpc-js-1' });
check('SubmitJob', !sub.err && sub.resp.job.id.startsWith('job-'), sub.err?.message);
const id = sub.resp?.job?.id;

const events = [];
await new Promise((resolve) => {
  const stream = jobs.WatchJob({ job_id: id, after_sequence: 0 }, md);
  stream.on('data', (e) => events.push(e));
  stream.on('error', (e) => { check('WatchJob stream', false, e.message); resolve(); });
  stream.on('end', resolve);
});
const stages = new Set(events.map((e) => e.stage));
check('WatchJob streamed progress through the stages',
  ['JOB_STAGE_FETCH', 'JOB_STAGE_PROFILE', 'JOB_STAGE_SEARCH', 'JOB_STAGE_PUBLISH'].every((s) => stages.has(s)),
  JSON.stringify([...stages]));
check('WatchJob sequence numbers increase', events.every((e, i) => i === 0 || e.sequence > events[i - 1].sequence));
check('last event is SUCCEEDED', events.at(-1)?.state === 'JOB_STATE_SUCCEEDED', events.at(-1)?.state);

// Resume from the middle: only later events come back.
const mid = events[Math.floor(events.length / 2)].sequence;
const resumed = [];
await new Promise((resolve) => {
  const s = jobs.WatchJob({ job_id: id, after_sequence: mid }, md);
  s.on('data', (e) => resumed.push(e)); s.on('end', resolve); s.on('error', resolve);
});
check('WatchJob resumes after a sequence number', resumed.length > 0 && resumed.every((e) => e.sequence > mid));

const got = await call('GetJob', { job_id: id });
check('GetJob carries the certificate', got.resp?.job?.certificate?.target_met === true &&
  got.resp.job.certificate.ear.lower >= 0.99, JSON.stringify(got.resp?.job?.certificate?.ear));
const art = await call('GetArtifact', { artifact_id: got.resp.job.artifact_id });
check('GetArtifact lists files with sha256', art.resp?.artifact?.files?.every((f) => f.sha256.length === 64));

const bad = await call('SubmitJob', { spec: { ...spec, group_size: 100 } });
check('bad group_size -> INVALID_ARGUMENT naming the field',
  bad.err?.code === grpc.status.INVALID_ARGUMENT && /group_size/.test(bad.err.message), bad.err?.message);
const nf = await call('GetJob', { job_id: 'job-0000000000000000' });
check('unknown job -> NOT_FOUND', nf.err?.code === grpc.status.NOT_FOUND, nf.err?.message);
const noauth = await call('ListJobs', {}, new grpc.Metadata());
check('no token -> UNAUTHENTICATED', noauth.err?.code === grpc.status.UNAUTHENTICATED, noauth.err?.message);

// InferenceService: load the base model and the artifact, stream generations.
const infer = new slq.InferenceService(addr, grpc.credentials.createInsecure());
const icall = (method, req) => new Promise((resolve) =>
  infer[method](req, md, (err, resp) => resolve({ err, resp })));
const generate = (model, seed) => new Promise((resolve) => {
  const msgs = [];
  const s = infer.Generate({ model, prompt: 'Once upon a time', max_tokens: 24,
    sampling: { temperature: 0.8, seed } }, md);
  s.on('data', (m) => msgs.push(m));
  s.on('error', (e) => resolve({ err: e, msgs }));
  s.on('end', () => resolve({ msgs }));
});
const lb = await icall('LoadModel', { name: 'base', model_uri: modelUri });
check('LoadModel base', !lb.err, lb.err?.message);
const la = await icall('LoadModel', { name: 'slq', artifact_id: got.resp.job.artifact_id });
check('LoadModel artifact', !la.err && la.resp.model.quantized, la.err?.message);
for (const model of ['base', 'slq']) {
  const a = await generate(model, 7), b = await generate(model, 7);
  const ids = (r) => r.msgs.flatMap((m) => m.token_ids);
  const last = a.msgs.at(-1);
  check(`Generate ${model}: 24 tokens streamed`, !a.err && ids(a).length === 24 &&
    last.finish_reason === 'FINISH_REASON_LENGTH' && last.usage.generated_tokens === 24, a.err?.message);
  check(`Generate ${model}: same seed, same tokens`, JSON.stringify(ids(a)) === JSON.stringify(ids(b)));
  check(`Generate ${model}: streamed text is not empty`, a.msgs.map((m) => m.text).join('').length > 0);
}
const unk = await generate('nope', 1);
check('Generate unknown model -> NOT_FOUND', unk.err?.code === grpc.status.NOT_FOUND, unk.err?.message);

console.log(`grpc-js: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
