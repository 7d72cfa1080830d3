#!/usr/bin/env node
'use strict';
// The spanguard command (`npx spanguard show`, tail, spool, replay): the
// binary `make build` builds, shipped stripped beside the addon in
// prebuilds/. This script only starts it and stands in for it: the same
// stdin, stdout and stderr, its exit status, and death by the signal that
// ended it, so a shell or a supervisor sees the command itself.
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const platform = `${process.platform}-${process.arch}`;
const command = path.join(__dirname, '..', 'prebuilds', platform, 'spanguard');
if (!fs.existsSync(command)) {
  process.stderr.write(`spanguard: this package ships the spanguard command for linux-x64 and linux-arm64 only, not ${platform}: `
    + 'build spanguard from source (make install) on this platform.\n');
  process.exit(1);
}

// Ctrl-C reaches the whole foreground group, so the command has it too:
// this process waits for it (`tail` prints what it holds and exits 0)
// rather than dying first. A signal sent to this process alone (a
// supervisor's SIGTERM, kill) is passed on. The listeners go in before the
// command starts: a signal between the two would otherwise end this
// process by its default action and leave the command running, holding
// the caller's stdout and stderr open. One that comes before the spawn
// below is handled once this script has run, when `child` is set.
const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];
let child;
const forward = (signal) => { child.kill(signal); };
for (const signal of FORWARDED) process.on(signal, forward);

child = spawn(command, process.argv.slice(2), { stdio: 'inherit' });

child.on('error', (e) => {
  // The binary needs glibc: on musl (Alpine) it cannot be started.
  process.stderr.write(`spanguard: cannot run ${command}: ${e.message}\n`);
  process.exit(1);
});

child.on('exit', (code, signal) => {
  for (const s of FORWARDED) process.removeListener(s, forward);
  if (signal === null) {
    process.exit(code);
  }
  // Die of the same signal, its default action back (the listeners
  // removed; Node starts with SIGPIPE ignored, so give it one and take it
  // away). Should it not end this process, the shell's number for it.
  try {
    process.on(signal, forward);
    process.removeListener(signal, forward);
  } catch {
    // SIGKILL takes no listener, and has no other action to restore.
  }
  process.kill(process.pid, signal);
  process.exit(128 + os.constants.signals[signal]);
});
