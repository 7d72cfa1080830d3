'use strict';
// A loopback stand-in for the OpenAI API (the `openai` client's baseURL is
// pointed at it), for the tests of the OpenAI instrumentations, and the
// texts they send: a 60 KB prompt and a completion, both far from ASCII
// (accents, CJK, emoji outside the BMP, right-to-left script), the
// completion streamed in pieces that cut it mid-word. As
// bindings/python/tests/test_genai_content.py fakes it for Python.
const assert = require('node:assert');
const crypto = require('crypto');
const http = require('http');

// Code point ranges to draw from: Latin-1 letters, Greek, Cyrillic, Arabic,
// Devanagari, CJK, Hangul, emoji (4 UTF-8 bytes, a surrogate pair in JS).
const RANGES = [[0xc0, 0xff], [0x391, 0x3c9], [0x410, 0x44f], [0x627, 0x64a], [0x905, 0x939], [0x4e00, 0x9fff],
  [0xac00, 0xd7a3], [0x1f300, 0x1f5ff]];

/** Random text of at least `bytes` UTF-8 bytes (random, so a cut, moved or repeated piece cannot pass for it). */
function nonAscii(bytes, seedText) {
  const out = [seedText];
  let size = Buffer.byteLength(seedText);
  const rnd = crypto.randomBytes(4 * Math.ceil(bytes / 2));
  for (let i = 0; size < bytes; i += 4) {
    const [lo, hi] = RANGES[rnd[i] % RANGES.length];
    const cp = lo + (rnd.readUInt16LE(i + 1) % (hi - lo + 1));
    const ch = rnd[i + 3] % 7 === 0 ? ' ' : String.fromCodePoint(cp);
    out.push(ch);
    size += Buffer.byteLength(ch);
  }
  return out.join('');
}

const PROMPT = nonAscii(60 * 1024, 'Résume ce contrat — 契約の要約をお願いします 📄: ');
const COMPLETION = nonAscii(3 * 1024, 'Voilà 🙂 — 要約: ');
const MODEL = 'gpt-4o-2024-08-06';

/**
 * The completion as stream chunks of 97 code points each (the API sends
 * whole code points), which cut it mid-word.
 */
function pieces(text, size = 97) {
  const cps = Array.from(text);
  const out = [];
  for (let i = 0; i < cps.length; i += size) out.push(cps.slice(i, i + size).join(''));
  return out;
}

const USAGE = { prompt_tokens: 21000, completion_tokens: 900, total_tokens: 21900 };

/**
 * Starts the server, answering `completion` with `usage` (COMPLETION, the
 * usage of a 60 KB prompt unless said); resolves to { url, requests, close() }.
 */
async function fakeOpenAI({ completion = COMPLETION, usage = USAGE } = {}) {
  const requests = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
      requests.push({ url: req.url, body });
      const base = { id: 'chatcmpl-loopback-1', created: 1764500000, model: MODEL };
      if (!body.stream) {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({
          ...base,
          object: 'chat.completion',
          choices: [{ index: 0, message: { role: 'assistant', content: completion }, finish_reason: 'stop' }],
          usage,
        }));
        return;
      }
      res.setHeader('content-type', 'text/event-stream');
      const send = (chunk) => res.write(`data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', ...chunk })}\n\n`);
      send({ choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] });
      for (const p of pieces(completion)) send({ choices: [{ index: 0, delta: { content: p }, finish_reason: null }] });
      send({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
      if (body.stream_options && body.stream_options.include_usage) {
        send({ choices: [], usage });
      }
      res.end('data: [DONE]\n\n');
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}/v1`,
    requests,
    close: () => new Promise((r) => server.close(r)),
  };
}

/**
 * The fake (`answer`: fakeOpenAI's options), closed after the test `t`, and
 * an `openai` client pointed at it. The module is loaded here, once the
 * test has registered the instrumentation that patches it.
 */
async function openAIClient(t, answer) {
  const { default: OpenAI } = require('openai');
  const fake = await fakeOpenAI(answer);
  t.after(() => fake.close());
  return { fake, client: new OpenAI({ apiKey: 'sk-loopback', baseURL: fake.url, maxRetries: 0 }) };
}

/**
 * One agent turn with a streamed chat completion of PROMPT, inside the span
 * `agent.turn` of `provider`; resolves to the text the stream gave.
 */
async function streamedTurn(provider, client) {
  return provider.getTracer('agent').startActiveSpan('agent.turn', async (turn) => {
    try {
      const stream = await client.chat.completions.create({
        model: 'gpt-4o',
        messages: [{ role: 'system', content: 'Réponds brièvement.' }, { role: 'user', content: PROMPT }],
        stream: true,
        stream_options: { include_usage: true },
      });
      let text = '';
      for await (const chunk of stream) text += (chunk.choices[0] && chunk.choices[0].delta.content) || '';
      return text;
    } finally {
      turn.end();
    }
  });
}

/**
 * For the test `t`, the streamed turn against the fake through `provider`
 * (its instrumentation registered, `memory` its in-memory exporter): the
 * text checked to be COMPLETION, the SDK flushed. Resolves to { fake,
 * sdkSpans, turn, chat }: the SDK's spans, the agent's and the
 * instrumentation's (checked to be there).
 */
async function streamedChat(t, provider, memory) {
  const { fake, client } = await openAIClient(t);
  assert.strictEqual(await streamedTurn(provider, client), COMPLETION);
  await provider.forceFlush();
  const sdkSpans = memory.getFinishedSpans();
  const turn = sdkSpans.find((s) => s.name === 'agent.turn');
  const chat = sdkSpans.find((s) => s.name !== 'agent.turn');
  assert.ok(chat, `the instrumentation made a span: ${sdkSpans.map((s) => s.name)}`);
  return { fake, sdkSpans, turn, chat };
}

/** Length, UTF-8 size and digest: a failure names what arrived instead of printing 60 KB. */
const fingerprint = (v) => (typeof v === 'string'
  ? [v.length, Buffer.byteLength(v), crypto.createHash('sha256').update(v).digest('hex')] : [typeof v, v]);

module.exports = { fakeOpenAI, openAIClient, streamedTurn, streamedChat, fingerprint, PROMPT, COMPLETION, MODEL };
