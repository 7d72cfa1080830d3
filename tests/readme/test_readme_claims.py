"""What the READMEs promise about a dead process's spans holds: since a
file a process leaves names its sender (`-for<mark>`), only a tracer set
up alike (the same endpoint, headers and TLS files) sends it at its start.
A line saying "sent at the next start" alone told a user whose next start
had another key or endpoint (a test's sink, another project) that the
spans went out, and they waited."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
READMES = [REPO / "README.md", REPO / "bindings" / "node" / "README.md",
           REPO / "bindings" / "python" / "README.md", REPO / "bindings" / "go" / "README.md"]
NEXT_START = re.compile(r"next (?:tracer )?starts?\b|(?:a|the) tracer next starts")
# Who the line says takes them: a start set up alike, or one with the same
# endpoint and headers.
WHO = re.compile(r"alike|same endpoint")
# What any start does, whatever its sender: removing a dead writer's files.
ANY_START = re.compile(r"\b(?:removes|deletes)\b")
AROUND = 120


def claims_without_who(text):
    flat = " ".join(text.split())
    for m in NEXT_START.finditer(flat):
        around = flat[max(0, m.start() - AROUND):m.end() + AROUND]
        if not WHO.search(around) and not ANY_START.search(flat[m.end():m.end() + 40]):
            yield around


def test_every_next_start_that_sends_says_which_start():
    unqualified = [f"{path.relative_to(REPO)}: ...{claim}..."
                   for path in READMES for claim in claims_without_who(path.read_text())]
    assert unqualified == [], "\n".join(unqualified)


def test_the_check_finds_an_unqualified_line():
    assert list(claims_without_who("the dump is sent at the next start; the rest is lost."))
    assert not list(claims_without_who("sent at the next start of a tracer set up alike."))
    assert not list(claims_without_who("left behind, which the next tracer start or replay removes."))


# A Markdown link's target: `[text](target)`, `[text]: target`.
LINK = re.compile(r"\]\(\s*<?([^)\s>]+)|^\s*\[[^\]]+\]:\s*<?([^\s>]+)", re.MULTILINE)


def links_out_of_the_page(text):
    """Link targets that are neither a URL nor an anchor of the page."""
    targets = (a or b for a, b in LINK.findall(text))
    return [t for t in targets if not re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", t) and not t.startswith("#")]


def test_a_package_readme_links_nothing_its_registry_cannot_follow():
    """A package's README is shown by its registry (npm's page, a package
    index's for the wheel, pkg.go.dev) away from the source tree, with no
    public repository to resolve a relative link against: the link each
    had to the full README (../../README.md) was dead there. The full
    README is named by where the package carries it instead."""
    linked = [f"{path.relative_to(REPO)}: {t}" for path in READMES[1:] for t in links_out_of_the_page(path.read_text())]
    assert linked == [], linked


def test_the_link_check_finds_a_relative_link():
    assert links_out_of_the_page("The [README](../../README.md) has it.\n[x]: docs/a.md\n") == \
        ["../../README.md", "docs/a.md"]
    assert links_out_of_the_page("[site](https://opentelemetry.io) [below](#install)") == []
