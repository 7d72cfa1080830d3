#!/usr/bin/env python3
"""Runs every program in the given Markdown files the way the file says,
and checks that its spans arrived where the program says they went.

A program is a fenced block marked by the HTML comment before it:

    <!-- example: app.c spans: agent.session llm.chat -->
    ```c
    ...
    ```

(a name with a space in quotes: `spans: "HTTP POST" tool.run`), optionally
followed by `events: NAMES`: span events that must arrive, each name on
some span (a prompt an instrumentation sends as a log event, which the
example exists to show; its spans alone arrived when a newer
@opentelemetry/api-logs left the instrumentation a logger of its own copy
that no provider backs, and the prompt went nowhere without a word),
then optionally `attributes: KEYS`: span attributes that must arrive, each
key on some span (the prompt and completion an example records), and
optionally ending in `traces: N`: the spans must then make exactly N traces, each
span's parent one of the spans that arrived (a client and a server in one
trace, as context propagation promises);
and the commands that build and run it are a ```sh block marked

    <!-- run: app.c -->

Each example runs in a fresh directory outside the repository holding only
its file (and the npm tarballs and Python wheels of build/dist), with no SPANGUARD_* or
OTEL_* variable, XDG_STATE_HOME pointing into that directory (so the
default sink lands there), and two variables the README's commands use:
PREFIX (where `make install` put spanguard) and SPANGUARD_SRC (a checkout:
here a copy of its language bindings alone, so that headers and library
can only come from PREFIX, as on a user's machine). The program must print
what its tracer's counters say happened to the spans, once:
`N spans written to PATH (L lost)` (`1 span written ...` for one, as
`N spans sent ...` below); the lines of PATH are decoded with
opentelemetry-proto (an independent decoder), the span names must be
exactly those the marker lists, each once, N how many PATH holds and L 0.

The default sink is not empty then: it holds a trace of an earlier run
(`earlier.run`), as a newcomer's does once the examples before have run
(every one without SPANGUARD_SINK_DIR writes there). A command of the
example that draws "the trace it recorded" must draw that one alone,
never the earlier run's: `spanguard show` drew every trace in the sink,
the new one at the bottom of pages of others.

Each example then runs a second time with OTEL_EXPORTER_OTLP_ENDPOINT
naming a loopback OTLP/HTTP receiver (tests/receiver), as a user's
deployment sets it, in the directory the first run set up (its commands
that create a virtualenv, install a package or make a Go module are
left out: what this run and the third check is what the program says and
sends, and the install was checked by the first), with a state directory
of its own: there is no local sink then, and the program must
print `N spans sent to URL (S waiting in the spool, L lost)` (the URL
the tracer sends to, ENDPOINT/v1/traces, as it says it: the variable's
text alone hid a doubled or missing path) instead, N being how many spans the receiver got, the promised
ones, S and L 0. Its commands that read the local sink (`spanguard
show`) are left out of that run: there is none.

And a third time, as the second, with OTEL_EXPORTER_OTLP_ENDPOINT
naming a loopback port nobody listens on (a backend that is down): the
program must still exit 0, and say that it sent none, every span
waiting in the spool or lost (`0 spans sent to URL (S waiting in
the spool, L lost)`, S + L the promised spans), never that it sent them:
a newcomer trusts that line.

An example whose program cannot reach its tracer's counters (zero-code
instrumentation: the SDK makes the exporter; a Celery task: the tracer
that records it is the worker's pool child's) is marked `uncounted` after
its span names; it prints `the spans are in PATH` with the local sink,
PATH a sink file or a directory whose .jsonl files hold them (one file a
process: a pool's spawned workers write their own), and in no run may it
say that spans were sent or went somewhere.

Every fenced block in a program language must be such an example: a block
that is not one fails the run, so a README cannot show a program that does
not work.

A TypeScript example (FILE ending in .ts, .mts or .cts) is what a user
of our .d.ts compiles: its run block must install `typescript` and
`@types/node` at the versions the Makefile pins (--typescript: the
node_modules the Makefile installed them in), compile it with `tsc` and a
tsconfig.json of its own, and once its first run passed the pinned tsc
type-checks it again with --strict forced over that tsconfig: a README
whose tsconfig loosened strict, or a change to our .d.ts that a strict
program no longer compiles against, fails here.

A shell block that installs a package (`pip install`, `npm install`) may
name only `make` targets that exist and that install nothing on the system
(`make -n -B` of the target runs no apt-get): `make dist` also cross-builds
arm64 and apt-installs 43 packages as root, where a Python user needs
`make dist-python` and a Node user `make dist-node`.

run_examples.py --prefix DIR [--dist DIR] [--typescript DIR] FILE.md...
"""

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "receiver"))
from receiver_client import OtlpReceiverProcess  # noqa: E402
PROGRAM_LANGUAGES = {"c", "cpp", "c++", "go", "js", "javascript", "mjs", "cjs", "ts", "typescript", "python", "py"}
EXAMPLE = re.compile(r"<!--\s*example:\s*(\S+)\s+spans:\s*([^>]*?)(?:\s+events:\s*([^>]*?))?"
                     r"(?:\s+attributes:\s*([^>]*?))?(?:\s+traces:\s*(\d+))?(\s+uncounted)?\s*-->")
