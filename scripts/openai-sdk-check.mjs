// The official openai SDK against EPIC's OpenAI-compatible API: models, chat (whole, streamed with n = 2
// and usage, logprobs), completions with legacy logprobs, and the SDK's error classes for 400 and 404.
// Run through scripts/openai-sdk-check.sh, which installs the SDK.
import OpenAI from 'openai';
import assert from 'node:assert/strict';

const client = new OpenAI({ baseURL: process.argv[2] ?? 'http://127.0.0.1:8000/v1', apiKey: 'unused' });
const model = (await client.models.list()).data[0].id;
console.log('model', model);

const chat = await client.chat.completions.create({
  model, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 5, seed: 3, logprobs: true, top_logprobs: 2 });
assert.equal(chat.object, 'chat.completion');
assert.equal(chat.choices[0].logprobs.content.length, chat.usage.completion_tokens);
assert.equal(chat.choices[0].logprobs.content[0].top_logprobs.length, 2);
console.log('chat', JSON.stringify(chat.choices[0].message), chat.choices[0].finish_reason);

const stream = await client.chat.completions.create({
  model, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 5, n: 2, stream: true,
  stream_options: { include_usage: true } });
const parts = ['', ''];
let usage = null;
for await (const chunk of stream) {
  for (const c of chunk.choices) parts[c.index] += (c.delta.content ?? '') + (c.delta.reasoning_content ?? '');
  if (chunk.usage) usage = chunk.usage;
}
assert.ok(usage && usage.completion_tokens > 0, 'a usage chunk');
console.log('stream', JSON.stringify(parts), 'completion tokens', usage.completion_tokens);

const completion = await client.completions.create({ model, prompt: 'The sky is', max_tokens: 4, logprobs: 1 });
assert.equal(completion.choices[0].logprobs.tokens.length, completion.usage.completion_tokens);
console.log('completion', JSON.stringify(completion.choices[0].text));

await assert.rejects(client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hi' }], temperature: -2 }),
  e => e instanceof OpenAI.BadRequestError && /temperature/.test(e.message));
await assert.rejects(client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'Hi' }] }),
  e => e instanceof OpenAI.NotFoundError);
console.log('errors: 400 BadRequestError, 404 NotFoundError');
console.log('ok');
