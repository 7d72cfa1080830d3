'use strict';
// The suite keeps out of the user's own spanguard state (make test-node
// loads test-support/own_state.js into every test process). A tracer a
// test makes without naming a spool or sink took the user's
// ~/.local/state/spanguard: its start sent the user's waiting crash dumps
// into the test's sink, and the dump of an agent killed by anything else
// on the machine arrived in a test as spans it never made (seen in the
// Python suite, which has the same rule: test_suite_isolation.py).
const { test } = require('node:test');
const assert = require('node:assert');
const os = require('os');
const path = require('path');
const spanguard = require('..');

test('a tracer that names no directory keeps out of the user\'s state', async () => {
  const users = path.join(os.homedir(), '.local', 'state');
  const tracer = new spanguard.Tracer({ fromEnv: false, serviceName: 'isolation', installSignalHandlers: false });
  const sink = tracer.sinkPath();
  await tracer.close();
  assert.ok(path.isAbsolute(sink), sink);
  assert.ok(!sink.startsWith(users + path.sep), `a test's default sink is the user's: ${sink}`);
});
