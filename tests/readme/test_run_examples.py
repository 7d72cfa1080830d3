"""The README runner's runs with an endpoint run the program in the
directory its first run set up, without setting it up again: these check
which of a README's commands they keep, and what a TypeScript example's
commands must install and run."""

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_examples  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
READMES = [REPO / "README.md", REPO / "bindings" / "node" / "README.md",
           REPO / "bindings" / "python" / "README.md", REPO / "bindings" / "go" / "README.md"]
SETUP = re.compile(r"pip3? install|npm (install|ci)|-m venv|go (mod|get) ")


def run_blocks():
    runs = {}
    for path in READMES:
        for b in run_examples.blocks(path):
            m = run_examples.RUN.match(b.marker or "")
            if m:
                runs[m.group(1)] = b.text
    return runs


def test_every_run_block_loses_its_setup_and_keeps_a_command():
    runs = run_blocks()
    assert len(runs) >= 19, sorted(runs)
    for name, commands in runs.items():
        kept = run_examples.endpoint_commands(commands)
        assert not SETUP.search(kept), f"{name}: a setup command is run again: {kept!r}"
        assert kept.strip(), f"{name}: nothing left to run"


def test_the_heavy_python_example_only_runs_its_program():
    # traceloop-sdk's hundred-odd packages: installed once, by the first run.
    assert run_examples.endpoint_commands(run_blocks()["traceloop_app.py"]) == "venv/bin/python traceloop_app.py\n"


def test_a_go_mod_edit_continued_over_lines_goes_whole():
    # `go mod edit ... \` and its continuation lines are one command: a
    # continuation line left behind would run as a command of its own.
    assert run_examples.endpoint_commands(run_blocks()["otel_http.go"]) == (
        "export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig\ngo run .\n")


def test_a_go_get_of_the_setups_modules_is_setup():
    # llm_agent.go's run block pins the modules of the setup a user already
    # had (go get): the first run fetched them into the module it made.
    assert run_examples.endpoint_commands(run_blocks()["llm_agent.go"]) == (
        "export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig\ngo run .\n")


def test_a_program_run_continued_over_lines_stays_whole():
    kept = run_examples.endpoint_commands(run_blocks()["zero_code_app.py"])
    assert kept.startswith("OTEL_TRACES_EXPORTER=spanguard ")
    assert "  venv/bin/opentelemetry-instrument venv/bin/python zero_code_app.py\n" in kept
    assert "venv/bin/spanguard spool" in kept


def test_a_c_example_is_built_again_and_run():
    kept = run_examples.endpoint_commands(run_blocks()["app.c"])
    assert "cc app.c" in kept and "./app" in kept


def test_the_sink_reader_is_left_out():
    assert "spanguard show" not in run_examples.endpoint_commands(run_blocks()["app.mjs"])
    assert "node app.mjs" in run_examples.endpoint_commands(run_blocks()["app.mjs"])


def test_an_example_past_its_time_is_a_failure_of_its_own(tmp_path, monkeypatch):
    # traceloop-sdk's pip install ran past the limit on a loaded machine:
    # the TimeoutExpired ended the whole run with a traceback, and the
    # results of the examples that had passed were never printed.
    monkeypatch.setattr(run_examples, "TIMEOUT_S", 1)
    err = run_examples.run_one("slow.py", "README.md:1", "", "echo started\nsleep 30\n",
                               (["s"], None, False, [], []), tmp_path, None, tmp_path, tmp_path)
    assert err is not None and "slow.py: the commands ran past 1 s" in err, err
    assert "sleep 30" in err and "started" in err, err


def makefile_pins():
    """The versions the Makefile installs for the TypeScript example, from
    where it takes them: the binding's package.json and its own line."""
    typescript = json.loads((REPO / "bindings" / "node" / "package.json").read_text())["devDependencies"]["typescript"]
    types_node = re.search(r"^TYPES_NODE_VERSION := (\S+)$", (REPO / "Makefile").read_text(), re.M).group(1)
    return {"typescript": typescript, "@types/node": types_node}


def test_the_typescript_example_installs_the_pinned_compiler_and_compiles_with_it():
    pinned = makefile_pins()
    commands = run_blocks()["agent.ts"]
    assert run_examples.typescript_problem("agent.ts", commands, pinned) is None
    # Another version of either, or none, or no tsc: said, naming what is wrong.
    for package, version in pinned.items():
        other = commands.replace(f"{package}@{version}", f"{package}@0.0.1")
        assert f"npm install {package}@{version}" in run_examples.typescript_problem("agent.ts", other, pinned)
        unpinned = commands.replace(f"{package}@{version}", package)
        assert f"npm install {package}@{version}" in run_examples.typescript_problem("agent.ts", unpinned, pinned)
    uncompiled = commands.replace("npx tsc", "npx ts-node agent.ts #")
    assert "compile it with tsc" in run_examples.typescript_problem("agent.ts", uncompiled, pinned)
    # The endpoint runs compile again and run, without installing.
    kept = run_examples.endpoint_commands(commands)
    assert "npx tsc" in kept and "node agent.js" in kept and "npm install" not in kept, kept


def test_spans_said_to_be_in_a_directory_are_read_from_each_of_its_sink_files(tmp_path):
    # A pool's spawned workers each write a sink file of their own: the
    # example that proves their spans join the caller's trace says the
    # directory, and every file in it is read (a file alone held the
    # caller's span and none of the workers').
    def line(trace, span, parent, name):
        return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": trace, "spanId": span, "parentSpanId": parent, "name": name}]}]}]}) + "\n"
    trace = "0af7651916cd43dd8448eb211c80319c"
    (tmp_path / "spans").mkdir()
    (tmp_path / "spans" / "my-agent-1.jsonl").write_text(line(trace, "b7ad6b7169203331", "", "agent.session"))
    (tmp_path / "spans" / "my-agent-2.jsonl").write_text(line(trace, "c7ad6b7169203331", "b7ad6b7169203331",
                                                             "tool.call"))
    program = "echo the spans are in spans\n"
    expected = (["agent.session", "tool.call"], 1, True, [], [])
    assert run_examples.run_one("pool.py", "README.md:1", program, program, expected, tmp_path, None,
                                tmp_path, tmp_path) is None
    # Counted examples still name one file.
    counted = (["agent.session", "tool.call"], 1, False, [], [])
    err = run_examples.run_one("pool.py", "README.md:1", "", "echo 2 spans written to spans '(0 lost)'\n",
                               counted, tmp_path, None, tmp_path, tmp_path)
    assert err is not None and "which is no file" in err, err
