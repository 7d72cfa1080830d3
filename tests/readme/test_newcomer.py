"""A newcomer runs `make demo`, then README's `spanguard show`: that
said "command not found" (the command is not on PATH in a checkout, and
neither README nor the demo said where it was), then, put on PATH, "no
spans found" (the demo writes to its own directory, not the default sink).
The demo's last lines and README's "The two commands" now name the files
and the command, and these check that they name what the demo's recipe
really writes and runs."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def demo_recipe():
    lines = (REPO / "Makefile").read_text().splitlines()
    start = lines.index("demo: build/examples/agent_demo")
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line[1:])
    return recipe


def demo_paths():
    recipe = "\n".join(demo_recipe())
    sink = re.search(r"SPANGUARD_SINK_DIR=(\S+) ", recipe).group(1)
    command = re.search(r"^(\S+/spanguard) show ", recipe, re.M).group(1)
    page = re.search(r"--html (\S+)", recipe).group(1)
    return sink, command, page


def said_by_the_demo():
    return "\n".join(l for l in demo_recipe() if l.startswith("@echo"))


def two_commands_section():
    readme = (REPO / "README.md").read_text()
    return readme[readme.index("## The two commands"):readme.index("## Installing")]


def test_the_demo_ends_saying_where_its_spans_page_and_command_are():
    sink, command, page = demo_paths()
    said = said_by_the_demo()
    assert f"{sink}/*.jsonl" in said, said
    assert page in said, said
    assert command in said, said
    # A PATH line to paste, with the command's directory.
    assert f"export PATH=$(CURDIR)/{Path(command).parent}:" in said, said
    assert f"spanguard show --full {sink}" in said, said


def test_readme_says_where_the_demo_wrote_and_where_the_command_is():
    sink, command, page = demo_paths()
    text = " ".join(two_commands_section().split())
    assert f"`{sink}/`" in text, text
    assert f"`{page}`" in text, text
    assert f"`{command}`" in text, text
    assert f"`export PATH=$PWD/{Path(command).parent}:$PATH`" in text, text
    assert f"`spanguard show --full {sink}`" in text, text


def demo_program():
    return Path(os.environ.get("SPANGUARD_DEMO", REPO / "build" / "examples" / "agent_demo"))


def alone(tmp_path, **variables):
    """This environment without OTEL_*, SPANGUARD_* or XDG_STATE_HOME, its
    HOME under `tmp_path`, and `variables` set."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "SPANGUARD_")) and k != "XDG_STATE_HOME"}
    env["HOME"] = str(tmp_path / "home")
    env.update(variables)
    return env


