"""The HTML page as a person sees it: rendered by headless Chromium (the
distribution's package), its script run, its DOM read back: every span
present once, parents before children, error and interrupted spans marked,
the detail panel filled, a search carried in the URL applied, nothing
fetched from the network. A screenshot is kept under build/cli/."""

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "build" / "cli"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-extensions", "--hide-scrollbars"]


def chromium() -> str:
    path = os.environ.get("SPANGUARD_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("chromium is missing: `make test-cli` installs it (apt-get install chromium)")
    return path


def run_chromium(tmp_path, *args) -> str:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    run = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


class Rows(HTMLParser):
    """The span rows, trace sections and panel of a rendered page."""

    def __init__(self):
        super().__init__()
        self.rows, self.traces, self.hidden_traces = [], [], set()
        self.panel_title, self._in_panel, self._in_h3 = None, False, False
        self.external = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = set((a.get("class") or "").split())
        for key in ("src", "href"):
            if (a.get(key) or "").startswith(("http:", "https:", "//")):
                self.external.append(a[key])
        if tag == "link":
            self.external.append(str(a))
        if tag == "section" and "trace" in classes:
            self.traces.append(a["data-trace-id"])
            if "hidden" in a:
                self.hidden_traces.add(a["data-trace-id"])
        if tag == "div" and "span" in classes and "data-span-id" in a:
            self.rows.append({"trace": self.traces[-1], "id": a["data-span-id"],
                              "parent": a["data-parent-id"], "classes": classes})
        if a.get("id") == "panel-body":
            self._in_panel = True
        if self._in_panel and tag == "h3":
            self._in_h3 = True

    def handle_endtag(self, tag):
        if tag == "h3":
            self._in_h3 = False
        if tag == "aside":
            self._in_panel = False

    def handle_data(self, data):
        if self._in_h3 and self.panel_title is None:
            self.panel_title = data


def sample_spans(sample: Path) -> list[dict]:
    spans = []
    for f in sorted(sample.glob("*.jsonl")):
        for line in f.read_text().splitlines():
            for rs in json.loads(line)["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    spans += ss["spans"]
    return spans


@pytest.fixture(scope="module")
def page(cli, sample, tmp_path_factory) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / "sample.html"
    run = subprocess.run([str(cli), "show", "--html", str(out), str(sample)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert f"wrote {out}" in run.stdout
    return out


def test_the_rendered_page_shows_every_span_in_tree_order_and_marks_trouble(page, sample, tmp_path):
    dom = run_chromium(tmp_path, "--dump-dom", page.as_uri())
    rows = Rows()
    rows.feed(dom)
    spans = sample_spans(sample)
    # Every span once, in its own trace's section.
    assert sorted((r["trace"], r["id"]) for r in rows.rows) == sorted((s["traceId"], s["spanId"]) for s in spans)
    # Parents before children.
    position = {(r["trace"], r["id"]): i for i, r in enumerate(rows.rows)}
    for r in rows.rows:
        if r["parent"] and (r["trace"], r["parent"]) in position:
            assert position[(r["trace"], r["parent"])] < position[(r["trace"], r["id"])], r
    # Error spans and interrupted spans marked, the others not.
    by_id = {s["spanId"]: s for s in spans}
    for r in rows.rows:
        s = by_id[r["id"]]
        attrs = {a["key"]: a["value"] for a in s.get("attributes", [])}
        assert ("error" in r["classes"]) == (s.get("status", {}).get("code") == 2), r
        assert ("interrupted" in r["classes"]) == (attrs.get("spanguard.interrupted") == {"boolValue": True}), r
    assert any("error" in r["classes"] for r in rows.rows)
    assert any("interrupted" in r["classes"] for r in rows.rows)
    # The script ran: the panel shows the first span in trouble.
    first_trouble = next(r for r in rows.rows if {"error", "interrupted"} & r["classes"])
    assert rows.panel_title == by_id[first_trouble["id"]]["name"]
    # Self-contained: nothing fetched.
    assert not rows.external, rows.external


def test_a_search_in_the_url_dims_other_spans_and_hides_other_traces(page, tmp_path):
    dom = run_chromium(tmp_path, "--dump-dom", page.as_uri() + "#q=refund")
    rows = Rows()
    rows.feed(dom)
    matching = [r for r in rows.rows if "dim" not in r["classes"]]
    # The refund tool call (its arguments) and the billing service's handler.
    assert {r["id"] for r in matching} >= {"a1a1a1a1a1a1a105", "c3c3c3c3c3c3c300"}
    assert "0af7651916cd43dd8448eb211c80319c" in rows.hidden_traces


def test_a_screenshot_is_kept(page, tmp_path):
    shot = OUT / "show-html.png"
    shot.unlink(missing_ok=True)
    run_chromium(tmp_path, "--window-size=1400,900", f"--screenshot={shot}", page.as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