RUN = re.compile(r"<!--\s*run:\s*(\S+)\s*-->")
FENCE = re.compile(r"^(```+|~~~+)\s*([^\s`]*)")
WHERE = re.compile(r"the spans are in (\S+)")
WRITTEN = re.compile(r"(\d+) spans? written to (\S+) \((\d+) lost\)")
SENT = re.compile(r"(\d+) spans? sent to (\S+) \((\d+) waiting in the spool, (\d+) lost\)")
# What an example must never print when nothing was sent.
CLAIMS_SENT = re.compile(r"spans? (sent|went) to", re.IGNORECASE)
# "1 spans written": the line a newcomer reads first, saying one span.
ONE_SPANS = re.compile(r"(?<![\d.])1 spans (written|sent) to")
# A command that reads the local sink (`spanguard show`): with an endpoint
# there is none, and it says so and exits 1, as it should.
READS_SINK = re.compile(r"^\s*(\S*/)?(npx\s+)?spanguard\s+(show|tail)\b")
# A command that sets the example up (a virtualenv, a package installed, a
# Go module made, its requirements fetched): the first run does it in a
# fresh directory; the runs with an endpoint, in that same directory, only
# run the program.
SETS_UP = re.compile(r"^\s*(python3? -m venv\b|(\S*/)?pip3? install\b|npm (install|ci)\b|go (mod|get)\b)")
INSTALLS = re.compile(r"\b(pip|npm) install\b")
MAKE_TARGET = re.compile(r"\bmake\s+([A-Za-z0-9_.-]+)")
TIMEOUT_S = 300
TYPESCRIPT_FILE = re.compile(r"\.[mc]?ts$")
# The packages a TypeScript example installs at the Makefile's versions.
TYPESCRIPT_PACKAGES = ("typescript", "@types/node")
# The trace of an earlier run put in the default sink before the first run.
EARLIER_SPAN = "earlier.run"


class Block:
    def __init__(self, source, line, info, text, marker):
        self.source, self.line, self.info, self.text, self.marker = source, line, info, text, marker


def traces_url(endpoint):
    """The URL a tracer sends traces to for OTEL_EXPORTER_OTLP_ENDPOINT
    `endpoint`, a base URL: the signal's path after it (the OTLP
    exporter specification)."""
    return endpoint.rstrip("/") + "/v1/traces"


def blocks(path: Path):
    """Fenced blocks with the marker comment right before each (or None)."""
    lines = path.read_text().splitlines()
    out, i, last_comment = [], 0, None
    while i < len(lines):
        line = lines[i]
        m = FENCE.match(line.strip())
        if m:
            fence, info, start = m.group(1), m.group(2).lower(), i
            body = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                body.append(lines[i])
                i += 1
            out.append(Block(path, start + 1, info, "\n".join(body) + "\n", last_comment))
            last_comment = None
        elif line.strip().startswith("<!--"):
            last_comment = line.strip()
        elif line.strip():
            last_comment = None
        i += 1
    return out