def test_the_demo_keeps_its_spans_with_an_endpoint_exported(tmp_path):
    """A newcomer who had OTEL_EXPORTER_OTLP_ENDPOINT exported (a collector
    set up for other work) ran make demo: the agent sent its spans there
    (or into the user's own spool, to be sent later) and build/demo-spans
    stayed empty, "no spans found". The recipe's own lines, run with
    the paths moved under tmp_path and an endpoint nothing answers."""
    sink, command, _ = demo_paths()
    recipe = "\n".join(demo_recipe()).replace("\\\n", " ")
    run = [l for l in recipe.splitlines() if f"SPANGUARD_SINK_DIR={sink} " in l]
    assert len(run) == 1, recipe
    moved = tmp_path / "demo-spans"
    line = run[0].replace(f"SPANGUARD_SINK_DIR={sink} ", f"SPANGUARD_SINK_DIR={moved} ").replace(
        "build/examples/agent_demo", str(demo_program()))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    spool = tmp_path / "spool"
    env = alone(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{closed}",
                OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"http://127.0.0.1:{closed}/v1/traces",
                SPANGUARD_SPOOL_DIR=str(spool))
    ran = subprocess.run(["sh", "-c", line], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert not list(spool.glob("*.sgspool")), ran.stderr
    shown = subprocess.run([str(REPO / command), "show", str(moved)], env=env, capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert ", 14 spans, from 1 sink file" in shown.stdout, shown.stdout


def test_with_xdg_state_home_set_show_reads_where_a_program_wrote(tmp_path):
    """XDG_STATE_HOME set: a program's spans (the sample agent's, no
    SPANGUARD_SINK_DIR) go under it, and `spanguard show` with no DIR
    reads them there; the demo and README name that default, not
    ~/.local/state alone (which is not where they are)."""
    _, command, _ = demo_paths()
    state = tmp_path / "state"
    env = alone(tmp_path, XDG_STATE_HOME=str(state))
    ran = subprocess.run([str(demo_program())], env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert len(list((state / "spanguard" / "spans").glob("demo-agent-*.jsonl"))) == 1
    assert not (tmp_path / "home" / ".local").exists()
    shown = subprocess.run([str(REPO / command), "show"], env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert ", 14 spans, from 1 sink file" in shown.stdout, shown.stdout
    said = " ".join(said_by_the_demo().split())
    assert "$$XDG_STATE_HOME/spanguard/spans (~/.local/state/spanguard/spans when XDG_STATE_HOME is unset)" \
        in said, said
    text = " ".join(two_commands_section().split())
    assert ("(`$XDG_STATE_HOME/spanguard/spans`, `~/.local/state/spanguard/spans` when `XDG_STATE_HOME` is "
            "unset)") in text, text


def test_make_install_with_an_empty_prefix_installs_nothing():
    """README's `make install PREFIX=$PREFIX`, pasted in a shell where
    PREFIX was never exported, is `make install PREFIX=`: it put the
    library in /lib, the header in /include and the command in /bin (as
    root, without a word). It now stops before building anything and
    says what to set."""
    ran = subprocess.run(["make", "-C", str(REPO), "-n", "--no-print-directory", "install", "PREFIX="],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert ran.returncode != 0, ran.stdout
    assert "install -d" not in ran.stdout, ran.stdout
    assert "PREFIX is empty" in ran.stderr and "export PREFIX=$HOME/.local" in ran.stderr, ran.stderr
    # A PREFIX given, or left out (/usr/local), installs as before.
    for given, where in ((["PREFIX=/tmp/elsewhere"], "/tmp/elsewhere/lib"), ([], "/usr/local/lib")):
        ran = subprocess.run(["make", "-C", str(REPO), "-n", "--no-print-directory", "install", *given],
                             capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert ran.returncode == 0, ran.stderr
        assert "install -d " in ran.stdout and f" {where} " in ran.stdout, ran.stdout


# A variable of the environment, not one the reader must set for an example.
ENVIRONMENT = re.compile(r"^(HOME|PWD|PATH|OTEL_\w+)$")
USES = re.compile(r"\$\{?([A-Za-z_]\w*)")
SETS = re.compile(r"(?:^|[\s;&(])(?:export\s+)?([A-Za-z_]\w*)=")


def readme_blocks():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run_examples
    readmes = [REPO / "README.md", REPO / "bindings" / "node" / "README.md",
               REPO / "bindings" / "python" / "README.md", REPO / "bindings" / "go" / "README.md"]
    return [b for path in readmes for b in run_examples.blocks(path)]


def test_every_variable_and_package_an_example_needs_is_set_up_where_readme_says():
    """Pasted as written, the Go example said `replacement directory
    /bindings/go does not exist` ($SPANGUARD_SRC, which README named but
    never said to set), the C one needed PREFIX exported, and the Python
    and Node ones installed `./spanguard-*.whl` and `./spanguard-0.1.0.tgz`
    from a directory that held neither (make test-readme sets all of it
    up itself, so it passed). README's setup block (marked `<!-- setup:
    examples -->`) must export each variable a run block reads and does
    not set, before its first use, and copy each package a run block
    installs from `./`."""
    blocks = readme_blocks()
    setups = [b for b in blocks
              if b.source == REPO / "README.md" and (b.marker or "").startswith("<!-- setup: examples")]
    assert len(setups) == 1, "README.md has no ```sh block marked <!-- setup: examples -->"
    setup = setups[0].text
    exported = {}
    for n, line in enumerate(setup.splitlines()):
        for name in re.findall(r"\bexport\s+((?:[A-Za-z_]\w*=\S*\s*)+)", line):
            for assignment in name.split():
                exported.setdefault(assignment.split("=")[0], n)
    runs = [b for b in blocks if (b.marker or "").startswith("<!-- run:")]
    assert len(runs) >= 19, len(runs)
    for b in runs:
        set_here = set(SETS.findall(b.text))
        for name in set(USES.findall(b.text)) - set_here:
            if not ENVIRONMENT.match(name):
                assert name in exported, f"{b.marker}: ${name} is set nowhere in the setup block:\n{setup}"
        for package in re.findall(r"\./(spanguard-\S+\.(?:whl|tgz))", b.text):
            assert f"build/dist/{package}" in setup, f"{b.marker}: ./{package} is not copied by:\n{setup}"
    for name, n in exported.items():
        first_use = next((i for i, line in enumerate(setup.splitlines())
                          if re.search(rf"\${{?{name}\b", line)), None)
        assert first_use is None or first_use >= n, f"${name} is used before it is exported:\n{setup}"


def test_each_readme_sets_up_the_variables_its_own_commands_read():
    """bindings/go/README.md, what pkg.go.dev shows a Go user who reads
    nothing else, ran `go mod edit -replace=...=$SPANGUARD_SRC/bindings/go`
    and `export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig` and set neither
    anywhere: pasted in a fresh shell, `go run .` stopped at `replacement
    directory /bindings/go does not exist`. A README whose run blocks read
    a variable has a setup block of its own (`<!-- setup: examples -->`)
    that exports it."""
    by_file = {}
    for b in readme_blocks():
        by_file.setdefault(b.source, []).append(b)
    for source, blocks in by_file.items():
        setups = [b.text for b in blocks if (b.marker or "").startswith("<!-- setup: examples")]
        exported = {name.split("=")[0] for setup in setups
                    for names in re.findall(r"\bexport\s+((?:[A-Za-z_]\w*=\S*\s*)+)", setup)
                    for name in names.split()}
        for b in blocks:
            if not (b.marker or "").startswith("<!-- run:"):
                continue
            for name in set(USES.findall(b.text)) - set(SETS.findall(b.text)):
                assert ENVIRONMENT.match(name) or name in exported, (
                    f"{source.relative_to(REPO)}: {b.marker} reads ${name}, which no setup block of that file "
                    f"exports")


def test_the_setup_puts_the_installed_spanguard_command_on_path():
    """After README's setup (`make install PREFIX=$HOME/.local`, a fresh
    HOME), the Go section's `spanguard show --errors --last 1` said
    `spanguard: command not found`: make install puts the command in
    $PREFIX/bin, which nothing had put on PATH (a distribution's profile
    adds ~/.local/bin only if it existed at login). The setup block puts
    it there, after PREFIX is set."""
    blocks = readme_blocks()
    setup = next(b for b in blocks if (b.marker or "").startswith("<!-- setup: examples")).text
    lines = setup.splitlines()
    on_path = [i for i, line in enumerate(lines) if re.match(r"export PATH=\$PREFIX/bin:\$PATH\b", line)]
    assert on_path, f"the setup block puts no $PREFIX/bin on PATH:\n{setup}"
    prefix_set = next(i for i, line in enumerate(lines) if re.match(r"export PREFIX=", line))
    assert prefix_set < on_path[0], setup
    install = Path(REPO / "Makefile").read_text()
    assert "install -m 0755 target/release/spanguard $(DESTDIR)$(PREFIX)/bin/" in install


SUBCOMMANDS = ("show", "tail", "spool", "replay", "check", "why")


def cli_block():
    """README's block of `spanguard` commands ("Looking at your spans"):
    the ```sh block whose every line is one."""
    found = [b for b in readme_blocks() if b.source == REPO / "README.md" and b.info == "sh"
             and b.text.strip() and all(l.startswith("spanguard ") for l in b.text.strip().splitlines())]
    assert len(found) == 1, [b.line for b in found]
    return found[0]


def test_every_spanguard_command_readme_shows_is_one_the_command_takes(tmp_path):
    """No test ran README's block of `spanguard` commands as written (the
    examples' run blocks call `spanguard show --last 1` alone): a flag
    renamed or a subcommand's arguments changed would leave a newcomer a
    usage error on the page the command is introduced. Each line runs here,
    pasted as a newcomer does after `make demo` and one program of theirs
    (from a directory holding the demo's spans, a fresh state directory):
    none may be a usage error (exit status 2), and `tail` follows until
    Ctrl-C. The placeholder URL is an endpoint nothing listens on."""
    command = REPO / demo_paths()[1]
    env = alone(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    sink, _, _ = demo_paths()
    for variables in ({"SPANGUARD_SINK_DIR": str(work / sink)}, {}):   # the demo's, then the default sink
        ran = subprocess.run([str(demo_program())], env={**env, **variables}, capture_output=True, text=True,
                             timeout=60)
        assert ran.returncode == 0, ran.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
        lines = [l.split("#")[0].split() for l in cli_block().text.splitlines()]
        assert {words[1] for words in lines} == set(SUBCOMMANDS), lines
        for words in lines:
            args = [closed if w == "URL" else w for w in words[1:]]
            if args[0] == "tail":
                proc = subprocess.Popen([str(command), *args], cwd=work, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
                time.sleep(1)
                proc.send_signal(signal.SIGINT)
                out, err = proc.communicate(timeout=30)
                assert proc.returncode == 0, (words, out, err)
                continue
            ran = subprocess.run([str(command), *args], cwd=work, env=env, capture_output=True, text=True,
                                 timeout=60)
            assert ran.returncode in (0, 1), (words, ran.returncode, ran.stdout, ran.stderr)
            assert "unknown option" not in ran.stderr and "usage" not in ran.stderr, (words, ran.stderr)


def test_every_flag_readme_gives_a_spanguard_command_is_in_its_help():
    """The flags the READMEs' prose and blocks give `spanguard SUB` are
    those `spanguard SUB --help` lists: a flag renamed in the command and
    left in a README sends a newcomer to a usage error."""
    command = REPO / demo_paths()[1]
    helps = {}
    for sub in SUBCOMMANDS:
        shown = subprocess.run([str(command), sub, "--help"], capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, (sub, shown.stderr)
        helps[sub] = set(re.findall(r"--[a-z][a-z-]*", shown.stdout + shown.stderr))
    said = 0
    for readme in (REPO / "README.md", REPO / "bindings" / "node" / "README.md",
                   REPO / "bindings" / "go" / "README.md"):
        for sub, rest in re.findall(rf"\bspanguard ({'|'.join(SUBCOMMANDS)})\b([^`\n]*)", readme.read_text()):
            for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]*", rest.split("#")[0]):
                said += 1
                assert flag in helps[sub], (
                    f"{readme.relative_to(REPO)}: `spanguard {sub}{rest}` gives {flag}, which "
                    f"`spanguard {sub} --help` does not list: {sorted(helps[sub])}")
    assert said >= 10, said


def test_make_dist_node_without_npm_says_what_to_do_before_building(tmp_path):
    """README's setup runs `make dist-python dist-node` for every example.
    Where npm was missing (a C user's machine; Debian's nodejs comes without
    npm) it built the library for minutes, then stopped at `npm: not
    found`, which said neither what to install nor that a C, C++ or Go
    user can leave the Node package out. This PATH has every program but
    npm."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            target = bin_dir / entry.name
            if entry.name not in ("npm", "npx") and not target.exists() and os.access(entry.path, os.X_OK):
                target.symlink_to(entry.path)
    make = shutil.which("make")
    ran = subprocess.run([make, "-C", str(REPO), "--no-print-directory", "dist-node"],
                         env={**os.environ, "PATH": str(bin_dir)}, capture_output=True, text=True, timeout=600,
                         stdin=subprocess.DEVNULL)
    assert ran.returncode != 0, ran.stdout
    assert "cargo" not in ran.stdout and "npm pack" not in ran.stdout, ran.stdout   # nothing built first
    said = " ".join(ran.stderr.split())
    assert "npm is not installed" in said and "leave out dist-node" in said, ran.stderr
