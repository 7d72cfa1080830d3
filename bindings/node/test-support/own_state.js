'use strict';
// Loaded by `make test-node` into every test process (node --test
// --require): a state directory of the process's own (XDG_STATE_HOME:
// the spool, the default sink, outcome records), inherited by the
// programs a test starts. In the user's, a tracer a test made without
// naming a spool sent the user's waiting crash dumps into the test's
// sink, and a dump of anything killed on the machine meanwhile (another
// test file's child, running beside it) arrived in a test as spans it
// never made. Removed when the test process exits.
const fs = require('fs');
const os = require('os');
const path = require('path');

const state = fs.mkdtempSync(path.join(os.tmpdir(), 'spanguard-node-test-state-'));
process.env.XDG_STATE_HOME = state;
process.on('exit', () => fs.rmSync(state, { recursive: true, force: true }));
