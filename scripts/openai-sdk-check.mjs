// The official openai SDK against EPIC's OpenAI-compatible API: models, chat (whole, streamed with n = 2
// and usage, logprobs), completions with legacy logprobs, guided choice, the Responses API (whole,
// streamed, a forced function call), and the SDK's error classes for 400 and 404.
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
// system_fingerprint names the numerics: with a seed, the same request gives the same answer under it.
assert.match(chat.system_fingerprint, /^fp_[0-9a-f]{12}$/);
const again = await client.chat.completions.create({
  model, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 5, seed: 3, logprobs: true, top_logprobs: 2 });
assert.equal(again.system_fingerprint, chat.system_fingerprint);
assert.deepEqual(again.choices[0].message, chat.choices[0].message);
console.log('system_fingerprint', chat.system_fingerprint, 'reproduced');

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

const choice = await client.chat.completions.create({
  model, messages: [{ role: 'user', content: 'Rain?' }], guided_choice: ['yes', 'no'] });
assert.ok(['yes', 'no'].includes(choice.choices[0].message.content), 'a guided choice');
console.log('guided choice', choice.choices[0].message.content);

const response = await client.responses.create({ model, instructions: 'Be brief.', input: 'Hi', max_output_tokens: 6 });
assert.equal(response.object, 'response');
assert.equal(response.usage.output_tokens, 6);
console.log('response', response.status, JSON.stringify(response.output_text));

const events = await client.responses.create({ model, input: 'Hi', max_output_tokens: 6, stream: true });
let streamed = '', last = null;
for await (const event of events) {
  if (event.type === 'response.output_text.delta') streamed += event.delta;
  last = event;
}
assert.equal(last.type, 'response.incomplete');
assert.equal(streamed, last.response.output.at(-1).content[0].text);
console.log('response stream', JSON.stringify(streamed));

const called = await client.responses.create({
  model, input: 'Weather in Paris?', max_output_tokens: 200,
  tools: [{ type: 'function', name: 'get_weather', strict: true, parameters: {
    type: 'object', properties: { unit: { enum: ['c', 'f'] } }, required: ['unit'], additionalProperties: false } }],
  tool_choice: { type: 'function', name: 'get_weather' } });
const call = called.output.find(o => o.type === 'function_call');
assert.ok(call && ['c', 'f'].includes(JSON.parse(call.arguments).unit), 'a forced function call');
console.log('function call', call.name, call.arguments);

await assert.rejects(client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hi' }], temperature: -2 }),
  e => e instanceof OpenAI.BadRequestError && /temperature/.test(e.message));
await assert.rejects(client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'Hi' }] }),
  e => e instanceof OpenAI.NotFoundError);
console.log('errors: 400 BadRequestError, 404 NotFoundError');
console.log('ok');
