// OpenAI's official Node.js client against BioForge's /v1/completions: one plain and one streamed completions.create
// with the same seed, a batch of two prompts, and one refused request. Prints one JSON line for the xunit test to check.
// Usage: node completions.mjs BASE_URL MODEL SEED
import OpenAI from 'openai';

const [baseURL, model, seed] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: 'unused', maxRetries: 0 });
const settings = { model, prompt: '', n: 3, max_tokens: 60, temperature: 1, seed: Number(seed) };

const plain = await client.completions.create({ ...settings, logprobs: 0 });

const stream = await client.completions.create({ ...settings, stream: true, stream_options: { include_usage: true } });
const texts = ['', '', ''];
const finish = [null, null, null];
let usage = null;
let chunks = 0;
for await (const chunk of stream) {
  chunks++;
  for (const choice of chunk.choices) {
    texts[choice.index] += choice.text;
    if (choice.finish_reason) finish[choice.index] = choice.finish_reason;
  }
  if (chunk.usage) usage = chunk.usage;
}

// A batch of prompts as the client types it (string[]): choice p·n + i is sample i of prompt p.
const batch = await client.completions.create({ ...settings, prompt: ['', 'c1ccccc1'], n: 2 });

let refused = null;
try {
  await client.completions.create({ ...settings, n: 0 });
} catch (e) {
  refused = { status: e.status, message: e.message, param: e.param ?? e.error?.param ?? null };
}

console.log(JSON.stringify({ plain, streamed: { texts, finish, usage, chunks }, batch, refused }));
