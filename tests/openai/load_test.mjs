// Bounded load: N concurrent streamed completions (short outputs) through the openai client;
// every stream must end with a finish_reason and no request may fail.
// Usage: node load_test.mjs BASE_URL TOKEN MODEL [N]
import OpenAI from 'openai';

const [baseURL, token, model, nArg] = process.argv.slice(2);
const n = Number(nArg ?? 200);
const client = new OpenAI({ baseURL, apiKey: token, maxRetries: 0, timeout: 120000 });
const t0 = Date.now();
const results = await Promise.allSettled(Array.from({ length: n }, async (_, i) => {
  const stream = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 4,
    temperature: 0.8, seed: i, stream: true });
  let finish = null, text = '';
  for await (const c of stream) {
    text += c.choices[0]?.text ?? '';
    finish = c.choices[0]?.finish_reason ?? finish;
  }
  if (!finish) throw new Error(`stream ${i} ended without a finish_reason`);
  return text;
}));
const errors = results.filter((r) => r.status === 'rejected');
for (const r of errors.slice(0, 5)) console.log(`error: ${r.reason}`);
console.log(`load: ${n} concurrent streams, ${errors.length} errors, ${(Date.now() - t0) / 1000}s`);
process.exit(errors.length === 0 ? 0 : 1);
