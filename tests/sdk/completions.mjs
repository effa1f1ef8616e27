// completions.mjs — the official OpenAI Node SDK against inferd's /v1/completions.
//
//   node tests/sdk/completions.mjs [BASE_URL] [MODEL]
//
// BASE_URL (or $INFERD_BASE_URL, default http://127.0.0.1:8080/v1) is the API
// root the SDK is given ("/v1" is appended when missing); MODEL (or
// $INFERD_MODEL) a loaded text-generation model. It lists the models, runs a
// greedy completion, the same request streamed (with include_usage), and two
// bad requests, and checks they agree with each other and with API.md.
// Prints one line per step; exits 1 on the first failure.
import OpenAI from 'openai';
import { VERSION } from 'openai/version';

let baseURL = process.argv[2] || process.env.INFERD_BASE_URL || 'http://127.0.0.1:8080/v1';
const model = process.argv[3] || process.env.INFERD_MODEL;
if (!model) {
  console.error('usage: node completions.mjs BASE_URL MODEL (or INFERD_BASE_URL / INFERD_MODEL)');
  process.exit(2);
}
baseURL = baseURL.replace(/\/+$/, '');
if (!baseURL.endsWith('/v1')) baseURL += '/v1';

const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
const prompt = 'The quick brown fox';

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
const show = (v) => JSON.stringify(v);

async function main() {
  console.log(`openai SDK ${VERSION} on node ${process.version}, ${baseURL}, model ${model}`);

  // models.list: the SDK pages through {"object":"list","data":[...]}
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert(ids.includes(model), `models.list() does not list ${model}: ${show(ids)}`);
  console.log(`ok   models.list(): ${show(ids)}`);

  // non-streaming, greedy
  const req = { model, prompt, max_tokens: 8, temperature: 0 };
  const r = await client.completions.create(req);
  assert(r.object === 'text_completion', `object is ${show(r.object)}`);
  assert(typeof r.id === 'string' && r.id.startsWith('cmpl-'), `id is ${show(r.id)}`);
  assert(r.model === model, `model is ${show(r.model)}`);
  assert(Array.isArray(r.choices) && r.choices.length === 1, `choices: ${show(r.choices)}`);
  const c = r.choices[0];
  assert(typeof c.text === 'string', `text is ${show(c.text)}`);
  assert(['length', 'stop'].includes(c.finish_reason), `finish_reason is ${show(c.finish_reason)}`);
  const u = r.usage;
  assert(u && u.completion_tokens >= 1 && u.completion_tokens <= 8, `usage: ${show(u)}`);
  assert(u.total_tokens === u.prompt_tokens + u.completion_tokens, `usage does not add up: ${show(u)}`);
  console.log(`ok   completions.create(${show(req)}) -> ${show(c.text)} (${c.finish_reason}, usage ${show(u)})`);

  // the same request again: greedy is deterministic
  const r2 = await client.completions.create(req);
  assert(r2.choices[0].text === c.text, `second greedy call gave ${show(r2.choices[0].text)}, first ${show(c.text)}`);
  console.log('ok   the same greedy request again -> the same text');

  // streaming: join the deltas
  const stream = await client.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let finish = null;
  let chunks = 0;
  let usage = null;
  for await (const chunk of stream) {
    chunks++;
    assert(chunk.object === 'text_completion', `chunk object is ${show(chunk.object)}`);
    if (chunk.usage) usage = chunk.usage;
    for (const ch of chunk.choices) {
      assert(ch.index === 0, `chunk for choice ${ch.index}`);
      text += ch.text;
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  assert(chunks >= 2, `only ${chunks} chunk(s)`);
  assert(text === c.text, `streamed text ${show(text)} != non-streaming ${show(c.text)}`);
  assert(finish === c.finish_reason, `streamed finish_reason ${show(finish)} != ${show(c.finish_reason)}`);
  assert(usage && usage.completion_tokens === u.completion_tokens && usage.prompt_tokens === u.prompt_tokens,
    `streamed usage ${show(usage)} != ${show(u)}`);
  console.log(`ok   stream: ${chunks} chunks joined -> ${show(text)} (${finish}), usage ${show(usage)}: same as non-streaming`);

  // errors surface as the SDK's typed errors, with API.md's fields
  try {
    await client.completions.create({ ...req, max_tokens: 0 });
    throw new Error('max_tokens 0 was accepted');
  } catch (e) {
    assert(e instanceof OpenAI.BadRequestError, `max_tokens 0: ${e}`);
    assert(e.status === 400 && e.param === 'max_tokens' && e.type === 'invalid_request_error',
      `max_tokens 0: status ${e.status}, type ${e.type}, param ${e.param}`);
    console.log(`ok   max_tokens 0 -> BadRequestError 400 (param ${e.param}, code ${e.code})`);
  }
  try {
    await client.completions.create({ ...req, model: 'no-such-model' });
    throw new Error('an unknown model was accepted');
  } catch (e) {
    assert(e instanceof OpenAI.NotFoundError, `unknown model: ${e}`);
    console.log(`ok   unknown model -> NotFoundError 404 (code ${e.code})`);
  }
}

main().then(
  () => console.log('PASS: the OpenAI SDK works against inferd'),
  (e) => {
    console.error(`FAIL: ${e && e.stack ? e.stack : e}`);
    process.exitCode = 1;
  },
);