def install_target_problem(target: str):
    """Why `make TARGET` does not belong in a package's install commands,
    or None: no such target, or one that installs system packages."""
    dry = subprocess.run(["make", "-C", str(REPO), "-n", "-B", "--no-print-directory", target],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if dry.returncode != 0:
        return f"`make {target}` is no target of the Makefile ({dry.stderr.strip()})"
    if re.search(r"\bapt-get\b", dry.stdout):
        return (f"`make {target}` installs system packages with apt-get (as root): name the target "
                "that builds only this package")
    return None


def collect(paths):
    examples, runs, errors = {}, {}, []
    for path in paths:
        for b in blocks(path):
            where = f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}:{b.line}"
            ex = EXAMPLE.match(b.marker or "")
            run = RUN.match(b.marker or "")
            if b.info in ("sh", "bash", "shell") and INSTALLS.search(b.text):
                for target in MAKE_TARGET.findall(b.text):
                    problem = install_target_problem(target)
                    if problem:
                        errors.append(f"{where}: {problem}")
            if ex:
                name = ex.group(1)
                if name in examples:
                    errors.append(f"{where}: a second example named {name}")
                traces = int(ex.group(5)) if ex.group(5) else None
                events = shlex.split(ex.group(3)) if ex.group(3) else []
                attributes = shlex.split(ex.group(4)) if ex.group(4) else []
                examples[name] = (where, b.text,
                                  (shlex.split(ex.group(2)), traces, bool(ex.group(6)), events, attributes))
            elif run:
                if b.info not in ("sh", "bash", "shell"):
                    errors.append(f"{where}: a run block must be ```sh")
                runs[run.group(1)] = b.text
            elif b.info in PROGRAM_LANGUAGES:
                errors.append(f"{where}: a ```{b.info} block that is not marked as an example: make it a "
                              "complete program with `<!-- example: FILE spans: NAMES -->` before it and a "
                              "`<!-- run: FILE -->` ```sh block, or show it another way")
    for name, (where, _, _) in examples.items():
        if name not in runs:
            errors.append(f"{where}: example {name} has no `<!-- run: {name} -->` block")
    for name in runs:
        if name not in examples:
            errors.append(f"a run block for {name}, which is no example")
    return examples, runs, errors


def pinned_versions(typescript: Path):
    """The version of each of TYPESCRIPT_PACKAGES installed in `typescript`
    (a node_modules directory)."""
    return {name: json.loads((typescript / name / "package.json").read_text())["version"]
            for name in TYPESCRIPT_PACKAGES}


def typescript_problem(name: str, commands: str, pinned):
    """Why the run block of TypeScript example `name` does not build it as
    a user of the pinned compiler would, or None."""
    for package, version in pinned.items():
        if not re.search(rf"(^|\s){re.escape(package)}@{re.escape(version)}(\s|$)", commands):
            return f"{name}: its run block must `npm install {package}@{version}` (the version the Makefile pins)"
    if not re.search(r"\btsc\b", commands):
        return f"{name}: its run block must compile it with tsc"
    return None


def strict_typecheck(name: str, workdir: Path, typescript: Path):
    """Type-checks the example in `workdir` (set up by its first run) with the
    pinned tsc and --strict over its tsconfig.json; why it fails, or None."""
    if not (workdir / "tsconfig.json").is_file():
        return f"{name}: its run block made no tsconfig.json"
    check = subprocess.run([str(typescript / ".bin" / "tsc"), "-p", str(workdir), "--strict", "--noEmit"],
                           cwd=workdir, capture_output=True, text=True, timeout=TIMEOUT_S,
                           stdin=subprocess.DEVNULL)
    if check.returncode != 0:
        return (f"{name}: tsc --strict (the Makefile's) finds errors\n--- stdout\n{check.stdout}"
                f"--- stderr\n{check.stderr}")
    print(f"ok {name}: tsc --strict passes")
    return None


def bindings_copy() -> Path:
    """A checkout as far as the README's commands need one: bindings/go and
    bindings/python, without the tree's include/ and build/."""
    src = Path(tempfile.mkdtemp(prefix="spanguard-readme-src-"))
    skip = shutil.ignore_patterns("node_modules", "__pycache__", "prebuilds")
    for part in ("go", "python"):
        shutil.copytree(REPO / "bindings" / part, src / "bindings" / part, ignore=skip)
    return src


