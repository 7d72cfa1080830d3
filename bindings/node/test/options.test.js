'use strict';
// A tracer option of the wrong type is an error that names the option and
// what it takes (it was N-API's bare "A number was expected", or a value
// taken wrongly: -1 as 4294967295, 'grpc' as http/protobuf), from the
// Tracer and from the bridge that makes one.
const { test } = require('node:test');
const assert = require('node:assert');

const spanguard = require('..');
const { SpanguardSpanProcessor } = require('../otel');

/** `make()` throws a SpanguardError (INVALID_CONFIG) whose message says `...parts`. */
function rejects(make, ...parts) {
  assert.throws(make, (e) => {
    assert.ok(e instanceof spanguard.SpanguardError, `${e}`);
    // Its name, as an uncaught one prints it ("SpanguardError: spanguard: ..."; it said "Error:").
    assert.strictEqual(e.name, 'SpanguardError');
    assert.ok(String(e).startsWith('SpanguardError: spanguard: '), String(e));
    assert.strictEqual(e.code, spanguard.RESULT.INVALID_CONFIG);
    for (const part of parts) assert.ok(e.message.includes(part), `"${e.message}" does not say "${part}"`);
    return true;
  });
}

const base = { fromEnv: false, endpoint: 'discard:' };

test('a number option of another type names the option', () => {
  rejects(() => new spanguard.Tracer({ ...base, scheduleDelayMs: '500' }),
    'option scheduleDelayMs', 'a whole number', 'the string "500"');
  rejects(() => new spanguard.Tracer({ ...base, attributeCountLimit: -1 }), 'option attributeCountLimit', 'number -1');
  rejects(() => new spanguard.Tracer({ ...base, maxQueueSize: 2.5 }), 'option maxQueueSize', 'number 2.5');
  rejects(() => new spanguard.Tracer({ ...base, payloadPoolMib: 64n }), 'option payloadPoolMib', 'bigint');
  rejects(() => new SpanguardSpanProcessor({ ...base, eventCountLimit: true }), 'option eventCountLimit', 'boolean true');
});

test('a string option of another type names the option', () => {
  rejects(() => new spanguard.Tracer({ ...base, serviceName: 42 }), 'option serviceName', 'a string', 'number 42');
  rejects(() => new SpanguardSpanProcessor({ ...base, spoolDir: ['a'] }), 'option spoolDir', 'an array');
  rejects(() => new spanguard.Tracer({ ...base, protocol: 'grpc' }),
    'option protocol', "one of 'http/protobuf', 'http/json'", 'the string "grpc"');
  rejects(() => new spanguard.Tracer({ ...base, compression: true }), 'option compression', "'none', 'gzip'");
});

test('a boolean option of another type names the option', () => {
  rejects(() => new spanguard.Tracer({ ...base, flightRecorder: 'yes' }), 'option flightRecorder', 'true or false');
  rejects(() => new SpanguardSpanProcessor({ ...base, installSignalHandlers: 1 }),
    'option installSignalHandlers', 'true or false', 'number 1');
  rejects(() => new spanguard.Tracer({ endpoint: 'discard:', fromEnv: 'no' }), 'option fromEnv', 'true or false');
});

test('an object option of another type names the option, or its key', () => {
  rejects(() => new spanguard.Tracer({ ...base, headers: 7 }), 'option headers', 'an object', 'number 7');
  rejects(() => new spanguard.Tracer({ ...base, resourceAttributes: { team: { name: 'core' } } }),
    'option resourceAttributes.team', 'an object');
  rejects(() => new SpanguardSpanProcessor('agent'), 'option options', 'an object', 'the string "agent"');
});

test('options of the right type still make a tracer; undefined and null mean unset', async () => {
  const tracer = new spanguard.Tracer({
    ...base, serviceName: 'typed', scheduleDelayMs: 500, protocol: 'http/json', compression: 'gzip',
    flightRecorder: false, headers: { 'x-team': 'core', retries: 3 }, resourceAttributes: 'team=core',
    attributeCountLimit: undefined, logLevel: null,
  });
  await tracer.close();
  assert.throws(() => new spanguard.Tracer({ ...base, nope: 1 }), TypeError);
});
