'use strict';
// What the tests that stop a program in a child node share: the runner
// that starts it, sends it a signal once it says it is ready and reads
// how it ended; and the Vercel AI SDK agent those of ai_sdk_signals,
// ai_sdk_vercel_otel_signals and ai_sdk_kill run, stopped in the middle
// of a streamed completion.
const { spawn } = require('child_process');
const path = require('path');

const PACKAGE = path.resolve(__dirname, '..');
const OTEL = path.join(PACKAGE, 'otel.js');

/** The line the agent prints once its stream's first chunk is read. */
const STREAMING = '{"streaming":true}\n';

/**
 * Runs `program` (source) in a child node in the package's directory;
 * sends it `signal` once its stdout holds `at`, SIGKILL after `limitMs`.
 * Resolves with its exit status, signal, stdout and stderr.
 */
function runNode(program, { signal = null, at = STREAMING, limitMs = 120000 } = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', program], { cwd: PACKAGE });
    let stdout = '';
    let stderr = '';
    let sent = false;
    let signalledAt = null;
    const killer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.stdout.on('data', (d) => {
      stdout += d;
      // Once: a child that prints after `at` (hooks_exporter's two-tracer
      // test's 'flush') was sent SIGTERM again at each line, and the
      // second one, its hooks' listeners gone, killed it in the middle of
      // their flush (no spans arrived, when the parent read 'flush' before
      // the child had shut down: under load).
      if (signal && !sent && stdout.includes(at)) {
        sent = true;
        signalledAt = Date.now();
        child.kill(signal);
      }
    });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('exit', (status, sig) => {
      clearTimeout(killer);
      // afterSignalMs: from the signal to the exit, the child's start
      // (seconds of node and SDK loading on a loaded machine) left out.
      resolve({ status, signal: sig, stdout, stderr, afterSignalMs: signalledAt === null ? null : Date.now() - signalledAt });
    });
  });
}

/**
 * The agent's program (source): spanguard's bridge classes and `options`
 * (its Tracer options: the sink and spool under `dir`, then `options`,
 * source), then `setup` (source: the SDK set up and started), then, in
 * the span `agent.turn`, a generateText of `prompt` (extra arguments
 * `generateArgs`, source) and a streamText whose mock model sends a chunk
 * every 100 ms for a minute; once the first chunk is read it prints
 * STREAMING and runs `atFirstChunk` (source). The mock model reports
 * `inputTokens`; its doGenerate is `doGenerate` (source; by default a
 * text answer).
 */
function aiAgent({ dir, options, setup, prompt, inputTokens, doGenerate, generateArgs = '', atFirstChunk = '' }) {
  return `
    const { trace } = require('@opentelemetry/api');
    const { generateText, streamText, simulateReadableStream } = require('ai');
    const { MockLanguageModelV3 } = require('ai/test');
    const { SpanguardSpanProcessor, SpanguardSpanExporter } = require(${JSON.stringify(OTEL)});
    const dir = ${JSON.stringify(dir)};
    const options = { fromEnv: false, sinkDir: dir + '/sink', spoolDir: dir + '/spool', ${options} };
    ${setup}
    const usage = { inputTokens: { total: ${inputTokens} }, outputTokens: { total: 2 } };
    const model = new MockLanguageModelV3({
      doGenerate: ${doGenerate || `async () => ({ content: [{ type: 'text', text: 'olá' }],
        finishReason: { unified: 'stop', raw: 'stop' }, usage, warnings: [] })`},
      doStream: async () => ({
        stream: simulateReadableStream({ chunkDelayInMs: 100, chunks: [
          { type: 'stream-start', warnings: [] }, { type: 'text-start', id: 't' },
          ...Array.from({ length: 600 }, () => ({ type: 'text-delta', id: 't', delta: 'é' })),
          { type: 'text-end', id: 't' }, { type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage },
        ] }),
      }),
    });
    const PROMPT = ${JSON.stringify(prompt)};
    const telemetry = { isEnabled: true, recordInputs: true, recordOutputs: true };
    trace.getTracer('agent').startActiveSpan('agent.turn', async (turn) => {
      await generateText({ model, prompt: PROMPT, ${generateArgs} experimental_telemetry: telemetry });
      const streamed = streamText({ model, prompt: PROMPT, experimental_telemetry: telemetry });
      let first = true;
      for await (const delta of streamed.textStream) {
        if (first) {
          first = false;
          console.log(JSON.stringify({ streaming: true }));
          ${atFirstChunk}
        }
      }
      turn.end();
    });
  `;
}

module.exports = { runNode, aiAgent, PACKAGE, OTEL, STREAMING };