def clean_env(state: Path, prefix: Path, src: Path, endpoint: str | None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPANGUARD_", "OTEL_"))}
    env.update(XDG_STATE_HOME=str(state), PREFIX=str(prefix), SPANGUARD_SRC=str(src))
    if endpoint is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    env.pop("PKG_CONFIG_PATH", None)
    env.pop("LD_LIBRARY_PATH", None)
    return env


def plant_earlier_run(state: Path):
    """A sink file of an earlier program in the default sink under `state`
    (as the library makes it: the directories private), its one span
    ended an hour ago."""
    sink = state / "spanguard" / "spans"
    sink.mkdir(mode=0o700, parents=True, exist_ok=True)
    (state / "spanguard").chmod(0o700)
    end = time.time_ns() - 3600 * 10**9
    line = ('{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":'
            '"earlier-run"}}]},"scopeSpans":[{"scope":{"name":"earlier"},"spans":[{"traceId":'
            '"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"%s","kind":1,'
            '"startTimeUnixNano":"%d","endTimeUnixNano":"%d"}]}]}]}\n' % (EARLIER_SPAN, end - 10**9, end))
    path = sink / "earlier-run-1.jsonl"
    path.write_text(line)
    path.chmod(0o600)


def sink_spans(sink: Path):
    """The spans in a sink file, or in every sink file of a directory,
    decoded (opentelemetry-proto's Span)."""
    for path in sorted(sink.glob("*.jsonl")) if sink.is_dir() else [sink]:
        for line in path.read_text().splitlines():
            if line.strip():
                request = json_format.Parse(line, ExportTraceServiceRequest())
                for rs in request.resource_spans:
                    for ss in rs.scope_spans:
                        yield from ss.spans


def arrived(sink: Path):
    """The spans in a sink file (or directory: sink_spans), as (name, trace id, span id, parent span id)."""
    return [(s.name, s.trace_id, s.span_id, s.parent_span_id) for s in sink_spans(sink)]


def events_in(sink: Path):
    """The names of the span events in a sink file (or directory: sink_spans), each as often as it is there."""
    return [e.name for s in sink_spans(sink) for e in s.events]


def attribute_keys_in(sink: Path):
    """The keys of the span attributes in a sink file (or directory: sink_spans), each as often as it is there."""
    return [a.key for s in sink_spans(sink) for a in s.attributes]


def received(rx: OtlpReceiverProcess, expected: int):
    """The spans the receiver holds, as arrived() gives a sink's, once at
    least `expected` came or a few seconds passed (a program's exit may
    come before its last request is recorded)."""
    try:
        rx.wait_for_spans(expected, timeout_s=5)
    except TimeoutError:
        pass
    return [(s["name"], s["trace_id"], s["span_id"], s["parent_span_id"]) for s in rx.raw_spans()]


def tree_problem(spans, traces):
    """Why the spans do not make `traces` traces with every parent among
    them, or None."""
    ids = {span_id for _, _, span_id, _ in spans}
    orphans = sorted(name for name, _, _, parent in spans if parent and parent not in ids)
    if orphans:
        return f"the parent of {orphans} did not arrive"
    made = len({trace_id for _, trace_id, _, _ in spans})
    if made != traces:
        by_trace = {}
        for name, trace_id, _, _ in spans:
            by_trace.setdefault(trace_id.hex(), []).append(name)
        return f"the spans make {made} traces, the README promises {traces}: {sorted(by_trace.values())}"
    return None


def commands_lines(commands: str):
    """The commands as the shell reads them: a line ending in a backslash
    joined to the next."""
    lines, current = [], ""
    for line in commands.splitlines(keepends=True):
        current += line
        if not line.rstrip("\n").endswith("\\"):
            lines.append(current)
            current = ""
    return lines + ([current] if current else [])


def endpoint_commands(commands: str) -> str:
    """The commands of the runs with an endpoint: without those that set
    the example up (the first run did, in the same directory) and those
    that read the local sink (there is none)."""
    return "".join(line for line in commands_lines(commands)
                   if not READS_SINK.match(line) and not SETS_UP.match(line))


def closed_port():
    """A loopback endpoint nobody listens on, as a backend that is down:
    the socket stays bound (so no other program takes the port) and never
    listens, so a connection is refused at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


def run_one(name, where, program, commands, expected, prefix: Path, dist: Path | None, src: Path,
            workdir: Path, rx: OtlpReceiverProcess | None = None, down: str | None = None):
    """Runs one example; with rx, with OTEL_EXPORTER_OTLP_ENDPOINT naming it;
    with down, naming that endpoint where nothing listens. Without either,
    workdir is a fresh directory: the program and the packages are put
    there and every command runs, as a newcomer pastes them; with one, it
    is that directory once that run passed, and the commands that set the
    example up are left out (it is set up), each run with a state
    directory of its own (the default sink and spool start empty)."""
    started = time.monotonic()
    endpoint = rx.endpoint if rx is not None else down
    if rx is not None:
        where = f"{where} (OTEL_EXPORTER_OTLP_ENDPOINT set)"
    elif down is not None:
        where = f"{where} (OTEL_EXPORTER_OTLP_ENDPOINT set, nothing listening)"
    if endpoint is not None:
        commands = endpoint_commands(commands)
        state = Path(tempfile.mkdtemp(prefix="state-", dir=workdir))
    else:
        state = workdir / "state"
        plant_earlier_run(state)
    if endpoint is None:
        (workdir / name).write_text(program)
        for package in sorted([*dist.glob("*.tgz"), *dist.glob("*.whl")]) if dist else []:
            shutil.copy(package, workdir / package.name)
    # A session of its own: an example that hangs is a failure said like
    # any other, and what it started in the background (a worker) goes
    # with it rather than outliving the runner.
    proc = subprocess.Popen(["bash", "-euo", "pipefail", "-c", commands], cwd=workdir,
                            env=clean_env(state, prefix, src, endpoint), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return (f"{where} {name}: the commands ran past {TIMEOUT_S} s\n--- commands\n{commands}"
                f"--- stdout\n{out}--- stderr\n{err}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever it left running in the background
        except ProcessLookupError:
            pass
    proc = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    report = f"--- commands\n{commands}--- stdout\n{proc.stdout}--- stderr\n{proc.stderr}"
    if proc.returncode != 0:
        return f"{where} {name}: the commands failed with status {proc.returncode}\n{report}"
    names, traces, uncounted, events, attributes = expected
    # The line it printed for its user, quoted in the "ok" line.
    said = next((line.strip() for line in proc.stdout.splitlines()
                 if WRITTEN.search(line) or SENT.search(line) or WHERE.search(line)), "")
    written, sent = WRITTEN.findall(proc.stdout), SENT.findall(proc.stdout)
    found = WHERE.findall(proc.stdout) if uncounted else [path for _, path, _ in written]
    if endpoint is None and EARLIER_SPAN in proc.stdout:
        return (f"{where} {name}: it drew the trace of an earlier run ({EARLIER_SPAN}, in the default sink "
                f"as a newcomer's holds the examples run before) beside its own: `spanguard show --last 1` "
                f"draws the trace it just recorded\n{report}")
    if ONE_SPANS.search(proc.stdout):
        return f"{where} {name}: it says `1 spans`: one is `1 span`\n{report}"
    if endpoint is not None and (found or written or "the spans are in" in proc.stdout):
        return f"{where} {name}: with an endpoint there is no local sink, yet it names one\n{report}"
    if uncounted:
        if CLAIMS_SENT.search(proc.stdout):
            return (f"{where} {name}: it cannot see its tracer's counters, yet it says the spans were "
                    f"sent\n{report}")
        if endpoint is None and len(found) != 1:
            return f"{where} {name}: the program must print `the spans are in PATH` once\n{report}"
    elif endpoint is None:
        if len(written) != 1 or sent:
            return f"{where} {name}: the program must print `N spans written to PATH (L lost)` once\n{report}"
    elif len(sent) != 1 or sent[0][1] != traces_url(endpoint):
        return (f"{where} {name}: with an endpoint the program must print `N spans sent to "
                f"{traces_url(endpoint)} (S waiting in the spool, L lost)` once\n{report}")
    if down is not None:
        # Nothing listens: it must say so, each span spooled or lost.
        if not uncounted:
            n_sent, spooled, lost = int(sent[0][0]), int(sent[0][2]), int(sent[0][3])
            if n_sent != 0 or spooled + lost != len(names):
                return (f"{where} {name}: nothing listened, yet it says {n_sent} spans were sent, "
                        f"{spooled} spooled and {lost} lost of the {len(names)} it made\n{report}")
        print(f"ok {where} {name}: it says none were sent: {said or proc.stdout.strip()!r} "
              f"[{time.monotonic() - started:.0f} s]")
        return None
    if rx is None:
        sink = (workdir / found[0]).resolve()
        if not (sink.is_file() or (uncounted and sink.is_dir())):
            return f"{where} {name}: it says the spans are in {sink}, which is no file\n{report}"
        spans = arrived(sink)
        place = sink.relative_to(workdir)
    else:
        spans = received(rx, len(names))
        place = endpoint
    got = [span[0] for span in spans]
    if Counter(got) != Counter(names):
        return f"{where} {name}: spans {sorted(got)} arrived, the README promises {sorted(names)}\n{report}"
    if not uncounted:
        n, lost = int((written or sent)[0][0]), int((written or sent)[0][-1])
        spooled = int(sent[0][2]) if sent else 0
        if (n, spooled, lost) != (len(got), 0, 0):
            return (f"{where} {name}: it says {n} spans went out ({spooled} spooled, {lost} lost), "
                    f"{len(got)} arrived at {place}\n{report}")
    got_events = events_in(sink) if rx is None else [e["name"] for s in rx.raw_spans() for e in s["events"]]
    missing = sorted(set(events) - set(got_events))
    if missing:
        return (f"{where} {name}: no span holds the events {missing} the README promises "
                f"(events that arrived: {sorted(got_events)})\n{report}")
    got_keys = attribute_keys_in(sink) if rx is None else [k for s in rx.raw_spans() for k in s["attributes"]]
    missing = sorted(set(attributes) - set(got_keys))
    if missing:
        return (f"{where} {name}: no span holds the attributes {missing} the README promises "
                f"(attributes that arrived: {sorted(set(got_keys))})\n{report}")
    problem = tree_problem(spans, traces) if traces is not None else None
    if problem:
        return f"{where} {name}: {problem}\n{report}"
    print(f"ok {where} {name}: {len(got)} span{'' if len(got) == 1 else 's'} in {place}: {said!r} "
          f"[{time.monotonic() - started:.0f} s]")
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefix", required=True, type=Path, help="where `make install` put spanguard")
    ap.add_argument("--dist", type=Path, help="the npm tarballs and Python wheels of `make dist`")
    ap.add_argument("--typescript", type=Path,
                    help="node_modules holding the Makefile's typescript and @types/node")
    ap.add_argument("files", nargs="+", type=Path)
    args = ap.parse_args()
    examples, runs, errors = collect([f.resolve() for f in args.files])
    typescript = args.typescript.resolve() if args.typescript else None
    pinned = pinned_versions(typescript) if typescript else None
    for name in examples:
        if TYPESCRIPT_FILE.search(name) and name in runs:
            problem = (typescript_problem(name, runs[name], pinned) if pinned
                       else f"{name}: a TypeScript example needs --typescript (the Makefile's tsc)")
            if problem:
                errors.append(f"{examples[name][0]}: {problem}")
    src = bindings_copy()
    prefix = args.prefix.resolve()
    dist = args.dist.resolve() if args.dist else None

    def both_ways(name, where, program, commands, expected):
        # The three runs share the directory the first one set up (its
        # virtualenv, node_modules, Go module): a user installs once, then
        # points the program at a backend. Installing again for each run
        # tripled the time of the examples that pip-install a hundred
        # packages (traceloop-sdk's), which made most of make test-readme.
        workdir = Path(tempfile.mkdtemp(prefix="spanguard-readme-"))
        try:
            err = run_one(name, where, program, commands, expected, prefix, dist, src, workdir)
            if not err and typescript and TYPESCRIPT_FILE.search(name):
                err = strict_typecheck(f"{where} {name}", workdir, typescript)
            if not err:
                # A receiver of its own: its spans are this run's alone.
                with OtlpReceiverProcess(sys.executable) as rx:
                    err = run_one(name, where, program, commands, expected, prefix, dist, src, workdir, rx)
            if not err:
                sock, endpoint = closed_port()
                try:
                    err = run_one(name, where, program, commands, expected, prefix, dist, src, workdir,
                                  down=endpoint)
                finally:
                    sock.close()
            return err
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    # Each example runs three times (a local sink, an endpoint, one down), and most of
    # the first run is waiting: pip and npm installing the packages into a fresh
    # directory, go building. Three at once keep `make test` near what one
    # run each took, on two cores; each has its own directory and receiver.
    todo = [(name, *examples[name], runs[name]) for name in examples if name in runs]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda t: both_ways(t[0], t[1], t[2], t[4], t[3]), todo))
    passed = sum(1 for err in results if not err)
    errors.extend(err for err in results if err)
    shutil.rmtree(src, ignore_errors=True)
    for e in errors:
        print(f"FAIL {e}", file=sys.stderr)
    print(f"{passed} passed, {len(errors)} failed")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
