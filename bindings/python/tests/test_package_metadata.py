"""What the wheel says of itself. It had no long description (no `readme`
in pyproject.toml): `pip show spanguard` and a package index's page said
nothing beyond the one-line summary. The wheel `make dist-python` built
carries bindings/python/README.md (whose examples make test-readme runs)
as its description, in Markdown."""

import email.parser
import re
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
README = REPO / "bindings" / "python" / "README.md"
# Where the wheel carries the full README (the checkout's top one), which
# the description names.
FULL_README = "spanguard/README.md"


def built_wheel():
    """The one wheel for this machine in build/dist."""
    (wheel,) = (REPO / "build" / "dist").glob("spanguard-*-manylinux_*.whl")
    return wheel


def built_wheel_metadata():
    """The METADATA of the one wheel for this machine in build/dist."""
    with zipfile.ZipFile(built_wheel()) as z:
        (name,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(z.read(name).decode("utf-8"))


def description():
    """The wheel's long description (Metadata 2.1 and later put it in the body)."""
    meta = built_wheel_metadata()
    return meta.get_payload() or meta.get("Description", "")


# A Markdown link's or image's target (`[text](target)`, `![alt](target)`,
# `[text]: target`) and an HTML one's (href=, src=).
LINK_TARGETS = re.compile(r"\]\(\s*<?([^)\s>]+)|^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)|\b(?:href|src)\s*=\s*[\"']([^\"']+)",
                          re.MULTILINE)


def relative_links(markdown: str) -> list[str]:
    """The link targets in `markdown` that a package index's page cannot
    follow: neither a URL (a scheme) nor an anchor of the page itself."""
    targets = [next(t for t in m if t) for m in LINK_TARGETS.findall(markdown)]
    return [t for t in targets if not re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", t) and not t.startswith("#")]


def test_relative_links_are_found():
    """The check below finds what it is for: the link the description had
    (the full README at ../../README.md, dead on a package index's page)
    and its other spellings, and leaves URLs and anchors alone."""
    assert relative_links("The [README.md](../../README.md) at the top") == ["../../README.md"]
    assert relative_links("![shot](docs/show-html.png) [a](<../x.md>) <a href=\"../y.md\">y</a>") == \
        ["docs/show-html.png", "../x.md", "../y.md"]
    assert relative_links("[guide]: ../../README.md#python\n") == ["../../README.md#python"]
    assert relative_links("[ok](https://opentelemetry.io/docs/) [here](#install) mailto:x") == []


def test_the_wheel_carries_the_package_readme_as_its_description():
    meta = built_wheel_metadata()
    # maturin adds `; charset=UTF-8; variant=GFM`.
    assert (meta["Description-Content-Type"] or "").split(";")[0] == "text/markdown", meta.items()
    # Metadata 2.1 and later put the description in the body.
    described = meta.get_payload() or meta.get("Description", "")
    assert described.strip() == README.read_text().strip(), described[:500]
    assert "# spanguard for Python" in described and "SpanguardSpanProcessor" in described


def test_the_description_links_nothing_an_index_cannot_follow():
    """A package index shows the description away from the source tree:
    a relative link into it (the full README at ../../README.md) is dead
    there. The full README is named by where the wheel installs it."""
    assert relative_links(description()) == []


def test_the_wheel_carries_the_full_readme_the_description_names():
    with zipfile.ZipFile(built_wheel()) as z:
        assert FULL_README in z.namelist(), z.namelist()
        shipped = z.read(FULL_README).decode("utf-8")
    assert shipped == (REPO / "README.md").read_text()
    assert f"`{FULL_README}`" in description()
