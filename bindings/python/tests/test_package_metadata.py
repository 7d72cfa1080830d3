"""What the wheel says of itself. It had no long description (no `readme`
in pyproject.toml): `pip show spanguard` and a package index's page said
nothing beyond the one-line summary. The wheel `make dist-python` built
carries bindings/python/README.md (whose examples make test-readme runs)
as its description, in Markdown."""

import email.parser
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
README = REPO / "bindings" / "python" / "README.md"


def built_wheel_metadata():
    """The METADATA of the one wheel for this machine in build/dist."""
    (wheel,) = (REPO / "build" / "dist").glob("spanguard-*-manylinux_*.whl")
    with zipfile.ZipFile(wheel) as z:
        (name,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(z.read(name).decode("utf-8"))


def test_the_wheel_carries_the_package_readme_as_its_description():
    meta = built_wheel_metadata()
    # maturin adds `; charset=UTF-8; variant=GFM`.
    assert (meta["Description-Content-Type"] or "").split(";")[0] == "text/markdown", meta.items()
    # Metadata 2.1 and later put the description in the body.
    described = meta.get_payload() or meta.get("Description", "")
    assert described.strip() == README.read_text().strip(), described[:500]
    assert "# spanguard for Python" in described and "SpanguardSpanProcessor" in described
