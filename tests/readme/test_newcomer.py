"""A newcomer runs `make demo`, then README's `spanguard show`: that
said "command not found" (the command is not on PATH in a checkout, and
neither README nor the demo said where it was), then, put on PATH, "no
spans found" (the demo writes to its own directory, not the default sink).
The demo's last lines and README's "The two commands" now name the files
and the command, and these check that they name what the demo's recipe
really writes and runs."""

import re
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
