// The official openai npm client against a real slq-server's OpenAI-compatible HTTP API.
// Usage: node openai_client_test.mjs BASE_URL TOKEN COMPLETION_MODEL CHAT_MODEL
import OpenAI from 'openai';

const [baseURL, token, model, chatModel] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: token, maxRetries: 0, timeout: 60000 });

let passed = 0, failed = 0;
const check = (name, ok, detail = '') => {
  if (ok) { passed++; console.log(`PASS: ${name}`); } else { failed++; console.log(`FAIL: ${name} ${detail}`); }
};
const apiError = async (fn) => { try { await fn(); return null; } catch (e) { return e; } };

// Models.
const models = [];
for await (const m of client.models.list()) models.push(m.id);
check('models.list names both served models', models.includes(model) && models.includes(chatModel), JSON.stringify(models));

// Completions, greedy: the stream's concatenated text equals the non-streamed text.
const params = { model, prompt: 'Once upon a time', max_tokens: 12, temperature: 0 };
const whole = await client.completions.create(params);
check('completions.create returns text', whole.object === 'text_completion' && whole.choices[0].text.length > 0,
  JSON.stringify(whole));
check('completions usage counts', whole.usage.completion_tokens > 0 && whole.usage.completion_tokens <= 12 &&
  whole.usage.prompt_tokens > 0 && whole.usage.total_tokens === whole.usage.prompt_tokens + whole.usage.completion_tokens,
  JSON.stringify(whole.usage));
let streamed = '', finish = null, chunks = 0;
for await (const c of await client.completions.create({ ...params, stream: true })) {
  chunks++;
  streamed += c.choices[0]?.text ?? '';
  if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
}
check('completions stream = non-streamed text (greedy)', streamed === whole.choices[0].text,
  JSON.stringify([streamed, whole.choices[0].text]));
// (events the engine produced while a write was in flight are merged: a fast model may send one chunk)
check('completions stream ends with a finish_reason', finish === whole.choices[0].finish_reason && chunks >= 1, finish);

// Seeded sampling is reproducible; logprobs are per token.
const seeded = { model, prompt: 'The cat', max_tokens: 10, temperature: 1.0, top_p: 0.9, seed: 42, logprobs: 0 };
const a = await client.completions.create(seeded);
const b = await client.completions.create(seeded);
check('same seed, same text', a.choices[0].text === b.choices[0].text, JSON.stringify([a.choices[0].text, b.choices[0].text]));
const lp = a.choices[0].logprobs;
check('logprobs: one per completion token, all <= 0', lp && lp.token_logprobs.length === a.usage.completion_tokens &&
  lp.tokens.length === lp.token_logprobs.length && lp.token_logprobs.every((x) => x <= 0), JSON.stringify(lp));

// Chat with the model's chat template, non-streamed and streamed (with usage).
const messages = [{ role: 'system', content: 'You tell stories.' }, { role: 'user', content: 'Tell me about a dog.' }];
const chat = await client.chat.completions.create({ model: chatModel, messages, max_tokens: 8, temperature: 0 });
check('chat.completions.create', chat.object === 'chat.completion' && chat.choices[0].message.role === 'assistant' &&
  typeof chat.choices[0].message.content === 'string' && chat.usage.completion_tokens > 0, JSON.stringify(chat));
let chatText = '', role = null, usage = null;
const chatStream = await client.chat.completions.create({ model: chatModel, messages, max_tokens: 8, temperature: 0,
  stream: true, stream_options: { include_usage: true } });
for await (const c of chatStream) {
  if (c.usage) usage = c.usage;
  const d = c.choices[0]?.delta;
  if (d?.role) role = d.role;
  chatText += d?.content ?? '';
}
check('chat stream = non-streamed message (greedy)', chatText === chat.choices[0].message.content && role === 'assistant',
  JSON.stringify([chatText, chat.choices[0].message.content]));
check('chat stream usage (stream_options.include_usage)', usage && usage.completion_tokens === chat.usage.completion_tokens,
  JSON.stringify(usage));

// Errors come back as the SDK's typed errors with OpenAI's error body.
let e = await apiError(() => client.completions.create({ ...params, n: 2 }));
check('n=2 -> 400 BadRequestError naming n', e instanceof OpenAI.BadRequestError && e.param === 'n' && /n=1/.test(e.message),
  String(e));
e = await apiError(() => client.completions.create({ ...params, model: 'no-such-model' }));
check('unknown model -> 404 NotFoundError', e instanceof OpenAI.NotFoundError && e.code === 'model_not_found', String(e));
e = await apiError(() => client.chat.completions.create({ model, messages, max_tokens: 4 }));
check('chat on a model without a chat template -> 400', e instanceof OpenAI.BadRequestError && /chat template/.test(e.message),
  String(e));
const stranger = new OpenAI({ baseURL, apiKey: 'wrong-token', maxRetries: 0 });
e = await apiError(() => stranger.models.list());
check('wrong token -> 401 AuthenticationError', e instanceof OpenAI.AuthenticationError, String(e));

console.log(`openai client: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
